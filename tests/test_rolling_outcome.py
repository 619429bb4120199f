"""How a rolling upgrade ends when its upgraded instances fail: a threshold of 100 % lets each
batch pass, but an upgrade none of whose instances became healthy is Faulted, never Completed."""
import asyncio

import pytest

from controller.ops import upgrade_plan as plan
from controller.ops.rolling import Orchestrator, start_upgrade
from controller.state.upgrades import UpgradeStore
from tests.fakedriver import FakeDriver, make_scale_set
from tests.test_rolling import model, publish, run, versions

LAX = {"maxUnhealthyUpgradedInstancePercent": 100, "maxUnhealthyInstancePercent": 100}


class OneBad(FakeDriver):
    """Instance 0 never becomes healthy on the new version; the others do."""

    def state_of(self, inst):
        state = super().state_of(inst)
        return "Unhealthy" if state == "Healthy" and inst.instance_id == 0 and inst.image["version"] != "1.0.0" \
            else state


@pytest.mark.parametrize("capacity", [1, 3])
@pytest.mark.parametrize("rollback", [True, False], ids=["rolled-back", "left-failed"])
def test_an_automatic_upgrade_whose_instances_all_failed_is_faulted(flab, qcow2_file, capacity, rollback):
    d = FakeDriver(bad_versions={"3.0.0"})
    make_scale_set(flab, model(capacity, **LAX, disableAutomaticRollback=not rollback), d, "1.0.0")
    publish(flab, "3.0.0", qcow2_file)
    up, events = run(flab, d, "Platform")
    assert (up.status, up.error_code) == ("Faulted", plan.UPGRADED), events
    assert f"none of the {capacity} upgraded instances became healthy" in up.error_message
    states = {r["state"] for r in UpgradeStore(flab.db).instances(up)}
    assert states == ({"RolledBack"} if rollback else {"Failed"})
    assert versions(flab) == ["1.0.0" if rollback else "3.0.0"] * capacity
    assert events[-1].startswith("upgrade Faulted")


def test_a_model_change_applied_at_once_that_fails_everywhere_is_faulted(flab, qcow2_file):
    d = FakeDriver(bad_versions={"3.0.0"})
    make_scale_set(flab, model(4), d, "1.0.0")
    publish(flab, "3.0.0", qcow2_file)
    up = start_upgrade(flab, flab.models.get("web"), "User", model_change=True)  # mode Automatic: all at once
    assert up.policy["maxUnhealthyUpgradedInstancePercent"] == 100
    asyncio.run(Orchestrator(flab, d, poll_interval=0).run(up))
    up = UpgradeStore(flab.db).get(up.id)
    assert (up.status, up.error_code, up.batches_done) == ("Faulted", plan.UPGRADED, 1)


def test_some_failed_within_the_threshold_still_completes(flab, qcow2_file):
    d = OneBad()
    make_scale_set(flab, model(3, **LAX), d, "1.0.0")
    publish(flab, "2.0.0", qcow2_file)
    up, events = run(flab, d, "Platform")
    assert up.status == "Completed", events
    assert sorted(r["state"] for r in UpgradeStore(flab.db).instances(up)) == ["RolledBack", "Succeeded", "Succeeded"]
