"""The real `az` against the lab's gallery as marketplace images: `az vm image list-publishers|
list-offers|list-skus|list --all|show` (with `latest`, which az resolves by `$orderby=name
desc&$top=1`), and a missing image's error naming the command that builds it."""
from __future__ import annotations

import pytest

from tests.azcli import Az

pytestmark = pytest.mark.azcli
P, O, S = "scaleset-lab", "debian", "debian-12"  # flab's 1.0.0


@pytest.fixture
def az(api, tmp_path, az_venv, qcow2_file):
    api.lab.gallery.import_file(P, O, S, "1.10.0", qcow2_file)
    api.lab.gallery.import_file(P, O, S, "2.0.0", qcow2_file, exclude_from_latest=True)
    api.lab.gallery.import_file("acme", "tools", "base", "0.1.0", qcow2_file)
    return Az(api.endpoint, api.ca, f"{api.endpoint}/identity/{api.token()}", tmp_path, venv=az_venv)


def test_list_publishers_offers_skus(az):
    assert [p["name"] for p in az.json("vm", "image", "list-publishers", "-l", "local")] == ["acme", P]
    assert [o["name"] for o in az.json("vm", "image", "list-offers", "-l", "local", "-p", P)] == [O]
    skus = az.json("vm", "image", "list-skus", "-l", "local", "-p", P, "-f", O)
    assert [s["name"] for s in skus] == [S] and skus[0]["location"] == "local"


def test_list_all_walks_the_gallery(az):
    urns = [i["urn"] for i in az.json("vm", "image", "list", "--all", "-l", "local")]
    assert sorted(urns) == sorted([f"{P}:{O}:{S}:1.0.0", f"{P}:{O}:{S}:1.10.0", "acme:tools:base:0.1.0"])
    mine = az.json("vm", "image", "list", "--all", "-l", "local", "--publisher", "acme")
    assert [(i["offer"], i["sku"], i["version"], i["architecture"]) for i in mine] == \
        [("tools", "base", "0.1.0", "x64")]


def test_show_a_version_and_latest(az):
    shown = az.json("vm", "image", "show", "-l", "local", "--urn", f"{P}:{O}:{S}:2.0.0")
    assert shown["name"] == "2.0.0" and shown["osDiskImage"]["operatingSystem"] == "Linux"
    assert shown["hyperVGeneration"] == "V1" and shown["architecture"] == "x64"
    latest = az.json("vm", "image", "show", "-l", "local", "--urn", f"{P}:{O}:{S}:latest")
    assert latest["name"] == "1.10.0"  # 2.0.0 is excluded from latest


def test_a_missing_image_names_the_build_command(az):
    bad = az("vm", "image", "show", "-l", "local", "--urn", f"{P}:{O}:ubuntu:1.0.0")
    assert bad.returncode != 0 and "(NotFound)" in bad.stderr and "Traceback" not in bad.stderr
    assert f"scaleset image build --publisher {P} --offer {O} --sku ubuntu --version 1.0.0" in bad.stderr
