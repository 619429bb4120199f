"""kill -9 of `scaleset controller` while an API operation is InProgress, then a restart: the
operation's URL still answers (and ends: resumed, or Failed OperationPreempted), the scale set
converges, nothing leaks. The controller is a process of its own on a test-driver lab whose
domains and volumes outlive it (tests/killlab.py); SIGTERM says whether it cut something off."""
from __future__ import annotations

import copy
import re
import signal
import xml.etree.ElementTree as ET

import pytest

from controller.state.db import connect
from images.gallery import Gallery
from tests.killlab import KillLab, until
from tests.test_model import BASE

P, O, S = "scaleset-lab", "debian", "debian-12"


def model(capacity: int) -> dict:
    doc = copy.deepcopy(BASE)
    doc.pop("name")
    doc["sku"]["capacity"] = capacity
    doc["properties"]["upgradePolicy"]["mode"] = "Manual"
    doc["properties"]["virtualMachineProfile"]["storageProfile"].pop("dataDisks")
    doc["properties"]["virtualMachineProfile"]["networkProfile"] = {}
    return doc


def publish(paths, version: str, qcow2) -> None:
    db = connect(paths.db)
    try:
        Gallery(paths, db).import_file(P, O, S, version, qcow2)
    finally:
        db.close()


@pytest.fixture
def k(lab, tmp_path, qcow2_file):
    publish(lab, "1.0.0", qcow2_file)
    kl = KillLab(lab, tmp_path)
    kl.qcow2 = qcow2_file
    yield kl
    if kl.proc is not None and kl.proc.poll() is None:
        kl.proc.kill()
        kl.proc.wait()


def swaps(k: KillLab, phase: str, kind: str | None = None) -> int:
    q = "SELECT COUNT(*) FROM disk_swaps WHERE phase=?" + (" AND kind=?" if kind else "")
    return k.db(q, *((phase, kind) if kind else (phase,)))[0][0]


def ended(k: KillLab, op_url: str) -> dict:
    """The operation once it ended, polled at its URL (never 404 on the way)."""
    def look():
        r = k.poll(op_url)
        assert r.status_code == 200, r.text
        return r.json() if r.json()["status"] != "InProgress" else None
    return until(look, 60, "the operation ended")


def create(k: KillLab, name: str = "web", capacity: int = 2) -> None:
    r = k.call("PUT", k.set_url(name), model(capacity))
    assert r.status_code == 201, r.text
    assert ended(k, r.headers["Azure-AsyncOperation"])["status"] == "Succeeded"


def assert_converged(k: KillLab, name: str = "web", capacity: int | None = None) -> None:
    view = k.call("GET", k.set_url(name)).json()
    assert view["properties"]["provisioningState"] == "Succeeded", view
    states = [s for (s,) in k.db("SELECT provisioning_state FROM instances WHERE scale_set=?", name)]
    assert states == ["Succeeded"] * (capacity if capacity is not None else len(states))
    assert k.db("SELECT COUNT(*) FROM disk_swaps WHERE phase NOT IN ('done','aborted')") == [(0,)]


def assert_no_leaks(k: KillLab) -> None:
    """libvirt holds the domains and volumes of the instance rows, and nothing else."""
    rows = k.db("SELECT domain, os_disk, seed FROM instances")
    virt = k.virt()
    domains = sorted(ET.fromstring(d["xml"]).findtext("name") for d in virt["domains"])
    volumes = sorted(ET.fromstring(v).findtext("target/path") for p in virt["pools"] for v in p["volumes"])
    assert domains == sorted(r[0] for r in rows)
    assert volumes == sorted(p for r in rows for p in r[1:])


def test_a_create_killed_in_its_boot_wait_is_resumed_and_ends_succeeded(k):
    k.start()
    k.hold_steps()
    r = k.call("PUT", k.set_url("web"), model(2))
    op = r.headers["Azure-AsyncOperation"]
    until(lambda: swaps(k, "swapped", "create") == 2, why="both guests in their boot wait")
    assert k.poll(op).json()["status"] == "InProgress"
    k.kill()
    k.start()  # the guests still boot: the restarted controller resumes the create, InProgress meanwhile
    assert k.poll(op).json()["status"] == "InProgress"
    until(lambda: k.db("SELECT owner FROM operations")[0][0].startswith(f"{k.proc.pid}:"), why="taken up")
    assert k.poll(op).json()["status"] == "InProgress"
    k.release()
    done = ended(k, op)
    assert done["status"] == "Succeeded" and "endTime" in done
    assert k.poll(op, monitor="true").status_code == 200  # the Location URL: done, its body was in the dead process
    assert_converged(k, capacity=2)
    assert_no_leaks(k)
    assert "operation" in k.log() and "Succeeded" in k.log()


def test_a_scale_out_killed_midway_converges_after_a_restart_and_its_operation_ends(k):
    k.start()
    create(k, capacity=1)
    k.hold_steps()
    r = k.call("PATCH", k.set_url("web"), {"sku": {"capacity": 3}})
    assert r.status_code == 200, r.text
    op = r.headers["Azure-AsyncOperation"]
    until(lambda: swaps(k, "swapped", "create") == 2, why="two new guests in their boot wait")
    k.kill()
    k.release()
    k.start()
    done = ended(k, op)  # resumed; the set converges, but an update's end says what it cannot know
    assert done["status"] == "Failed" and done["error"]["code"] == "OperationPreempted", done
    assert "brought it to its stored capacity (3" in done["error"]["message"]
    assert_converged(k, capacity=3)
    assert_no_leaks(k)


def test_a_reimage_killed_midway_fails_preempted_and_the_set_converges(k):
    k.start()
    create(k)
    before = dict(k.db("SELECT instance_id, os_disk FROM instances"))
    k.hold_steps()
    r = k.call("POST", k.set_url("web", "/reimage"), {})
    assert r.status_code == 202, r.text
    op = r.headers["Azure-AsyncOperation"]
    until(lambda: swaps(k, "swapped", "reimage") == 2, why="both reimaged guests in their boot wait")
    k.kill()
    k.release()
    k.start()
    done = ended(k, op)
    assert done["status"] == "Failed" and done["error"]["code"] == "OperationPreempted", done
    assert "the controller stopped while the operation ran" in done["error"]["message"]
    assert "unfinished reimage completed" in done["error"]["message"]
    monitor = k.poll(op, monitor="true")
    assert monitor.status_code == 409 and monitor.json()["error"]["code"] == "OperationPreempted"
    assert_converged(k, capacity=2)
    assert dict(k.db("SELECT instance_id, os_disk FROM instances")) != before  # on their new disks
    assert_no_leaks(k)


def test_a_rolling_upgrade_killed_midway_is_resumed_and_its_operation_ends_with_it(k):
    k.start()
    create(k)
    publish(k.paths, "1.1.0", k.qcow2)
    k.hold_steps()
    r = k.call("POST", k.set_url("web", "/osRollingUpgrade"))
    assert r.status_code == 202, r.text
    op = r.headers["Azure-AsyncOperation"]
    until(lambda: swaps(k, "prepared", "rolling") == 1  # a rolling upgrade writes no `swapped` (journal.py)
          and k.db("SELECT COUNT(*) FROM rolling_upgrades WHERE status='RollingForward'") == [(1,)],
          why="the first batch in its boot wait")
    k.kill()
    k.release()
    k.start()
    assert ended(k, op)["status"] == "Succeeded"
    assert k.db("SELECT status FROM rolling_upgrades") == [("Completed",)]
    versions = {v for (v,) in k.db("SELECT json_extract(p.profile, '$.vm.storageProfile.imageReference.version') "
                                   "FROM instances i JOIN profiles p ON p.ref = i.profile")}
    assert versions == {"1.1.0"}
    assert_converged(k, capacity=2)
    assert_no_leaks(k)


def test_a_set_whose_guests_still_boot_after_a_restart_holds_up_no_other_set(k):
    """Set `slow` is created, set `web` rolls an upgrade; both are killed in boot waits. After the
    restart `slow`'s guests still boot: `web`'s upgrade is resumed and its operation ends all the
    same, while `slow`'s create stays InProgress until its guests are up."""
    k.start()
    create(k, "web")
    publish(k.paths, "1.1.0", k.qcow2)
    k.hold_steps()
    slow = k.call("PUT", k.set_url("slow"), model(1)).headers["Azure-AsyncOperation"]
    up = k.call("POST", k.set_url("web", "/osRollingUpgrade")).headers["Azure-AsyncOperation"]
    until(lambda: swaps(k, "swapped", "create") == 1 and swaps(k, "prepared", "rolling") == 1,
          why="a guest of each set in its boot wait")
    k.kill()
    k.hold_steps("slow")
    k.release()
    k.start()
    assert ended(k, up)["status"] == "Succeeded"
    assert k.poll(slow).json()["status"] == "InProgress"
    assert [s for (s,) in k.db("SELECT provisioning_state FROM instances WHERE scale_set='slow'")] == ["Creating"]
    k.release("slow")
    assert ended(k, slow)["status"] == "Succeeded"
    assert_converged(k, "slow", 1)
    assert_converged(k, "web", 2)
    assert_no_leaks(k)


def test_a_delete_killed_midway_is_resumed(k):
    k.start(hold_at="purge")
    create(k)
    k.hold_steps()
    r = k.call("DELETE", k.set_url("web"))
    assert r.status_code == 202, r.text
    op = r.headers["Azure-AsyncOperation"]
    until(lambda: len(k.virt()["domains"]) == 1, why="one of the two domains removed")
    k.kill()
    k.release()
    k.start()
    assert ended(k, op)["status"] == "Succeeded"
    assert k.call("GET", k.set_url("web")).status_code == 404
    assert k.db("SELECT COUNT(*) FROM instances") == [(0,)]
    assert_no_leaks(k)
    assert k.virt()["domains"] == [] and all(p["volumes"] == [] for p in k.virt()["pools"])


LINE = re.compile(r"ERROR: \(OperationPreempted\) interrupted by SIGTERM; run scaleset repair .*")


def test_sigterm_says_the_controller_stopped_and_only_mentions_repair_when_it_cut_something_off(k):
    k.start()
    create(k, capacity=1)
    assert k.stop(signal.SIGTERM) == 143
    text = k.log()
    assert "controller stopped (SIGTERM)" in text and "ERROR" not in text and "Traceback" not in text, text

    k.start()
    k.hold_steps()
    r = k.call("PATCH", k.set_url("web"), {"sku": {"capacity": 2}})
    op = r.headers["Azure-AsyncOperation"]
    until(lambda: swaps(k, "swapped", "create") == 1, why="the new guest in its boot wait")
    assert k.stop(signal.SIGTERM) == 143
    lines = [ln for ln in k.log().splitlines() if ln.startswith("ERROR:")]
    assert len(lines) == 1 and LINE.fullmatch(lines[0]), k.log()
    assert "controller stopped" not in k.log()
    k.release()
    k.start()  # what the stop cut off is taken up
    assert ended(k, op)["error"]["code"] == "OperationPreempted"
    assert_converged(k, capacity=2)
    assert_no_leaks(k)
