"""The rolling-upgrade orchestrator against a fake hypervisor with scripted health."""
import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from controller.model.scaleset import RollingUpgradePolicy
from controller.ops import upgrade_plan as plan
from controller.ops.rolling import Orchestrator, start_upgrade
from controller.ops.service import Controller
from controller.ops.upgrade_views import history_item, latest_view
from controller.state.upgrades import UpgradeStore
from tests.fakedriver import FakeDriver, Killed, data_disk, make_scale_set
from tests.fakepool import KEPT_GB, FakeDisks, os_disks, size_gb

P, O, S = "scaleset-lab", "debian", "debian-12"
HEALTH_EXT = {"name": "health", "properties": {"publisher": "Microsoft.ManagedServices",
                                               "type": "ApplicationHealthLinux",
                                               "settings": {"protocol": "http", "port": 8080}}}


def model(capacity=5, **policy) -> dict:
    auto = {k: policy.pop(k) for k in list(policy) if k in ("enableAutomaticOSUpgrade", "disableAutomaticRollback")}
    return {"name": "web", "sku": {"capacity": capacity}, "properties": {
        "upgradePolicy": {"mode": "Automatic", "rollingUpgradePolicy": policy,
                          "automaticOSUpgradePolicy": {"enableAutomaticOSUpgrade": True, "useRollingUpgradePolicy": True,
                                                       **auto}},
        "labSettings": {"healthWaitTimeout": "PT0S", "autoUpgradeDelay": "PT30S"},
        "virtualMachineProfile": {
            "storageProfile": {"imageReference": {"publisher": P, "offer": O, "sku": S, "version": "latest"},
                               "dataDisks": [{"lun": 0, "diskSizeGB": 1}]},
            "osProfile": {"computerNamePrefix": "web"},
            "extensionProfile": {"extensions": [HEALTH_EXT]}}}}


def publish(lab, version, qcow2_file):
    lab.gallery.import_file(P, O, S, version, qcow2_file)


def run(lab, driver, started_by="Platform"):
    up = start_upgrade(lab, lab.models.get("web"), started_by)
    events = []
    asyncio.run(Orchestrator(lab, driver, poll_interval=0, on_event=events.append).run(up))
    return UpgradeStore(lab.db).get(up.id), events


def versions(lab):
    return [i.image["version"] for i in lab.instances.list("web")]


@pytest.mark.parametrize("total, pct, size", [(1, 20, 1), (2, 20, 1), (4, 20, 1), (5, 20, 1), (7, 20, 1),
                                              (100, 20, 20), (7, 50, 3), (4, 50, 2), (5, 100, 5)])
def test_batch_size_is_the_percentage_rounded_down_and_at_least_one(total, pct, size):
    assert plan.batch_size(total, pct) == size


def test_unhealthy_instances_go_first_when_prioritized():
    health = {0: "Healthy", 1: "Healthy", 2: "Unhealthy", 3: "Unknown", 4: "Initializing"}
    assert plan.next_batch([0, 1, 2, 3, 4], health, 2, True) == [2, 3]
    assert plan.next_batch([0, 1, 2, 3, 4], health, 2, False) == [0, 1]


def test_thresholds_are_more_than_the_percentage():
    policy = RollingUpgradePolicy()
    assert plan.health_breach({0: "Unhealthy", 1: "Healthy", 2: "Healthy", 3: "Healthy", 4: "Healthy"}, policy, 0) \
        is None  # 1 of 5 is 20 %, not more
    breach = plan.health_breach({0: "Unhealthy", 1: "Unknown", 2: "Healthy", 3: "Healthy", 4: "Initializing"},
                                policy, 0)
    assert breach[0] == plan.BEFORE and "2 of 5" in breach[1]
    assert plan.health_breach({0: "Unhealthy", 1: "Unknown", 2: "Healthy"}, policy, 3)[0] == plan.DURING
    assert plan.upgraded_breach(1, 1, policy)[0] == plan.UPGRADED and plan.upgraded_breach(1, 5, policy) is None


def test_rollback_rules():
    from controller.model.scaleset import AutomaticOSUpgradePolicy as A
    assert plan.automatic_rollback("Platform", A()) is True
    assert plan.automatic_rollback("User", A()) is False  # a manual trigger has no automatic rollback
    assert plan.automatic_rollback("Platform", A(disableAutomaticRollback=True)) is False


def test_upgrade_goes_in_batches_of_one_and_cleans_old_disks(flab, qcow2_file):
    d = FakeDriver()
    make_scale_set(flab, model(), d, "1.0.0")
    publish(flab, "2.0.0", qcow2_file)
    old = {i.instance_id: i.os_disk for i in flab.instances.list("web")}
    up, events = run(flab, d)
    assert up.status == "Completed" and up.batches_done == 5
    assert versions(flab) == ["2.0.0"] * 5
    assert [e for e in events if e.startswith("batch")] == [f"batch {n + 1}: instances [{n}] -> 2.0.0"
                                                           for n in range(5)]
    for inst in flab.instances.list("web"):
        assert not FakeDisks.exists(old[inst.instance_id])
        assert os_disks(inst) == [inst.os_disk]
        assert size_gb(data_disk(inst, 0)) == KEPT_GB
    view = latest_view(flab, up)
    assert view["runningStatus"]["code"] == "Completed"
    assert view["progress"] == {"successfulInstanceCount": 5, "failedInstanceCount": 0,
                                "inProgressInstanceCount": 0, "pendingInstanceCount": 0}


def test_bad_version_is_rolled_back_in_the_first_batch_and_faults(flab, qcow2_file):
    d = FakeDriver(bad_versions={"3.0.0"})
    make_scale_set(flab, model(), d, "1.0.0")
    publish(flab, "3.0.0", qcow2_file)
    before = {i.instance_id: i.os_disk for i in flab.instances.list("web")}
    up, _ = run(flab, d)
    assert up.status == "Faulted" and up.error_code == plan.UPGRADED
    assert versions(flab) == ["1.0.0"] * 5
    now = {i.instance_id: i.os_disk for i in flab.instances.list("web")}
    assert now == before and all(FakeDisks.exists(p) for p in now.values())  # old disk back, others untouched
    assert {i for s, i in d.steps} == {0}
    item = history_item(flab, up)
    assert item["properties"]["rollbackInfo"]["successfullyRolledbackInstanceCount"] == 1
    assert item["properties"]["error"]["code"] == plan.UPGRADED
    assert item["properties"]["startedBy"] == "Platform"


def test_manual_trigger_does_not_roll_back(flab, qcow2_file):
    d = FakeDriver(bad_versions={"3.0.0"})
    make_scale_set(flab, model(), d, "1.0.0")
    publish(flab, "3.0.0", qcow2_file)
    up, _ = run(flab, d, started_by="User")
    assert up.status == "Faulted" and versions(flab) == ["3.0.0"] + ["1.0.0"] * 4
    inst = flab.instances.get("web", 0)
    assert inst.provisioning_state == "Failed" and len(os_disks(inst)) == 1


def test_disabled_automatic_rollback_and_rollback_on_policy_breach(flab, qcow2_file):
    d = FakeDriver(bad_versions={"3.0.0"})
    make_scale_set(flab, model(disableAutomaticRollback=True), d, "1.0.0")
    publish(flab, "3.0.0", qcow2_file)
    up, _ = run(flab, d)
    assert up.status == "Faulted" and versions(flab)[0] == "3.0.0"
    doc = flab.models.get("web").to_json()
    doc["properties"]["upgradePolicy"]["rollingUpgradePolicy"]["rollbackFailedInstancesOnPolicyBreach"] = True
    flab.models.replace(doc)
    publish(flab, "3.1.0", qcow2_file)
    d.bad_versions.add("3.1.0")
    up, _ = run(flab, d, started_by="User")
    assert up.status == "Faulted" and versions(flab)[0] == "3.0.0"  # rolled back to what it ran before


def test_too_many_unhealthy_before_the_start_touches_nothing(flab, qcow2_file):
    d = FakeDriver()
    insts = make_scale_set(flab, model(), d, "1.0.0")
    for i in insts[:2]:
        d.attached_disks[i.domain] = "elsewhere"  # reads Unknown
    publish(flab, "2.0.0", qcow2_file)
    up, _ = run(flab, d)
    assert up.status == "Faulted" and up.error_code == plan.BEFORE and d.steps == []


def test_cancel_stops_after_the_in_flight_batch(flab, qcow2_file):
    d = FakeDriver()
    make_scale_set(flab, model(), d, "1.0.0")
    publish(flab, "2.0.0", qcow2_file)
    d.on_step = lambda step, inst: step == "boot" and UpgradeStore(flab.db).request_cancel("web")
    up, _ = run(flab, d)
    assert up.status == "Cancelled" and versions(flab) == ["2.0.0"] + ["1.0.0"] * 4


def test_history_keeps_five_attempts_of_two_months(flab, qcow2_file):
    d = FakeDriver()
    make_scale_set(flab, model(), d, "1.0.0")
    store = UpgradeStore(flab.db)
    for n in range(7):
        up = store.start("web", "User", {"version": f"1.0.{n}"}, {}, False)
        store.finish(up, "Completed")
    flab.db.execute("UPDATE rolling_upgrades SET start_time=? WHERE id=7",
                    ((datetime.now(timezone.utc) - timedelta(days=61)).isoformat(),))
    assert [u.id for u in store.history("web")] == [6, 5, 4, 3, 2]


def test_one_upgrade_at_a_time(flab, qcow2_file):
    make_scale_set(flab, model(), FakeDriver(), "1.0.0")
    start_upgrade(flab, flab.models.get("web"), "User")
    with pytest.raises(Exception) as err:
        start_upgrade(flab, flab.models.get("web"), "User")
    assert err.value.code == "RollingUpgradeInProgress"


def test_platform_waits_the_delay_and_never_loops_on_a_faulted_version(flab, qcow2_file):
    d = FakeDriver(bad_versions={"2.0.0"})
    make_scale_set(flab, model(), d, "1.0.0")
    now = [0.0]
    ctl = Controller(flab, d, say=lambda m: None, clock=lambda: now[0])
    ss = flab.models.get("web")
    assert ctl.due_version(ss) is None
    publish(flab, "2.0.0", qcow2_file)
    assert ctl.due_version(ss) is None  # seen now, due after autoUpgradeDelay (PT30S)
    now[0] = 29
    assert ctl.due_version(ss) is None
    now[0] = 30
    asyncio.run(ctl.run(once=True))  # due now: the platform starts it
    assert UpgradeStore(flab.db).latest("web").status == "Faulted"
    now[0] = 1000
    assert ctl.due_version(ss) is None and ctl.due_version(ss) is None  # no upgrade loop
    publish(flab, "2.1.0", qcow2_file)
    assert ctl.due_version(ss) is None
    now[0] = 1030
    assert ctl.due_version(ss) == "2.1.0"


def test_excluded_or_unreplicated_versions_and_opt_out_never_trigger(flab, qcow2_file):
    d = FakeDriver()
    make_scale_set(flab, model(), d, "1.0.0")
    ctl = Controller(flab, d, say=lambda m: None, clock=lambda: 1e9)
    flab.gallery.import_file(P, O, S, "2.0.0", qcow2_file, target_regions=["elsewhere"])
    assert ctl.due_version(flab.models.get("web")) is None
    flab.gallery.import_file(P, O, S, "3.0.0", qcow2_file)
    flab.gallery.update(P, O, S, "3.0.0", exclude_from_latest=True)
    assert ctl.due_version(flab.models.get("web")) is None
    flab.gallery.update(P, O, S, "3.0.0", exclude_from_latest=False)
    doc = flab.models.get("web").to_json()
    doc["properties"]["upgradePolicy"]["automaticOSUpgradePolicy"]["enableAutomaticOSUpgrade"] = False
    flab.models.replace(doc)
    assert ctl.due_version(flab.models.get("web")) is None


def run_until_killed(lab, driver, up) -> bool:
    """Run the upgrade; True when the driver's injected kill ended it (nothing after it ran)."""
    try:
        asyncio.run(Orchestrator(lab, driver, poll_interval=0).run(up))
        return False
    except Killed:
        return True


def resume_after_kill(lab, driver) -> None:
    """The killed process is gone (its leases on the upgrade and the swaps die with it): a
    controller started again resumes."""
    lab.db.execute("UPDATE rolling_upgrades SET owner='999999999:0'")
    lab.db.execute("UPDATE disk_swaps SET owner_pid='999999999:0'")
    driver.kill_at = None
    asyncio.run(Controller(lab, driver, say=lambda m: None).run(once=True))


# the first instance's steps; then the second batch's (good) or the rollback's (bad)
STEPS = [("write", 1), ("switch", 1), ("boot", 1), ("health", 1), ("write", 2), ("boot", 2)]


@pytest.mark.parametrize("bad", [False, True], ids=["good", "bad"])
@pytest.mark.parametrize("step, nth", STEPS + [("switch", 2)])
def test_a_kill_at_any_step_is_resumed_without_losing_a_disk(flab, qcow2_file, step, nth, bad):
    version = "2.0.0"
    d = FakeDriver(bad_versions={version} if bad else set(), kill_at=step, kill_nth=nth)
    make_scale_set(flab, model(), d, "1.0.0")
    publish(flab, version, qcow2_file)
    up = start_upgrade(flab, flab.models.get("web"), "Platform")
    killed = run_until_killed(flab, d, up)
    assert killed == ((step, nth, bad) != ("write", 2, True))  # a faulted upgrade writes no second disk
    for inst in flab.instances.list("web"):  # at the kill: every instance has a disk libvirt boots
        assert FakeDisks.exists(d.attached(inst))
    if killed:
        resume_after_kill(flab, d)
    up = UpgradeStore(flab.db).get(up.id)
    assert up.status == ("Faulted" if bad else "Completed")
    assert versions(flab) == (["1.0.0"] * 5 if bad else ["2.0.0"] * 5)
    for inst in flab.instances.list("web"):
        assert d.attached(inst) == inst.os_disk and FakeDisks.exists(inst.os_disk)
        assert os_disks(inst) == [inst.os_disk]  # nothing leaks
        assert size_gb(data_disk(inst, 0)) == KEPT_GB
    assert flab.db.execute("SELECT COUNT(*) FROM disk_swaps WHERE phase NOT IN ('done','aborted')").fetchone()[0] == 0


def test_watch_shows_batches_and_instances_after_every_event(flab, qcow2_file):
    from controller.cli.upgrade import _table
    d = FakeDriver(bad_versions={"3.0.0"})
    make_scale_set(flab, model(capacity=3), d, "1.0.0")
    publish(flab, "3.0.0", qcow2_file)
    up = start_upgrade(flab, flab.models.get("web"), "Platform")
    store, tables = UpgradeStore(flab.db), []

    def event(msg):  # what `rolling-upgrade start --watch` prints
        tables.append((msg, _table(flab, latest_view(flab, store.get(up.id)))))

    asyncio.run(Orchestrator(flab, d, poll_interval=0, on_event=event).run(up))
    for msg in ("batch 1: instances [0] -> 3.0.0", "instance 0: rolled back to 1.0.0"):
        shown = dict(tables)[msg].splitlines()
        assert shown[0].startswith("upgrade 1 -> 3.0.0: RollingForward")
        assert shown[3].split() == ["1", "0", "InProgress"]
    last = tables[-1][1].splitlines()
    assert last[0].startswith("upgrade 1 -> 3.0.0: Faulted")
    assert last[1].startswith("error: MaxUnhealthyUpgradedInstancePercentExceededInRollingUpgrade: 1 of 1")
    assert last[2].split() == ["Batch", "InstanceId", "State", "Swap", "Boot", "Health", "Rollback", "Error"]
    assert last[4].split()[:3] == ["1", "0", "RolledBack"] and len(last) == 5  # instances 1, 2 untouched
