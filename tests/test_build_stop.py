"""Child processes of image builds belong to the lab's process (issue 27, defect 6): when the
controller stops (its API shutting down, a signal) a build's whole process group stops with it,
and what the build half-made is removed; a restarted controller sweeps what a dead one left.
A fake build step (a shell with a child of its own) stands in for mmdebstrap."""
from __future__ import annotations

import os
import tarfile
import threading
import time
from pathlib import Path

import pytest
import requests

from controller.core import procs, signals
from controller.core.errors import Interrupted
from images import builder
from images.gallery import owned, sweep
from tests.apiserver import serve

G = "scaleset-lab"
STEP = 'echo $$ > {pids}.tmp; sleep 300 & echo $! >> {pids}.tmp; mv {pids}.tmp {pids}; wait'


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def wait_for(condition, what: str, seconds: float = 20):
    """Wait for an event (not a timing assertion: the bound only ends a hung test)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"never happened: {what}")


def started(pids: Path) -> list[int]:
    wait_for(pids.exists, "the build step started")
    found = [int(x) for x in pids.read_text().split()]
    assert len(found) == 2 and all(alive(p) for p in found)
    return found


def run_in_thread(owner: procs.Children, args: list[str]) -> dict:
    box: dict = {}

    def go() -> None:
        try:
            with procs.owned_by(owner):
                box["result"] = procs.run(args, capture_output=True, text=True)
        except BaseException as exc:  # noqa: BLE001 - looked at by the test
            box["error"] = exc
    box["thread"] = threading.Thread(target=go, daemon=True)
    box["thread"].start()
    return box


def test_stopping_the_owner_ends_the_childs_whole_group(tmp_path):
    owner, pids = procs.Children(), tmp_path / "pids"
    box = run_in_thread(owner, ["sh", "-c", STEP.format(pids=pids)])
    leader, grandchild = started(pids)
    owner.stop()
    box["thread"].join(10)
    assert isinstance(box.get("error"), Interrupted)
    wait_for(lambda: not alive(leader) and not alive(grandchild), "the group ended")
    with pytest.raises(Interrupted), procs.owned_by(owner):
        procs.run(["true"])  # none starts after the stop


def test_a_signal_ends_the_childs_whole_group(tmp_path):
    owner, pids = procs.Children(), tmp_path / "pids"
    box = run_in_thread(owner, ["sh", "-c", "trap '' TERM; " + STEP.format(pids=pids)])  # deaf to SIGTERM
    leader, grandchild = started(pids)
    signals.STOP.set()  # what SIGTERM sets (the watchdog is not armed: this test process stays)
    try:
        box["thread"].join(10)
    finally:
        signals.reset()
    assert isinstance(box.get("error"), Interrupted)
    wait_for(lambda: not alive(leader) and not alive(grandchild), "the group ended (SIGKILL after the grace)")


def test_a_normal_child_runs_as_subprocess_run(tmp_path):
    res = procs.run(["sh", "-c", "cat; echo err >&2; exit 3"], input="in\n", capture_output=True, text=True)
    assert (res.returncode, res.stdout, res.stderr) == (3, "in\n", "err\n")


def fake_build(pids: Path, tar: Path) -> None:
    """Builds without root: a cached package set, and a disk step that runs for good (it and its
    child must be stopped), run as the builder runs its steps."""
    root = tar.parent / "rootfs"
    root.mkdir(exist_ok=True)
    with tarfile.open(tar, "w") as t:
        t.add(root, arcname=".")
    builder._require_root = lambda: None
    builder.package_set = lambda recipe, cache, log: tar
    builder.bootdisk.assemble = lambda *a: builder.bootdisk._run(["sh", "-c", STEP.format(pids=pids)], "disk")


BUILD = {"location": "local", "properties": {"lab": {"customize": []}}}


def test_an_api_started_build_stops_with_the_api_and_leaves_nothing(flab, driver, tmp_path, monkeypatch):
    for name in ("_require_root", "package_set"):
        monkeypatch.setattr(builder, name, getattr(builder, name))
    monkeypatch.setattr(builder.bootdisk, "assemble", builder.bootdisk.assemble)
    pids = tmp_path / "pids"
    fake_build(pids, tmp_path / "pkgset.tar")
    served = serve(flab, driver)
    api = next(served)
    r = requests.put(api.url(f"galleries/{G}/images/debian-12/versions/2.0.0"), params={"api-version": "2024-03-03"},
                     json=BUILD, headers={"Authorization": f"Bearer {api.token()}"}, verify=str(api.ca), timeout=10)
    assert r.status_code == 201, r.text
    leader, grandchild = started(pids)
    assert list(flab.paths.cache.glob(".build-*")), "the build works in its folder"
    served.close()  # the controller and its API stop
    wait_for(lambda: not alive(leader) and not alive(grandchild), "the build's processes ended")
    wait_for(lambda: not list(flab.paths.cache.glob(".build-*")), "the half-built image removed")
    assert [v.version for v in flab.gallery.list()] == ["1.0.0"]


HOOK = """from tests.fakepool import install
install()
from pathlib import Path
from tests.test_build_stop import fake_build
fake_build(Path({pids!r}), Path({tar!r}))
"""


def test_sigterm_of_the_controller_ends_an_api_started_build(flab, tmp_path):
    """`scaleset controller` as a process: SIGTERM during a build leaves no build process behind
    (it used to leave mmdebstrap running under PID 1)."""
    import signal
    import subprocess
    import sys

    from controller.api import endpoint, tls, tokens
    from controller.model.armid import DEFAULT_RESOURCE_GROUP, SUBSCRIPTION_ID
    from tests import fakepool
    pids, hook = tmp_path / "pids", tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(HOOK.format(pids=str(pids), tar=str(tmp_path / "pkgset.tar")))
    env = {**os.environ, "SCALESET_HOME": str(flab.paths.home), "SCALESET_PORTS_DIR": str(tmp_path),
           "SCALESET_LIBVIRT_URI": "test:///default", "PYTHONPATH": f"{hook}{os.pathsep}{fakepool.PYTHONPATH}"}
    err = tmp_path / "stderr"
    proc = subprocess.Popen([sys.executable, "-m", "controller.cli", "controller", "--interval", "0.2", "--no-files",
                             "--api-port", "0"], env=env, cwd=Path(__file__).resolve().parent.parent,
                            stdout=subprocess.DEVNULL, stderr=err.open("w"))
    try:
        wait_for(lambda: endpoint.recorded_port(flab.paths) is not None or proc.poll() is not None, "the API up", 60)
        assert proc.poll() is None, err.read_text()
        url = f"{endpoint.endpoint(endpoint.recorded_port(flab.paths))}/subscriptions/{SUBSCRIPTION_ID}/" \
              f"resourceGroups/{DEFAULT_RESOURCE_GROUP}/providers/Microsoft.Compute/galleries/{G}/images/" \
              "debian-12/versions/2.0.0"
        r = requests.put(url, params={"api-version": "2024-03-03"}, json=BUILD, timeout=10,
                         headers={"Authorization": f"Bearer {tokens.mint(flab.paths, 600)}"},
                         verify=str(tls.ensure_certs(flab.paths).ca))
        assert r.status_code == 201, r.text
        leader, grandchild = started(pids)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
    wait_for(lambda: not alive(leader) and not alive(grandchild), "the build's processes ended with the controller")
    assert [v.version for v in flab.gallery.list()] == ["1.0.0"]
    sweep(flab.paths.gallery, flab.paths.cache)  # what the next start does
    assert not list(flab.paths.cache.glob(".build-*")) and not list(flab.paths.gallery.rglob(".*partial"))
    assert "Traceback" not in err.read_text()


def test_a_restart_sweeps_what_a_dead_controllers_builds_left(lab, tmp_path):
    dead = lab.cache / ".build-999999999_1-abc"
    (dead / "root" / "etc").mkdir(parents=True)
    (dead / "root" / "etc" / "x").write_text("x")
    dead_import = lab.gallery / ".import-999999999_1-abc"
    dead_import.mkdir(parents=True)
    partial = lab.gallery / "p" / "o" / "s" / ".1.0.0.qcow2.999999999_1.partial"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"half")
    mine = lab.cache / f"{owned('.build-')}xyz"  # a live build (this process): kept
    mine.mkdir(parents=True)
    other = lab.gallery / "p" / "o" / "s" / "1.0.0.qcow2"
    other.write_bytes(b"published")
    assert sorted(sweep(lab.gallery, lab.cache)) == sorted([dead, dead_import, partial])
    assert not dead.exists() and not dead_import.exists() and not partial.exists()
    assert mine.is_dir() and other.is_file()
    os.rmdir(mine)
