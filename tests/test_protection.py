"""Instance protection (protectionPolicy): what each flag keeps an instance out of, on the fake
driver (rolling upgrades) and on test:///default (update-instances, reimage, scale), and the
flags through the CLI."""
import asyncio
import json

import pytest

from controller.cli.main import main
from controller.core.errors import ModelError
from controller.model.instance import (
    merge_protection,
    plan_capacity,
    set_action_targets,
)
from controller.ops import commands as ops
from controller.ops.protection import set_protection
from controller.ops.service import Controller
from controller.ops.upgrade_views import latest_view
from controller.web.snapshot import set_view
from tests.fakedriver import FakeDriver, make_scale_set
from tests.test_instances import _inst
from tests.test_reconcile import tlab  # noqa: F401 (fixture: a 3-instance set on test:///default)
from tests.test_rolling import model, publish, run, versions


def protect(lab, iid, scale_in=None, actions=None):
    return set_protection(lab, "web", str(iid), scale_in, actions)


# -- the rules, pure --------------------------------------------------------------------------------
def test_scale_in_removes_the_highest_unprotected_ids_and_refuses_what_protection_prevents():
    assert plan_capacity([0, 1, 2, 3, 4], 3, {4, 2}) == ([], [3, 1])
    assert plan_capacity([0, 1, 2], 3, {0, 1, 2}) == ([], [])
    assert plan_capacity([1, 2], 4, {1, 2}) == ([0, 3], [])  # scale-out is never blocked
    with pytest.raises(ModelError) as err:
        plan_capacity([0, 1, 2], 1, {1, 2})
    assert err.value.code == "OperationNotAllowed" and err.value.field == "sku.capacity"
    assert "instances 1, 2 are protected from scale-in (the lowest capacity is 2)" in err.value.reason


def test_protection_values_follow_azures_rules():
    inst = _inst(0)
    assert merge_protection(inst, None, None) == (False, False)
    assert merge_protection(inst, True, None) == (True, False)
    assert merge_protection(inst, None, True) == (True, True)  # scale-set actions include scale-in
    with pytest.raises(ModelError) as err:
        merge_protection(inst, False, True, ("--in", "--actions"))
    assert err.value.field == "--in" and "cannot be false when --actions is true" in err.value.reason
    inst.protect_from_scale_in = inst.protect_from_scale_set_actions = True
    assert merge_protection(inst, None, False) == (True, False)  # scale-in protection stays
    with pytest.raises(ModelError):
        merge_protection(inst, False, None)  # still protected from scale-set actions
    for bad in ("yes", 1, []):
        with pytest.raises(ModelError) as err:
            merge_protection(inst, None, bad, ("a", "b"))
        assert err.value.field == "b" and "must be true or false" in err.value.reason
    assert merge_protection(inst, "TRUE", "false") == (True, False)  # strings, as ARM reads them


def test_actions_on_the_set_skip_protected_instances_and_refuse_to_name_them():
    insts = [_inst(i) for i in range(3)]
    insts[1].protect_from_scale_set_actions = insts[1].protect_from_scale_in = True
    insts[2].protect_from_scale_in = True  # scale-in only: set actions still apply
    for wanted in (None, ["*"]):
        assert [i.instance_id for i in set_action_targets(insts, wanted)] == [0, 2]
    assert [i.instance_id for i in set_action_targets(insts, ["2", "0"])] == [2, 0]
    with pytest.raises(ModelError) as err:
        set_action_targets(insts, ["0", "1"])
    assert err.value.code == "OperationNotAllowed" and "protected from scale-set actions: 1" in err.value.reason


def test_a_save_of_an_older_copy_never_undoes_a_protection(flab):
    d = FakeDriver()
    make_scale_set(flab, model(capacity=2), d, "1.0.0")
    stale = flab.instances.get("web", 1)  # what an upgrade holds while the user protects the instance
    protect(flab, 1, actions=True)
    stale.error = "written by the VM work"
    flab.instances.save_many([stale])
    got = flab.instances.get("web", 1)
    assert got.error == "written by the VM work"
    assert (got.protect_from_scale_in, got.protect_from_scale_set_actions) == (True, True)
    assert flab.instances.get("web", 0).protection_policy() == {"protectFromScaleIn": False,
                                                                "protectFromScaleSetActions": False}


# -- rolling and automatic upgrades (the fake driver) ---------------------------------------------
def test_a_rolling_upgrade_skips_instances_protected_from_set_actions_and_completes(flab, qcow2_file):
    d = FakeDriver()
    make_scale_set(flab, model(), d, "1.0.0")
    protect(flab, 1, actions=True)
    protect(flab, 3, scale_in=True)  # protection from scale-in does not stop an upgrade
    publish(flab, "2.0.0", qcow2_file)
    up, events = run(flab, d)
    assert up.status == "Completed" and up.batches_done == 4
    assert versions(flab) == ["2.0.0", "1.0.0", "2.0.0", "2.0.0", "2.0.0"]
    assert [e for e in events if e.startswith("batch")] == [f"batch {n + 1}: instances [{i}] -> 2.0.0"
                                                           for n, i in enumerate([0, 2, 3, 4])]
    assert 1 not in {i for _, i in d.steps}  # never touched, not even a health read of its own
    assert latest_view(flab, up)["progress"] == {"successfulInstanceCount": 4, "failedInstanceCount": 0,
                                                 "inProgressInstanceCount": 0, "pendingInstanceCount": 0}


def test_protected_instances_count_in_the_unhealthy_share_of_the_whole_set(flab, qcow2_file):
    d = FakeDriver()
    insts = make_scale_set(flab, model(), d, "1.0.0")
    for i in (3, 4):
        protect(flab, i, actions=True)
    d.attached_disks[insts[4].domain] = "elsewhere"  # one protected instance unhealthy: 1 of 5, not more than 20 %
    publish(flab, "2.0.0", qcow2_file)
    up, _ = run(flab, d)
    assert up.status == "Completed" and versions(flab) == ["2.0.0"] * 3 + ["1.0.0"] * 2
    d.attached_disks[insts[3].domain] = "elsewhere"  # two protected unhealthy: 2 of 5 (of 3 unprotected: none)
    publish(flab, "3.0.0", qcow2_file)
    up, _ = run(flab, d)
    assert up.status == "Faulted" and up.error_code == "MaxUnhealthyInstancePercentExceededBeforeRollingUpgrade"
    assert "2 of 5 instances are unhealthy (instances 3, 4)" in up.error_message


def test_the_platform_starts_no_upgrade_for_protected_instances_alone(flab, qcow2_file):
    d = FakeDriver()
    make_scale_set(flab, model(capacity=2), d, "1.0.0")
    now = [0.0]
    ctl = Controller(flab, d, say=lambda m: None, clock=lambda: now[0])
    protect(flab, 0, actions=True)
    protect(flab, 1, actions=True)
    publish(flab, "2.0.0", qcow2_file)
    for now[0] in (0.0, 100.0):
        assert ctl.due_version(flab.models.get("web")) is None
    protect(flab, 1, actions=False)
    now[0] = 200.0
    assert ctl.due_version(flab.models.get("web")) is None  # seen now: due after autoUpgradeDelay
    now[0] = 230.0
    asyncio.run(ctl.run(once=True))
    assert versions(flab) == ["1.0.0", "2.0.0"]
    for now[0] in (300.0, 400.0):  # the protected instance left behind starts no new upgrade
        assert ctl.due_version(flab.models.get("web")) is None


def test_the_web_view_flags_protected_instances(flab):
    make_scale_set(flab, model(capacity=3), FakeDriver(), "1.0.0")
    protect(flab, 1, actions=True)
    protect(flab, 2, scale_in=True)
    cells = set_view(flab, "web", power_states=lambda lab, domains: {d: "running" for d in domains})["cells"]
    assert [c["protected"] for c in cells] == [None, "scale-set actions", "scale-in"]


# -- update-instances, reimage and scale on test:///default ---------------------------------------
def swaps(lab) -> int:
    return lab.db.execute("SELECT COUNT(*) FROM disk_swaps").fetchone()[0]


def test_update_instances_and_reimage_of_the_set_skip_protected_instances(tlab):  # noqa: F811
    ops.update_model(tlab, "web", ["properties.virtualMachineProfile.storageProfile.imageReference.version=1.1.0"])
    protect(tlab, 1, actions=True)
    protect(tlab, 2, scale_in=True)
    before = tlab.instances.get("web", 1)
    assert [i.instance_id for i in ops.update_instances(tlab, "web", ["*"])] == [0, 2]
    assert versions(tlab) == ["1.1.0", "1.0.0", "1.1.0"]
    n = swaps(tlab)
    for ids in (["1"], ["0", "1"]):  # named: refused whole, nothing recorded
        with pytest.raises(ModelError) as err:
            ops.update_instances(tlab, "web", ids)
        assert err.value.code == "OperationNotAllowed" and err.value.field == "--instance-ids"
    with pytest.raises(ModelError) as err:
        ops.update_instances(tlab, "web", None, update_domain=1)
    assert "no instance in update domain 1" in err.value.reason
    with pytest.raises(ModelError):
        ops.reimage(tlab, "web", ["1"])
    assert swaps(tlab) == n and tlab.instances.get("web", 1).os_disk == before.os_disk
    assert [i.instance_id for i in ops.reimage(tlab, "web", None)] == [0, 2]
    [after] = ops.reimage(tlab, "web", ["1"], on_instance=True)  # an action on the instance itself: not blocked
    assert after.os_disk != before.os_disk and after.image["version"] == "1.0.0"
    assert after.protect_from_scale_set_actions


def test_scale_in_skips_both_kinds_of_protection_and_says_when_it_cannot(tlab):  # noqa: F811
    protect(tlab, 2, scale_in=True)
    protect(tlab, 1, actions=True)
    assert [i.instance_id for i in ops.scale(tlab, "web", 2)] == [1, 2]
    with pytest.raises(ModelError) as err:
        ops.scale(tlab, "web", 1)
    assert err.value.code == "OperationNotAllowed" and "instances 1, 2 are protected from scale-in" in err.value.reason
    assert tlab.models.get("web").sku.capacity == 2 and len(tlab.instances.list("web")) == 2  # nothing changed
    assert [i.instance_id for i in ops.scale(tlab, "web", 3)] == [0, 1, 2]


# -- the CLI ----------------------------------------------------------------------------------------
def cli(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def fset(flab, monkeypatch):
    monkeypatch.setenv("SCALESET_LIBVIRT_URI", "test:///default")
    make_scale_set(flab, model(capacity=2), FakeDriver(), "1.0.0")
    return flab


def test_the_flags_round_trip_through_both_cli_spellings(fset, capsys):
    rc, out, _ = cli(capsys, "instance", "update", "-n", "web", "--instance-id", "1",
                     "--protect-from-scale-set-actions", "true")
    assert rc == 0 and json.loads(out)["protectionPolicy"] == {"protectFromScaleIn": True,
                                                               "protectFromScaleSetActions": True}
    rc, out, _ = cli(capsys, "update", "-n", "web", "--instance-id", "0", "--protect-from-scale-in", "true")
    assert rc == 0 and json.loads(out)["instanceId"] == "0"
    rc, out, _ = cli(capsys, "list-instances", "-n", "web")
    assert [v["protectionPolicy"] for v in json.loads(out)] == [
        {"protectFromScaleIn": True, "protectFromScaleSetActions": False},
        {"protectFromScaleIn": True, "protectFromScaleSetActions": True}]
    rc, out, _ = cli(capsys, "update", "-n", "web", "--instance-id", "1", "--protect-from-scale-in", "false",
                     "--protect-from-scale-set-actions", "false", "-o", "table")
    assert rc == 0 and out.splitlines()[2].split()[-2:] == ["False", "False"]
    assert out.splitlines()[0].split()[-2:] == ["ProtectFromScaleIn", "ProtectFromScaleSetActions"]


@pytest.mark.parametrize("argv, rc, said", [
    (["--instance-id", "1", "--protect-from-scale-in", "maybe"], 2, "--protect-from-scale-in: 'maybe' is not true"),
    (["--instance-id", "1", "--protect-from-scale-in", "false", "--protect-from-scale-set-actions", "true"], 1,
     "(InvalidParameter) --protect-from-scale-in: cannot be false when --protect-from-scale-set-actions is true"),
    (["--protect-from-scale-in", "true"], 1, "--instance-id: protection applies to an instance"),
    (["--instance-id", "1", "--set", "sku.capacity=3"], 1, "--set: with --instance-id"),
    (["--instance-id", "1"], 1, "--protect-from-scale-in: give it or --protect-from-scale-set-actions"),
    (["--instance-id", "7", "--protect-from-scale-in", "true"], 1, "(NotFound) --instance-id: no instance '7'"),
    ([], 1, "--set: give PATH=VALUE"),
])
def test_bad_protection_flags_are_named_and_change_nothing(fset, capsys, argv, rc, said):
    code, out, err = cli(capsys, "update", "-n", "web", *argv)
    assert code == rc and out == "" and said in err and "Traceback" not in err
    assert not any(i.scale_in_protected for i in fset.instances.list("web"))


def test_the_cli_names_what_a_set_action_skipped_or_refused(tlab, capsys, monkeypatch):  # noqa: F811
    monkeypatch.setenv("SCALESET_LIBVIRT_URI", "test:///default")
    protect(tlab, 1, actions=True)
    rc, out, err = cli(capsys, "update-instances", "-n", "web", "--instance-ids", "*")
    assert rc == 0 and [v["instanceId"] for v in json.loads(out)] == ["0", "2"]
    assert err.strip() == "skipped instance(s) 1: protected from scale-set actions"
    rc, out, err = cli(capsys, "reimage", "-n", "web", "--instance-ids", "2", "1")
    assert rc == 1 and out == "" and err.startswith("ERROR: (OperationNotAllowed) --instance-ids: may not contain "
                                                    "instances protected from scale-set actions: 1")
