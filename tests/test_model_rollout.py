"""Modes Automatic and Rolling: the controller applies a changed model by itself (Rolling in
batches, Automatic to every instance at once), once per model; Manual waits for the user.
And the policy an automatic OS upgrade follows (useRollingUpgradePolicy)."""
import asyncio

import pytest

from controller.model.instance import profile_digest
from controller.model.scaleset import RollingUpgradePolicy, parse
from controller.ops import upgrade_plan as plan
from controller.ops.service import Controller
from controller.state.upgrades import UpgradeStore
from tests.fakedriver import FakeDriver, make_scale_set
from tests.test_rolling import model

CUSTOM = "properties.virtualMachineProfile.osProfile.customData"


def set_model(mode, capacity=5, **policy):
    doc = model(capacity=capacity, enableAutomaticOSUpgrade=False, **policy)
    doc["properties"]["upgradePolicy"]["mode"] = mode
    return doc


def change(lab, value="IyBuZXcK"):
    """A model change that needs a new OS disk (customData is read at first boot)."""
    doc = lab.models.get("web").to_json()
    doc["properties"]["virtualMachineProfile"]["osProfile"]["customData"] = value
    lab.models.replace(doc)


def look(lab, driver, ctl=None):
    ctl = ctl or Controller(lab, driver, say=lambda m: None)
    asyncio.run(ctl.run(once=True))
    return ctl


def test_policy_of_each_start():
    ss = parse(set_model("Automatic", maxBatchInstancePercent=10, maxSurge=True))
    assert plan.upgrade_policy(ss, "User").maxBatchInstancePercent == 10
    assert plan.upgrade_policy(ss, "Platform").maxBatchInstancePercent == 10  # useRollingUpgradePolicy
    ss.properties.upgradePolicy.automaticOSUpgradePolicy.useRollingUpgradePolicy = False
    assert plan.upgrade_policy(ss, "Platform") == RollingUpgradePolicy()  # Azure's default policy
    all_at_once = plan.upgrade_policy(ss, "User", model_change=True)
    assert (all_at_once.maxBatchInstancePercent, all_at_once.maxSurge) == (100, False)
    ss.properties.upgradePolicy.mode = "Rolling"
    assert plan.upgrade_policy(ss, "Platform").maxBatchInstancePercent == 10  # Rolling: the set's policy
    assert plan.upgrade_policy(ss, "User", model_change=True).maxBatchInstancePercent == 10


@pytest.mark.parametrize("mode, batches", [("Rolling", 5), ("Automatic", 1)])
def test_a_changed_model_is_rolled_out_by_the_controller(flab, mode, batches):
    d = FakeDriver()
    make_scale_set(flab, set_model(mode), d, "1.0.0")
    ctl = look(flab, d)
    assert UpgradeStore(flab.db).latest("web") is None  # every instance is on the model
    change(flab)
    ctl = look(flab, d, ctl)
    up = UpgradeStore(flab.db).latest("web")
    assert (up.status, up.started_by, up.batches_done) == ("Completed", "User", batches)
    insts = flab.instances.list("web")
    assert {i.profile_digest for i in insts} == {profile_digest(flab.models.get("web"))}
    assert all(i.profile["vm"]["osProfile"]["customData"] == "IyBuZXcK" for i in insts)
    look(flab, d, ctl)
    assert UpgradeStore(flab.db).latest("web").id == up.id  # once per model


def test_manual_mode_waits_for_the_user(flab):
    d = FakeDriver()
    make_scale_set(flab, set_model("Manual"), d, "1.0.0")
    change(flab)
    look(flab, d)
    assert UpgradeStore(flab.db).latest("web") is None
    assert d.steps == []


def test_a_model_rollout_that_faulted_is_not_started_again_for_the_same_model(flab):
    d = FakeDriver(bad_versions={"1.0.0"})  # the instances stay unhealthy: the first batch fails
    make_scale_set(flab, set_model("Rolling"), d, "1.0.0")
    d.bad_versions.clear()
    change(flab)
    d.bad_versions.add("1.0.0")
    ctl = look(flab, d)
    first = UpgradeStore(flab.db).latest("web")
    assert first.status == "Faulted"
    look(flab, d, ctl)
    assert UpgradeStore(flab.db).latest("web").id == first.id
    change(flab, "IyBuZXdlcgo=")  # a newer model is rolled out again
    d.bad_versions.clear()
    look(flab, d, ctl)
    assert UpgradeStore(flab.db).latest("web").status == "Completed"
