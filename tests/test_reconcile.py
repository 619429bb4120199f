"""Scale-set operations and crash repair against libvirt's test:///default driver.

The guest side (the boot wait) is replaced by a stub: there is no guest in the test driver.
"""
import copy
import hashlib
import uuid
from pathlib import Path

import pytest

from controller.core.errors import ModelError
from controller.core.procs import process_tag
from controller.ops import commands as ops
from controller.ops import provision, views
from controller.ops.lab import Lab
from controller.virt import vm
from controller.virt.accel import Accel
from controller.virt.hypervisor import attached_os_disk
from controller.virt.readiness import Readiness
from tests.test_model import BASE

P, O, S = "scaleset-lab", "debian", "debian-12"


@pytest.fixture
def tlab(lab, qcow2_file, monkeypatch):
    t = Lab(lab, "test:///default", Accel("tcg", "test"))
    t.gallery.import_file(P, O, S, "1.0.0", qcow2_file)
    t.gallery.import_file(P, O, S, "1.1.0", qcow2_file)

    def booted(lab_, inst, started, timeout=0):
        exts = vm.typed_profile(inst).extensionProfile.extensions
        return vm.Booted(Readiness("done", str(uuid.uuid4()), {"version": inst.image["version"]}, {}),
                         [{"name": e.name, "provisioningState": "Succeeded"} for e in exts])

    monkeypatch.setattr(provision, "wait_booted", booted)
    monkeypatch.setattr(ops, "wait_booted", booted)
    doc = copy.deepcopy(BASE)
    doc["sku"]["capacity"] = 3
    doc["properties"]["upgradePolicy"]["mode"] = "Manual"
    doc["properties"]["virtualMachineProfile"]["storageProfile"]["imageReference"]["version"] = "1.0.0"
    ops.create(t, doc)
    yield t
    ops.delete(t, "web")
    t.close()


def digest(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_create_defines_tagged_domains_with_overlays_data_disks_and_seeds(tlab):
    insts = tlab.instances.list("web")
    assert [i.provisioning_state for i in insts] == ["Succeeded"] * 3
    for inst in insts:
        tag = tlab.hv.lookup(inst.domain).lab_tag()
        assert (tag.scale_set, tag.instance_id) == ("web", str(inst.instance_id))
        assert attached_os_disk(tlab.hv, inst.domain) == inst.os_disk
        assert sorted(p.name for p in inst.dir.iterdir()) == sorted(
            ["data-lun0.qcow2", "data-lun1.qcow2", Path(inst.os_disk).name, Path(inst.seed).name])
        assert Path(inst.seed).stat().st_mode & 0o777 == 0o600
    assert len({tuple(i.ports.values()) for i in insts}) == 3  # no shared forwards


def test_reimage_swaps_only_the_os_disk(tlab):
    inst = tlab.instances.get("web", 1)
    data = {p: digest(p) for p in inst.dir.glob("data-*")}
    [after] = ops.reimage(tlab, "web", ["1"])
    assert after.os_disk != inst.os_disk and not Path(inst.os_disk).exists()
    assert after.ci_instance_id != inst.ci_instance_id and after.ports == inst.ports
    assert {p: digest(p) for p in inst.dir.glob("data-*")} == data
    assert attached_os_disk(tlab.hv, after.domain) == after.os_disk


def test_manual_mode_flags_lagging_instances_until_update_instances(tlab):
    ops.update_model(tlab, "web", ["properties.virtualMachineProfile.storageProfile.imageReference.version=1.1.0"])
    ss = tlab.models.get("web")
    assert [views.latest_model_applied(ss, i) for i in tlab.instances.list("web")] == [False] * 3
    ops.update_instances(tlab, "web", None, update_domain=2)
    insts = tlab.instances.list("web")
    assert [views.latest_model_applied(ss, i) for i in insts] == [False, False, True]
    assert insts[2].image["version"] == "1.1.0" and insts[0].image["version"] == "1.0.0"


def _begin_killed_swap(tlab, switched: bool):
    """A reimage of instance 0 whose process died before (or after) the domain was switched."""
    ss = tlab.models.get("web")
    inst = tlab.instances.get("web", 0)
    new = provision.target_of(tlab, ss, inst, False, None)
    swap = tlab.journal.begin(inst, "reimage", new)
    provision.write_disks(tlab, new, tlab.image(new.image).path)
    if switched:
        provision.switch(tlab, new)
    tlab.db.execute("UPDATE disk_swaps SET owner_pid='999999999:0' WHERE id=?", (swap.id,))
    return inst, new


def test_repair_completes_a_swap_killed_after_the_switch(tlab):
    old, new = _begin_killed_swap(tlab, switched=True)
    done = ops._run(provision.reconcile(tlab, tlab.models.get("web")))
    assert done == ["instance 0: unfinished reimage completed"]
    inst = tlab.instances.get("web", 0)
    assert inst.os_disk == new.os_disk and not Path(old.os_disk).exists()
    assert inst.provisioning_state == "Succeeded"


def test_repair_undoes_a_swap_killed_before_the_switch(tlab):
    old, new = _begin_killed_swap(tlab, switched=False)
    done = ops._run(provision.reconcile(tlab, tlab.models.get("web")))
    assert done == ["instance 0: unfinished reimage undone"]
    inst = tlab.instances.get("web", 0)
    assert inst.os_disk == old.os_disk and Path(old.os_disk).exists() and not Path(new.os_disk).exists()
    assert attached_os_disk(tlab.hv, inst.domain) == old.os_disk
    assert tlab.hv.lookup(inst.domain).state() == "running"


def test_repair_removes_domains_without_records_and_redefines_lost_ones(tlab):
    gone = tlab.instances.get("web", 2)
    tlab.hv.lookup(gone.domain).undefine()
    stray = tlab.instances.get("web", 1)
    tlab.instances.delete("web", 1)
    done = ops._run(provision.reconcile(tlab, tlab.models.get("web")))
    assert f"domain {stray.domain}: no instance record; removed" in done
    assert "instance 2: domain missing; defined again" in done
    assert tlab.hv.lookup(stray.domain) is None and not stray.dir.exists()
    assert tlab.hv.lookup(gone.domain).state() == "running"


def test_an_instance_another_live_process_works_on_is_refused(tlab):
    inst = tlab.instances.get("web", 0)
    new = provision.target_of(tlab, tlab.models.get("web"), inst, False, None)
    swap = tlab.journal.begin(inst, "upgrade", new)
    tlab.db.execute("UPDATE disk_swaps SET owner_pid=? WHERE id=?", (process_tag(1), swap.id))
    with pytest.raises(ModelError) as err:
        ops.reimage(tlab, "web", ["0"])
    assert err.value.code == "OperationNotAllowed" and "busy" in err.value.reason
    tlab.db.execute("UPDATE disk_swaps SET phase='aborted' WHERE id=?", (swap.id,))


def test_scale_in_removes_the_highest_ids_with_their_disks(tlab):
    doomed = tlab.instances.get("web", 2)
    ops.scale(tlab, "web", 2)
    assert [i.instance_id for i in tlab.instances.list("web")] == [0, 1]
    assert tlab.hv.lookup(doomed.domain) is None and not doomed.dir.exists()
    assert tlab.models.get("web").sku.capacity == 2
