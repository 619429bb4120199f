"""`delete` removes everything of a scale set whatever a killed command left, and `reconcile`
closes journal rows whose instance is gone instead of failing on them (libvirt's test driver).

A kill is a BaseException raised at one journalled step (nothing after it runs, as with
SIGKILL); the journal rows are then given a dead owner, as a killed process leaves them.
"""
import copy
import uuid

import pytest

from controller.core.errors import ModelError
from controller.core.procs import process_tag
from controller.model.instance import domain_name
from controller.ops import commands as ops
from controller.ops import provision
from controller.state import journal
from controller.state.journal import SwapJournal
from controller.virt import vm
from controller.virt.ports import PortAllocator
from controller.virt.readiness import Readiness
from tests.fakedriver import Killed
from tests.fakepool import os_disks
from tests.test_model import BASE

P, O, S = "scaleset-lab", "debian", "debian-12"
DEAD = "999999999:0"
IMAGE_VERSION = "properties.virtualMachineProfile.storageProfile.imageReference.version"
# (table, column naming the set): every table that holds rows about a scale set
SET_TABLES = [("scale_sets", "name"), ("instances", "scale_set"), ("disk_swaps", "scale_set"),
              ("rolling_upgrades", "scale_set"), ("health", "scale_set")]


def booted(lab_, inst, started, timeout=0):
    exts = vm.typed_profile(inst).extensionProfile.extensions
    return vm.Booted(Readiness("done", str(uuid.uuid4()), {"version": inst.image["version"]}, {}),
                     [{"name": e.name, "provisioningState": "Succeeded"} for e in exts])


@pytest.fixture
def klab(flab, qcow2_file, monkeypatch):
    """flab with version 1.1.0 too, and a boot wait that answers at once (no guest here)."""
    flab.gallery.import_file(P, O, S, "1.1.0", qcow2_file)
    monkeypatch.setattr(provision, "wait_booted", booted)
    monkeypatch.setattr(ops, "wait_booted", booted)
    return flab


def model(capacity: int = 2) -> dict:
    doc = copy.deepcopy(BASE)
    doc["sku"]["capacity"] = capacity
    doc["properties"]["upgradePolicy"]["mode"] = "Manual"
    doc["properties"]["virtualMachineProfile"]["storageProfile"]["imageReference"]["version"] = "1.0.0"
    return doc


def kill_at(monkeypatch, step: str) -> None:
    """Make the first pass through `step` die like a killed process."""
    def die(*a, **kw):
        raise Killed(step)

    def after(module, name):
        orig = getattr(module, name)

        def wrapped(*a, **kw):
            orig(*a, **kw)
            raise Killed(step)
        monkeypatch.setattr(module, name, wrapped)

    if step == "prepared":  # recorded, no disk written yet
        monkeypatch.setattr(provision, "write_disks", die)
    elif step == "disks written":
        after(provision, "write_disks")
    elif step == "switched":  # the domain runs on the new disk, not yet recorded
        after(provision, "switch")
    elif step == "swapped recorded":
        orig = SwapJournal.set_phase

        def set_phase(self, swap, phase, error=None):
            orig(self, swap, phase, error)
            if phase == "swapped":
                raise Killed(step)
        monkeypatch.setattr(SwapJournal, "set_phase", set_phase)
    elif step == "booted":  # the boot wait returned; nothing settled
        after(provision, "wait_booted")
    elif step == "settle recorded":  # the instance row points at the new disk; old disk not deleted
        monkeypatch.setattr(journal, "drop_old", die)
    else:
        raise AssertionError(step)


def mark_dead(lab) -> int:
    """What a killed process leaves: its unfinished swaps owned by a pid that no longer runs."""
    return lab.db.execute("UPDATE disk_swaps SET owner_pid=? WHERE phase NOT IN ('done','aborted')",
                          (DEAD,)).rowcount


def assert_nothing_left(lab, name: str = "web") -> None:
    home = str(lab.paths.home)
    assert [d.name for d in lab.hv.lab_domains(home)] == []
    prefix = domain_name(lab.paths.home, name, 0)[:-1]  # this lab's (test:///default is shared by the process)
    assert [d.name() for d in lab.hv.conn.listAllDomains() if d.name().startswith(prefix)] == []
    assert [v.name for v in lab.pool_at(None).volumes()] == []  # the lab's own pool: no disk left
    assert not lab.paths.disks.exists() or list(lab.paths.disks.iterdir()) == []
    for table, column in SET_TABLES:
        assert lab.db.execute(f"SELECT COUNT(*) FROM {table} WHERE {column}=?", (name,)).fetchone()[0] == 0, table
    assert lab.db.execute("SELECT COUNT(*) FROM upgrade_instances").fetchone()[0] == 0
    assert lab.db.execute("SELECT COUNT(*) FROM profiles").fetchone()[0] == 0
    assert [o for o in PortAllocator().leases().values() if o.startswith(home + "#")] == []
    assert list(lab.paths.keys.glob("hostkeys/*")) == []
    assert list(lab.paths.logs.glob("*.console.log")) == []


STEPS = ["prepared", "disks written", "switched", "swapped recorded", "booted", "settle recorded"]


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("command", ["create", "reimage", "update-instances"])
def test_delete_after_a_kill_at_each_journalled_step_leaves_nothing(klab, command, step):
    if command != "create":
        ops.create(klab, model())
        ops.update_model(klab, "web", [IMAGE_VERSION + "=1.1.0"])
    with pytest.MonkeyPatch.context() as mp, pytest.raises(Killed):
        kill_at(mp, step)
        if command == "create":
            ops.create(klab, model())
        elif command == "reimage":
            ops.reimage(klab, "web", None)
        else:
            ops.update_instances(klab, "web", None)
    assert mark_dead(klab) > 0 or step == "settle recorded"
    removed = ops.delete(klab, "web")
    assert len(removed) == 2
    assert_nothing_left(klab)


def test_delete_after_the_instance_rows_went_first(klab):
    """The reported case: a create killed in its boot wait, then an older delete that removed
    the instance rows but not the journal: repair, scale and delete all failed from then on."""
    with pytest.MonkeyPatch.context() as mp, pytest.raises(Killed):
        kill_at(mp, "booted")
        ops.create(klab, model())
    mark_dead(klab)
    klab.db.execute("DELETE FROM instances")
    assert klab.hv.lab_domains(str(klab.paths.home))  # one or both: the other create may be cut off earlier
    done = ops._run(provision.reconcile(klab, klab.models.get("web")))
    assert done == [f"instance {i}: unfinished create closed: the instance is gone; its disks removed"
                    for i in (0, 1)]
    assert klab.db.execute("SELECT COUNT(*) FROM disk_swaps WHERE phase NOT IN ('done','aborted')").fetchone()[0] == 0
    assert [d.name for d in klab.hv.lab_domains(str(klab.paths.home))] == []
    assert [v.name for v in klab.pool_at(None).volumes()] == []
    ops.scale(klab, "web", 1)  # the set works again
    assert [i.provisioning_state for i in klab.instances.list("web")] == ["Succeeded"]
    ops.delete(klab, "web")
    assert_nothing_left(klab)


def test_delete_is_refused_while_a_live_process_works_on_the_set(klab):
    ops.create(klab, model())
    with pytest.MonkeyPatch.context() as mp, pytest.raises(Killed):
        kill_at(mp, "switched")
        ops.reimage(klab, "web", ["1"])
    klab.db.execute("UPDATE disk_swaps SET owner_pid=? WHERE phase NOT IN ('done','aborted')", (process_tag(1),))
    with pytest.raises(ModelError) as err:
        ops.delete(klab, "web")
    assert err.value.code == "OperationNotAllowed" and "pid 1)" in err.value.reason
    assert len(klab.instances.list("web")) == 2 and len(klab.hv.lab_domains(str(klab.paths.home))) == 2
    mark_dead(klab)
    ops.delete(klab, "web")
    assert_nothing_left(klab)


def test_delete_of_a_set_with_leftovers_but_no_model_and_of_nothing(klab):
    ops.create(klab, model(1))
    klab.db.execute("PRAGMA foreign_keys=OFF")
    klab.db.execute("DELETE FROM scale_sets")
    klab.db.execute("PRAGMA foreign_keys=ON")
    assert ops.delete(klab, "web") == [domain_name(klab.paths.home, "web", 0)]
    assert_nothing_left(klab)
    with pytest.raises(ModelError) as err:
        ops.delete(klab, "web")
    assert err.value.code == "ResourceNotFound"


def test_a_busy_instance_refuses_the_whole_command_before_anything_is_recorded(klab, monkeypatch):
    """Another live process starts on instance 2 while this reimage plans its new disks: the
    reimage records nothing at all (not 0 and 1 first, left unfinished when 2 is refused)."""
    ops.create(klab, model(3))
    target_of = ops.target_of

    def other_process_begins(lab, ss, inst, *a):
        if inst.instance_id == 0:
            other = klab.instances.get("web", 2)
            klab.journal.begin(other, "upgrade", target_of(lab, ss, other, False, None))
            klab.db.execute("UPDATE disk_swaps SET owner_pid=? WHERE phase='prepared'", (process_tag(1),))
        return target_of(lab, ss, inst, *a)

    monkeypatch.setattr(ops, "target_of", other_process_begins)
    with pytest.raises(ModelError) as err:
        ops.reimage(klab, "web", None)
    assert err.value.code == "OperationNotAllowed" and "instance 2 is busy" in err.value.reason
    assert "pid 1)" in err.value.reason
    assert klab.db.execute("SELECT instance_id FROM disk_swaps WHERE kind='reimage'").fetchall() == []
    assert [i.provisioning_state for i in klab.instances.list("web")] == ["Succeeded"] * 3
    assert [len(os_disks(i)) for i in klab.instances.list("web")] == [1, 1, 1]
    mark_dead(klab)
    ops.delete(klab, "web")
    assert_nothing_left(klab)
