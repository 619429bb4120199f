"""Host files behind an image (issue 27, defect 5) and sources checked before acceptance (defect 4):
a qcow2 with an external data file or a backing file is never published (gallery, CLI, API), and
every file that is not a readable qcow2 of this machine gets one answer, before any 2xx."""
from __future__ import annotations

import os
import subprocess

import pytest
import requests

from controller.cli.main import main
from controller.core.errors import ImageError
from images import qcow2
from images.source import check_source
from tests.helpers import make_qcow2

P, O, S = "scaleset-lab", "debian", "debian-12"
G, I = "scaleset-lab", "debian-12"
URI = "properties.storageProfile.osDiskImage.source.uri"


@pytest.fixture
def hostile(tmp_path):
    """A qcow2 whose data lives in a host file, and one with a backing file."""
    src = tmp_path / "src.raw"
    src.write_bytes(os.urandom(1024 * 1024))
    data_file = tmp_path / "datafile.qcow2"  # whole and consistent: only its data lives in a host file
    subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", "-o",
                    f"data_file={tmp_path / 'host-file.raw'}", str(src), str(data_file)], check=True)
    base = make_qcow2(tmp_path / "base.qcow2")
    overlay = tmp_path / "overlay.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(base), str(overlay)],
                   check=True)
    return {"data file": data_file, "backing file": overlay}


def test_the_header_names_a_data_file_or_a_backing_file(hostile, qcow2_file):
    assert "external data file" in qcow2.header_problem(qcow2.read_header(hostile["data file"]))
    assert "backing file" in qcow2.header_problem(qcow2.read_header(hostile["backing file"]))
    assert qcow2.header_problem(qcow2.read_header(qcow2_file)) is None


@pytest.mark.parametrize("kind", ["data file", "backing file"])
def test_a_qcow2_naming_a_host_file_is_never_published(flab, hostile, kind, tmp_path):
    with pytest.raises(ImageError) as err:
        flab.gallery.import_file(P, O, S, "2.0.0", hostile[kind])
    assert err.value.code == "InvalidImageFormat" and kind in err.value.reason
    built = tmp_path / "built.qcow2"  # a build's disk goes through the same check
    built.write_bytes(hostile[kind].read_bytes())
    with pytest.raises(ImageError):
        flab.gallery.publish(P, O, S, "2.0.1", built, source="built")
    assert [v.version for v in flab.gallery.list()] == ["1.0.0"]
    assert [p for p in flab.paths.gallery.rglob("*") if p.is_file() and p.suffix != ".qcow2"] == []


@pytest.mark.parametrize("kind", ["data file", "backing file"])
def test_the_cli_refuses_an_import_naming_a_host_file(flab, hostile, kind, capsys, monkeypatch):
    monkeypatch.setenv("SCALESET_LIBVIRT_URI", "test:///default")
    code = main(["image", "import", "--publisher", P, "--offer", O, "--sku", S, "--version", "2.0.0",
                 "--file", str(hostile[kind])])
    err = capsys.readouterr().err
    assert code == 1 and "--file" in err and kind in err, err
    assert [v.version for v in flab.gallery.list()] == ["1.0.0"]


def raw(api, method: str, path: str, **kw) -> requests.Response:
    return requests.request(method, api.url(path), params={"api-version": "2024-03-03"}, verify=str(api.ca),
                            timeout=10, headers={"Authorization": f"Bearer {api.token()}"}, **kw)


def put_source(api, uri: str, version: str = "2.0.0") -> requests.Response:
    return raw(api, "PUT", f"galleries/{G}/images/{I}/versions/{version}",
               json={"location": "local", "properties": {"storageProfile": {"osDiskImage": {"source": {"uri": uri}}}}})


@pytest.mark.parametrize("kind", ["data file", "backing file"])
def test_the_api_refuses_an_import_naming_a_host_file_before_accepting_it(api, hostile, kind):
    r = put_source(api, str(hostile[kind]))
    assert r.status_code == 400 and "Azure-AsyncOperation" not in r.headers, r.text
    err = r.json()["error"]
    assert err["target"] == URI and err["code"] == "InvalidImageFormat" and kind in err["message"]
    assert [v.version for v in api.lab.gallery.list()] == ["1.0.0"]


def _unfit(tmp_path, home):
    """Paths that are not a readable qcow2 image of this machine, each a different way."""
    junk = tmp_path / "junk.qcow2"
    junk.write_bytes(b"not a disk" * 100)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    link = tmp_path / "environ-link"
    link.symlink_to("/proc/self/environ")
    inside = home / "gallery" / "copy.qcow2"  # a real qcow2, but in the lab's own home
    make_qcow2(inside)
    return [tmp_path / "missing.qcow2", junk, fifo, link, tmp_path, inside, home / "state.db", home / "keys",
            "/proc/self/environ", "/dev/zero", "/etc/shadow", "/etc/passwd", "/sys/kernel/notes"]


def _same(answer: dict, path) -> dict:
    return {**answer, "message": answer["message"].replace(str(path), "PATH")}


def test_every_unfit_source_gets_one_answer_at_once(api, tmp_path):
    """Missing, not qcow2, a FIFO (never waited on), a link to /proc, the lab's state: no oracle."""
    answers = []
    for path in _unfit(tmp_path, api.lab.paths.home):
        r = put_source(api, str(path))
        assert r.status_code == 400 and "Azure-AsyncOperation" not in r.headers, (path, r.text)
        answers.append(_same(r.json()["error"], path))
    assert all(a == answers[0] for a in answers), answers
    assert answers[0]["target"] == URI and answers[0]["code"] == "InvalidParameter"
    assert [v.version for v in api.lab.gallery.list()] == ["1.0.0"]


def test_the_cli_gives_the_same_answer_for_the_lab_state_and_a_missing_file(lab, tmp_path, capsys):
    outs = []
    for path in (lab.home / "state.db", tmp_path / "missing.qcow2", "/proc/self/environ"):
        with pytest.raises(ImageError) as err:
            check_source(path, "--file", lab.home)
        outs.append((err.value.code, err.value.field, err.value.reason.replace(str(path), "PATH")))
    assert outs[0] == outs[1] == outs[2] and outs[0][:2] == ("InvalidParameter", "--file")


def test_a_link_to_a_good_qcow2_is_read_through(lab, qcow2_file, tmp_path):
    link = tmp_path / "link.qcow2"
    link.symlink_to(qcow2_file)
    assert check_source(link, "--file", lab.home) == qcow2_file.resolve()


def test_a_version_published_before_the_check_is_refused_where_it_is_used(flab, hostile):
    """An old lab's version with an external data file: never the base of an instance disk."""
    iv = flab.gallery.get(P, O, S, "1.0.0")
    os.chmod(iv.path, 0o644)
    iv.path.write_bytes(hostile["data file"].read_bytes())
    with pytest.raises(ImageError) as err:
        flab.gallery.verify(iv)
    assert err.value.code == "InvalidImageFormat" and "external data file" in err.value.reason
