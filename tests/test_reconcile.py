"""Scale-set operations and crash repair against libvirt's test:///default driver.

The guest side (the boot wait) is replaced by a stub: there is no guest in the test driver.
"""
import copy
import posixpath
import uuid

import pytest

from controller.core.errors import ModelError
from controller.core.procs import process_tag
from controller.ops import commands as ops
from controller.ops import provision, views
from controller.ops.lab import Lab
from controller.virt import disks, vm
from controller.virt.accel import Accel
from controller.virt.hypervisor import attached_os_disk
from controller.virt.readiness import Readiness
from controller.virt.storage import GIB
from tests.fakepool import UPLOADS, disks_of
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


def name(inst, path: str) -> str:
    """A disk's volume name without its domain (`os-....qcow2`), as disks_of lists it."""
    return posixpath.basename(path)[len(inst.domain) + 1:]


def test_create_defines_tagged_domains_with_overlays_data_disks_and_seeds(tlab):
    insts = tlab.instances.list("web")
    assert [i.provisioning_state for i in insts] == ["Succeeded"] * 3
    for inst in insts:
        tag = tlab.hv.lookup(inst.domain).lab_tag()
        assert (tag.scale_set, tag.instance_id) == ("web", str(inst.instance_id))
        assert attached_os_disk(tlab.hv, inst.domain) == inst.os_disk
        pool = tlab.pool_of(inst)
        assert disks_of(pool, inst.domain) == sorted(["lun0.qcow2", "lun1.qcow2", name(inst, inst.os_disk), name(inst, inst.seed)])
        os_disk = disks.volume(pool, inst.os_disk)
        assert (os_disk.backing(), os_disk.backing_format()) == (str(tlab.image(inst.image).path), "qcow2")
        seed = UPLOADS[(pool.uri, pool.name, posixpath.basename(inst.seed))]
        assert b"CIDATA" in seed.upper() and inst.ci_instance_id.encode() in seed
    assert len({tuple(i.ports.values()) for i in insts}) == 3  # no shared forwards
    assert not [p for p in tlab.paths.home.rglob("*") if "seed" in p.name or p.suffix == ".qcow2"
                and tlab.paths.gallery not in p.parents]  # no disk of an instance outside the pool


def test_reimage_swaps_only_the_os_disk(tlab):
    inst = tlab.instances.get("web", 1)
    pool = tlab.pool_of(inst)
    pool.delete(f"{inst.domain}-lun0.qcow2")
    pool.create_blank(f"{inst.domain}-lun0.qcow2", 7)  # bigger than the model's: kept as it is, not made again
    [after] = ops.reimage(tlab, "web", ["1"])
    assert after.os_disk != inst.os_disk and not disks.exists(pool, inst.os_disk) and disks.exists(pool, after.os_disk)
    assert after.ci_instance_id != inst.ci_instance_id and after.ports == inst.ports
    assert pool.volume(f"{inst.domain}-lun0.qcow2").capacity == 7 * GIB
    assert disks_of(pool, inst.domain) == sorted(["lun0.qcow2", "lun1.qcow2", name(inst, after.os_disk), name(inst, after.seed)])
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
    provision.write_disks(tlab, new, tlab.image(new.image))
    if switched:
        provision.switch(tlab, new)
    tlab.db.execute("UPDATE disk_swaps SET owner_pid='999999999:0' WHERE id=?", (swap.id,))
    return inst, new


def test_repair_completes_a_swap_killed_after_the_switch(tlab):
    old, new = _begin_killed_swap(tlab, switched=True)
    done = ops._run(provision.reconcile(tlab, tlab.models.get("web")))
    assert done == ["instance 0: unfinished reimage completed"]
    inst = tlab.instances.get("web", 0)
    assert inst.os_disk == new.os_disk and not disks.exists(tlab.pool_of(inst), old.os_disk)
    assert inst.provisioning_state == "Succeeded"


def test_repair_undoes_a_swap_killed_before_the_switch(tlab):
    old, new = _begin_killed_swap(tlab, switched=False)
    done = ops._run(provision.reconcile(tlab, tlab.models.get("web")))
    assert done == ["instance 0: unfinished reimage undone"]
    inst = tlab.instances.get("web", 0)
    pool = tlab.pool_of(inst)
    assert inst.os_disk == old.os_disk and disks.exists(pool, old.os_disk) and not disks.exists(pool, new.os_disk)
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
    assert tlab.hv.lookup(stray.domain) is None and disks_of(tlab.pool_of(stray), stray.domain) == []
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
    assert tlab.hv.lookup(doomed.domain) is None and disks_of(tlab.pool_of(doomed), doomed.domain) == []
    assert tlab.models.get("web").sku.capacity == 2
