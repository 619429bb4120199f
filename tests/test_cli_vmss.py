"""The az-vmss-shaped commands: bad input is named and stores nothing; secrets never print."""
import copy
import json

import pytest

from controller.cli.main import main
from controller.state.db import connect
from controller.state.scalesets import ScaleSetStore
from tests.test_model import BASE

SECRET = "hunter2-do-not-print"


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def stored(lab, monkeypatch):
    monkeypatch.setenv("SCALESET_LIBVIRT_URI", "test:///default")
    doc = copy.deepcopy(BASE)
    doc["properties"]["virtualMachineProfile"]["extensionProfile"] = {"extensions": [{"name": "setup", "properties": {
        "publisher": "Microsoft.Azure.Extensions", "type": "CustomScript",
        "settings": {"commandToExecute": "./run.sh"}, "protectedSettings": {"token": SECRET}}}]}
    ScaleSetStore(connect(lab.db)).create(doc)
    return lab


@pytest.mark.parametrize("argv, field, code", [
    (["--name", "web", "--image", "a:b:c:1.0.0"], "imageReference", "ImageNotFound"),
    (["--name", "web", "--image", "a:b:c"], "--image", "InvalidParameter"),
    (["--name", "web", "--image", "a:b:c:1.x"], "imageReference.version", "InvalidImageVersion"),
    (["--name", "web", "--image", "a:b:c:1.0.0", "--instance-count", "-1"], "sku.capacity", "InvalidParameter"),
    (["--name=-bad", "--image", "a:b:c:1.0.0"], "$.name", "InvalidResourceName"),
    (["--name", "web", "--image", "a:b:c:latest", "--enable-auto-os-upgrade", "true"],
     "enableAutomaticOSUpgrade", "AutomaticOSUpgradeRequiresHealthSource"),
])
def test_create_rejects_bad_input_naming_the_field_and_stores_nothing(lab, capsys, argv, field, code):
    rc, out, err = run(capsys, "create", *argv)
    assert rc == 1 and out == ""
    assert err.startswith(f"ERROR: ({code}) ") and field in err
    assert ScaleSetStore(connect(lab.db)).list() == []


def test_update_names_the_bad_path_and_keeps_the_model(stored, capsys):
    rc, _, err = run(capsys, "update", "-n", "web", "--set", "properties.upgradePolicy.rollingUpgradePolicy."
                                                              "maxBatchInstancePercent=500")
    assert rc == 1 and "maxBatchInstancePercent: 500 is out of range" in err
    rc, _, err = run(capsys, "update", "-n", "web", "--set", "properties.bogus=1")
    assert rc == 1 and "bogus" in err
    assert ScaleSetStore(connect(stored.db)).generation("web") == 1


def test_protected_settings_never_print(stored, capsys):
    rc, out, _ = run(capsys, "show", "-n", "web")
    assert rc == 0 and SECRET not in out
    assert json.loads(out)["properties"]["virtualMachineProfile"]["extensionProfile"]["extensions"][0][
        "properties"]["protectedSettings"] == "<redacted>"
    rc, out, err = run(capsys, "extension", "set", "--vmss-name", "web", "--name", "CustomScript",
                       "--publisher", "Microsoft.Azure.Extensions", "--protected-settings", '{"token": "' + SECRET)
    assert rc == 1 and SECRET not in out + err and "--protected-settings: is not valid JSON" in err


def test_list_shows_every_scale_set_and_no_secret(stored, capsys):
    rc, out, _ = run(capsys, "list")
    assert rc == 0 and SECRET not in out and [s["name"] for s in json.loads(out)] == ["web"]
    rc, out, _ = run(capsys, "list", "-o", "table")
    assert rc == 0 and out.splitlines()[0].split() == ["Name", "Capacity", "Mode", "ProvisioningState"]
    assert out.splitlines()[2].split()[0] == "web"


def test_extension_set_with_an_unknown_prerequisite_is_rejected(stored, capsys):
    rc, _, err = run(capsys, "extension", "set", "--vmss-name", "web", "--name", "CustomScript",
                     "--publisher", "Microsoft.Azure.Extensions", "--extension-instance-name", "second",
                     "--provision-after-extensions", "nope", "--settings", '{"commandToExecute": "true"}')
    assert rc == 1 and "names an unknown extension 'nope'" in err


def test_extension_set_adds_in_order_and_list_instances_is_empty_json(stored, capsys):
    rc, out, _ = run(capsys, "extension", "set", "--vmss-name", "web", "--name", "CustomScript",
                     "--publisher", "Microsoft.Azure.Extensions", "--extension-instance-name", "second",
                     "--provision-after-extensions", "setup", "--settings", '{"commandToExecute": "true"}')
    assert rc == 0
    exts = json.loads(out)["properties"]["virtualMachineProfile"]["extensionProfile"]["extensions"]
    assert [e["name"] for e in exts] == ["setup", "second"]
    assert json.loads(run(capsys, "list-instances", "-n", "web")[1]) == []
    rc, _, err = run(capsys, "reimage", "-n", "nope")
    assert rc == 1 and "scale set 'nope' not found" in err


def test_an_image_version_in_use_is_never_deleted(lab, capsys, qcow2_file):
    from controller.model.instance import Instance
    from controller.state.instances import InstanceStore
    ref = ["--publisher", "scaleset-lab", "--offer", "debian", "--sku", "debian-12"]
    for v in ("1.0.0", "1.1.0"):
        assert run(capsys, "image", "import", *ref, "--version", v, "--file", str(qcow2_file))[0] == 0
    db = connect(lab.db)
    ScaleSetStore(db).create(copy.deepcopy(BASE))
    profile = {"vm": {"storageProfile": {"imageReference": {"publisher": "scaleset-lab", "offer": "debian",
                                                            "sku": "debian-12", "version": "1.0.0"}}}}
    InstanceStore(db).insert(Instance("web", 0, "d0", "web000000", 0, 0, profile, "", "", "", "", {22: 1}))
    rc, _, err = run(capsys, "image", "delete", *ref, "--version", "1.0.0")
    assert rc == 1 and "(ImageVersionInUse)" in err and "in use by instances" in err
    assert run(capsys, "image", "delete", *ref, "--version", "1.1.0")[0] == 0
    assert [e["name"] for e in json.loads(run(capsys, "image", "list")[1])] == ["1.0.0"]
