"""`scaleset region ...` on libvirt's test driver: hosts are checked before a region is stored,
bad flags are named in one line, a dead host costs the timeout and no more."""
import copy
import json
import socket
import threading
import time

import libvirt
import pytest

from controller.cli.main import main
from controller.state.db import connect
from controller.state.scalesets import ScaleSetStore
from controller.virt import hostcheck
from tests.test_model import BASE

TEST = "test:///default"


def run(capsys, *argv):
    code = main(["region", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def rlab(lab, monkeypatch):
    monkeypatch.setenv("SCALESET_LIBVIRT_URI", TEST)
    conn = libvirt.open(TEST)  # the test driver's state lives while a connection is open
    yield lab
    conn.close()


@pytest.fixture
def silent_host():
    """A 127.0.0.1 port that accepts connections and never answers (a host that hangs)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    held = []
    threading.Thread(target=lambda: [held.append(srv.accept()) for _ in range(8)], daemon=True).start()
    yield f"qemu+tcp://127.0.0.1:{srv.getsockname()[1]}/system"
    for c, _ in held:
        c.close()
    srv.close()


def names(capsys):
    code, out, _ = run(capsys, "list")
    assert code == 0
    return [r["name"] for r in json.loads(out)]


def test_add_list_show_remove(rlab, capsys):
    code, out, err = run(capsys, "add", "--name", "east", "--host", TEST, "--pool", "default-pool",
                         "--host", "test:///default?second", "--ssh", "root@h1", "--ssh", "root@h2:2222")
    assert (code, err) == (0, "")
    hosts = json.loads(out)["hosts"]
    assert [(h["faultDomain"], h["pool"], h["ssh"], h["status"]["pool"]) for h in hosts] == \
        [(0, "default-pool", "root@h1", "active"), (1, "default-pool", "root@h2:2222", "active")]
    assert names(capsys) == ["local", "east"]
    code, out, _ = run(capsys, "list", "-o", "table")
    assert out.splitlines()[3].split() == ["east", "True", "2"]
    code, out, _ = run(capsys, "show", "--name", "EAST")
    assert code == 0 and [h["status"]["answers"] for h in json.loads(out)["hosts"]] == [True, True]
    code, out, _ = run(capsys, "show", "--name", "local", "-o", "table")
    local = out.splitlines()[2].split()
    assert code == 0 and local[:4] == ["local", "0", TEST, f"scaleset-lab-{local[3][-8:]}"] and "True" in local
    code, _, err = run(capsys, "remove", "--name", "east")
    assert code == 0 and "removed region east (2 host(s))" in err
    assert names(capsys) == ["local"]


def test_a_host_without_its_pool_is_refused_unless_a_path_makes_one(rlab, capsys):
    code, out, err = run(capsys, "add", "--name", "east", "--host", TEST, "--pool", "nope")
    assert code == 1 and out == "" and err.count("\n") == 1
    assert err.startswith(f"ERROR: (HypervisorError) {TEST}: has no storage pool 'nope'")
    assert names(capsys) == ["local"]
    code, out, _ = run(capsys, "add", "--name", "east", "--host", TEST, "--pool", "nope", "--pool-path", "/srv/lab")
    assert code == 0 and json.loads(out)["hosts"][0]["status"]["pool"] == "created"
    assert libvirt.open(TEST).storagePoolLookupByName("nope").isActive()
    code, _, err = run(capsys, "add", "--name", "west", "--host", TEST, "--pool", "nope", "--pool-path", "/elsewhere")
    assert code == 1 and "storage pool 'nope' is at /srv/lab, not at /elsewhere" in err
    code, out, _ = run(capsys, "add", "--name", "west", "--host", TEST, "--pool", "nope", "--no-check")
    assert code == 0 and "status" not in json.loads(out)["hosts"][0]


@pytest.mark.parametrize("argv, flag, reason", [
    (["--name", "we st", "--host", TEST, "--pool", "p"], "--name", "is not a region name"),
    (["--name", "e", "--host", "http://h1/system", "--pool", "p"], "--host", "is not a libvirt URI with a scheme"),
    (["--name", "e", "--host", TEST, "--pool", "a/b"], "--pool", "is not a pool name"),
    (["--name", "e", "--host", TEST, "--pool", "p", "--pool-path", "x"], "--pool-path", "absolute"),
    (["--name", "e", "--host", TEST, "--pool", "p", "--ssh", "a@b:c"], "--ssh", "[user@]host[:port]"),
    (["--name", "e", "--host", TEST, "--host", TEST, "--pool", "p"], "--host", "is already host 0"),
    (["--name", "e", "--host", TEST, "--host", "qemu:///x", "--host", "qemu:///y", "--pool", "p", "--pool", "q"],
     "--pool", "given 2 times for 3 --host"),
    (["--name", "e", "--host", TEST, "--host", "qemu:///x", "--pool", "p", "--ssh", "h1"],
     "--ssh", "once per --host"),
    (["--name", "local", "--host", TEST, "--pool", "p"], "--name", "always exists"),
])
def test_bad_flags_are_named_in_one_line_and_store_nothing(rlab, capsys, argv, flag, reason):
    code, out, err = run(capsys, "add", *argv)
    assert code == 1 and out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("ERROR: (") and f") {flag}: " in err and reason in err
    assert names(capsys) == ["local"]


def test_a_taken_name_is_a_conflict(rlab, capsys):
    assert run(capsys, "add", "--name", "east", "--host", TEST, "--pool", "default-pool")[0] == 0
    code, _, err = run(capsys, "add", "--name", "East", "--host", "qemu:///x", "--pool", "p")
    assert code == 1 and err.startswith("ERROR: (Conflict) --name: region 'East' already exists")


def test_a_host_that_never_answers_costs_the_timeout_only(rlab, capsys, monkeypatch, silent_host):
    monkeypatch.setattr(hostcheck, "TIMEOUT", 1.0)
    t0 = time.monotonic()
    code, _, err = run(capsys, "add", "--name", "east", "--host", TEST, "--host", silent_host, "--pool", "default-pool")
    assert code == 1 and f"{silent_host}: no answer from libvirt within 1 s" in err
    assert time.monotonic() - t0 < 5 and names(capsys) == ["local"]
    assert run(capsys, "add", "--name", "east", "--host", TEST, "--host", silent_host, "--pool", "default-pool",
               "--no-check")[0] == 0
    t0 = time.monotonic()
    code, out, _ = run(capsys, "show", "--name", "east")
    statuses = [h["status"] for h in json.loads(out)["hosts"]]
    assert code == 0 and [s["answers"] for s in statuses] == [True, False] and time.monotonic() - t0 < 5


def test_remove_is_refused_while_a_scale_set_is_there(rlab, capsys):
    assert run(capsys, "add", "--name", "east", "--host", TEST, "--pool", "default-pool")[0] == 0
    ScaleSetStore(connect(rlab.db)).create({**copy.deepcopy(BASE), "location": "east"})
    code, _, err = run(capsys, "remove", "--name", "east")
    assert code == 1 and err.startswith("ERROR: (RegionInUse) name: region 'east' is the location of scale set(s) web")
    assert names(capsys) == ["local", "east"]
    for name, code_ in (("local", "OperationNotAllowed"), ("nowhere", "ResourceNotFound")):
        code, _, err = run(capsys, "remove", "--name", name)
        assert code == 1 and err.startswith(f"ERROR: ({code_}) ")
    code, _, err = run(capsys, "show", "--name", "westeurope")
    assert code == 1 and err.startswith("ERROR: (ResourceNotFound) --name: region 'westeurope' not found")
