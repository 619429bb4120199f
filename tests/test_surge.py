"""MaxSurge rolling upgrades on the fake driver: new instances first, old ones deleted once the
new ones are healthy; capacity never drops; the host-room fallback; a kill at every step."""
import asyncio

import pytest

from controller.ops import upgrade_plan as plan
from controller.ops.rolling import Orchestrator, start_upgrade
from controller.ops.upgrade_views import latest_view
from controller.state.upgrades import UpgradeStore
from controller.virt import disks
from tests.fakedriver import FakeDriver, Killed, data_disk, make_scale_set
from tests.fakepool import FakeDisks, disks_of, os_disks, size_gb
from tests.test_rolling import (
    model,
    publish,
    resume_after_kill,
    run_until_killed,
    versions,
)


def surge_model(capacity=5, **policy):
    pct = policy.get("maxBatchInstancePercent", 20)
    return model(capacity=capacity, maxSurge=True, maxUnhealthyInstancePercent=max(20, pct), **policy)


class Watcher:
    """At every driver step: the instances that run the disk of their row and are healthy."""

    def __init__(self, lab, driver):
        self.lab, self.driver, self.low = lab, driver, None
        driver.on_step = self.look

    def look(self, step, inst):
        healthy = sum(self.driver.attached(i) == i.os_disk and self.driver.state_of(i) == "Healthy"
                      and i.provisioning_state == "Succeeded" for i in self.lab.instances.list("web"))
        self.low = healthy if self.low is None else min(self.low, healthy)


def run(lab, driver, started_by="Platform"):
    up = start_upgrade(lab, lab.models.get("web"), started_by)
    events = []
    asyncio.run(Orchestrator(lab, driver, poll_interval=0, on_event=events.append).run(up))
    return UpgradeStore(lab.db).get(up.id), events


def leftovers(lab, driver):
    """Domains the fake still runs and domains with disk volumes in the pool that no instance row owns."""
    rows = lab.instances.list("web")
    domains = set(driver.attached_disks) - {i.domain for i in rows}
    owners = {disks.domain_of(v.name) for v in lab.pool_at(None).volumes()} - {i.domain for i in rows} - {None}
    return domains, owners


def test_refusal_rules():
    assert plan.surge_refusal(1, 512, 3, None, None) is None
    assert "SCALESET_MAX_GUESTS=4" in plan.surge_refusal(2, 512, 3, 4, None)
    assert plan.surge_refusal(2, 512, 3, 5, 2048 + plan.SURGE_RESERVE_MIB) is None
    assert "need 1024 MiB" in plan.surge_refusal(2, 512, 3, None, 1023 + plan.SURGE_RESERVE_MIB)


@pytest.mark.parametrize("capacity, pct", [(5, 20), (4, 50)])
def test_new_instances_replace_old_ones_and_capacity_never_drops(flab, qcow2_file, capacity, pct):
    d = FakeDriver()
    make_scale_set(flab, surge_model(capacity, maxBatchInstancePercent=pct), d, "1.0.0")
    publish(flab, "2.0.0", qcow2_file)
    old = flab.instances.list("web")
    watch = Watcher(flab, d)
    up, events = run(flab, d)
    assert up.status == "Completed"
    size = plan.batch_size(capacity, pct)
    assert up.batches_done == -(-capacity // size)
    assert watch.low == capacity  # never fewer healthy running instances than the capacity
    insts = flab.instances.list("web")
    assert [i.instance_id for i in insts] == list(range(capacity, 2 * capacity))  # new ids
    assert versions(flab) == ["2.0.0"] * capacity
    assert {i.update_domain for i in insts} == {i % 5 for i in range(capacity, 2 * capacity)}
    assert not any(disks_of(flab.pool_of(i), i.domain) for i in old)  # old instances went with their disks
    for inst in insts:  # new data disks from the model, new OS disk
        assert size_gb(data_disk(inst, 0)) == 1
        assert FakeDisks.exists(inst.os_disk) and inst.provisioning_state == "Succeeded"
    assert leftovers(flab, d) == (set(), set())
    assert all(b["mode"] == "MaxSurge" for b in up.batch_times)
    assert f"batch 1: new instances {list(range(capacity, capacity + size))} on 2.0.0 replace " \
           f"{list(range(size))} (MaxSurge)" in events
    view = latest_view(flab, up)
    assert view["progress"]["successfulInstanceCount"] == capacity
    assert [r["replacedBy"] for r in view["lab"]["instances"]] == list(range(capacity, 2 * capacity))


def test_a_new_instance_that_is_not_healthy_is_deleted_and_the_old_one_kept(flab, qcow2_file):
    d = FakeDriver(bad_versions={"2.0.0"})
    make_scale_set(flab, surge_model(), d, "1.0.0")
    publish(flab, "2.0.0", qcow2_file)
    watch = Watcher(flab, d)
    up, events = run(flab, d)
    assert up.status == "Faulted" and up.error_code == plan.UPGRADED
    assert watch.low == 5
    assert [i.instance_id for i in flab.instances.list("web")] == [0, 1, 2, 3, 4]
    assert versions(flab) == ["1.0.0"] * 5
    assert leftovers(flab, d) == (set(), set())
    rows = UpgradeStore(flab.db).instances(up)
    assert [(r["instanceId"], r["state"], r["replacedBy"]) for r in rows] == [(0, "RolledBack", 5)]
    assert "instance 5: deleted; instance 0 kept on 1.0.0 (RolledBack)" in events
    assert flab.db.execute("SELECT COUNT(*) FROM disk_swaps WHERE phase NOT IN ('done','aborted')").fetchone()[0] == 0
    # ids are never handed out twice: the next attempt's new instance is 6, not 5 again
    d.bad_versions.clear()
    flab.db.execute("DELETE FROM rolling_upgrades WHERE status='Faulted' AND 0")  # the history stays
    up2, _ = run(flab, d, "User")
    assert up2.status == "Completed"
    assert [i.instance_id for i in flab.instances.list("web")] == [6, 7, 8, 9, 10]


def test_a_manual_start_counts_a_discarded_instance_as_failed(flab, qcow2_file):
    d = FakeDriver(boot_fails_versions={"2.0.0"})
    make_scale_set(flab, surge_model(), d, "1.0.0")
    publish(flab, "2.0.0", qcow2_file)
    up, _ = run(flab, d, "User")
    assert up.status == "Faulted"
    assert [r["state"] for r in UpgradeStore(flab.db).instances(up)] == ["Failed"]
    assert versions(flab) == ["1.0.0"] * 5 and leftovers(flab, d) == (set(), set())


def test_no_room_on_the_host_falls_back_to_in_place_for_that_batch(flab, qcow2_file):
    d = FakeDriver()
    make_scale_set(flab, surge_model(capacity=4, maxBatchInstancePercent=50), d, "1.0.0")
    publish(flab, "2.0.0", qcow2_file)
    d.room = 1  # two are needed per batch
    up, events = run(flab, d)
    assert up.status == "Completed" and versions(flab) == ["2.0.0"] * 4
    assert [i.instance_id for i in flab.instances.list("web")] == [0, 1, 2, 3]  # upgraded in place
    assert [b["mode"] for b in up.batch_times] == ["InPlace", "InPlace"]
    assert "no room for 2 more instances: the fake host holds 1 more" in up.batch_times[0]["fallback"]
    assert any("upgrading in place" in e for e in events)


# one replacement's steps (write, switch, boot, health, then the old or the new one removed),
# and the second batch's first steps
STEPS = [("write", 1), ("switch", 1), ("boot", 1), ("health", 1), ("remove", 1), ("write", 2), ("health", 2)]


@pytest.mark.parametrize("bad", [False, True], ids=["good", "bad"])
@pytest.mark.parametrize("step, nth", STEPS)
def test_a_kill_at_any_step_loses_no_instance_and_leaves_no_duplicate(flab, qcow2_file, step, nth, bad):
    d = FakeDriver(bad_versions={"2.0.0"} if bad else set(), kill_at=step, kill_nth=nth)
    make_scale_set(flab, surge_model(), d, "1.0.0")
    publish(flab, "2.0.0", qcow2_file)
    up = start_upgrade(flab, flab.models.get("web"), "Platform")
    killed = run_until_killed(flab, d, up)
    assert killed == (not bad or (step, nth) in STEPS[:5])  # a faulted upgrade starts no second batch
    for inst in flab.instances.list("web"):  # at the kill: every instance row has a bootable disk or is new
        assert FakeDisks.exists(inst.os_disk) or inst.provisioning_state == "Creating"
    if killed:
        resume_after_kill(flab, d)
    up = UpgradeStore(flab.db).get(up.id)
    assert up.status == ("Faulted" if bad else "Completed")
    insts = flab.instances.list("web")
    assert len(insts) == 5  # none lost, none left twice
    assert versions(flab) == (["1.0.0"] * 5 if bad else ["2.0.0"] * 5)
    for inst in insts:
        assert d.attached(inst) == inst.os_disk and FakeDisks.exists(inst.os_disk)
        assert os_disks(inst) == [inst.os_disk]
    assert leftovers(flab, d) == (set(), set())
    assert flab.db.execute("SELECT COUNT(*) FROM disk_swaps WHERE phase NOT IN ('done','aborted')").fetchone()[0] == 0


def test_scale_does_not_count_replacements_in_flight(flab, qcow2_file):
    from controller.ops import commands
    d = FakeDriver(kill_at="health", kill_nth=1)
    make_scale_set(flab, surge_model(), d, "1.0.0")
    publish(flab, "2.0.0", qcow2_file)
    up = start_upgrade(flab, flab.models.get("web"), "Platform")
    with pytest.raises(Killed):
        asyncio.run(Orchestrator(flab, d, poll_interval=0).run(up))
    assert UpgradeStore(flab.db).surging("web") == {5}
    commands.scale(flab, "web", 5)
    assert [i.instance_id for i in flab.instances.list("web")] == [0, 1, 2, 3, 4, 5]  # 5 is not an extra one
