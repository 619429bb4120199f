"""Bringing instances to life and back: plan, materialize (disks, seed, domain), wait, settle.

Every instance creation and OS-disk swap goes through the swap journal (state/journal.py), so a
killed command leaves something `reconcile()` can finish. Slow steps (domain start, boot
wait) run in threads; the database is only touched from the event loop's thread.
"""
from __future__ import annotations

import asyncio
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

from controller.core.errors import HypervisorError, ImageError, Interrupted, LabError, ModelError
from controller.model import extensions as ext_mod
from controller.model import placement
from controller.model.instance import (
    DOMAINS,
    Instance,
    applied_profile,
    computer_name,
    domain_name,
    guest_ports,
    profile_digest,
)
from controller.model.scaleset import ScaleSet
from controller.ops import extupdate
from controller.ops.lab import IMAGE_REF, Lab
from controller.state.health import HealthStore
from controller.state.journal import (
    Swap,
    new_side,
    old_side,
    settle_new,
    settle_old,
)
from controller.state.upgrades import UpgradeStore
from controller.virt import disks, vm
from controller.virt.hypervisor import attached_os_disk
from controller.virt.ports import PortAllocator
from controller.virt.storage import Backing, Pool, Volume
from images.gallery import ImageVersion

BOOT_TIMEOUT = 600.0  # seconds for a new OS disk to reach "cloud-init done"


def port_owner(lab: Lab, domain: str) -> str:
    return f"{lab.paths.home}#{domain}"


def allocate_ports(lab: Lab, domain: str, wanted: list[int], existing: dict[int, int]) -> dict[int, int]:
    """Host ports on 127.0.0.1 for each guest port; existing forwards keep their host port."""
    mapping = {g: h for g, h in existing.items() if g in wanted}
    hosts = PortAllocator().allocate(port_owner(lab, domain), max(len(wanted), len(existing)))
    free = [h for h in hosts if h not in mapping.values()]
    for g in wanted:
        if g not in mapping:
            mapping[g] = free.pop(0)
    return mapping


def plan_instance(lab: Lab, ss: ScaleSet, instance_id: int, image: ImageVersion) -> Instance:
    """A new instance's record: its fault domain and host from its region (placement.place; on
    `local` and a label region the host is the local one, recorded as None)."""
    dom = domain_name(lab.paths.home, ss.name, instance_id)
    region = lab.region_of(ss)
    where = placement.place(ss, region, instance_id)
    host = where.host if region.configured else None
    inst = Instance(
        scale_set=ss.name, instance_id=instance_id, domain=dom,
        computer_name=computer_name(ss.properties.virtualMachineProfile.osProfile.computerNamePrefix, instance_id),
        update_domain=instance_id % DOMAINS, fault_domain=where.fault_domain,
        host_uri=host.uri if host else None, host_pool=host.pool if host else None,
        profile=applied_profile(ss, image.version), profile_digest=profile_digest(ss),
        os_disk="", seed="", ci_instance_id="", ports=allocate_ports(lab, dom, guest_ports(ss), {}))
    folder = lab.pool_dir(host)  # its disks are volumes of that host's pool
    inst.os_disk = posixpath.join(folder, disks.os_disk_name(dom))
    inst.ci_instance_id = vm.new_ci_instance_id(inst)
    inst.seed = posixpath.join(folder, disks.seed_name(dom, inst.ci_instance_id))
    return inst


def target_of(lab: Lab, ss: ScaleSet, inst: Instance, to_model: bool, image: ImageVersion | None,
              applied: tuple[dict, str] | None = None) -> Instance:
    """The instance as it will be on a fresh OS disk: its own profile (reimage) or the model's
    (`applied`: the model's profile and digest, when the caller computed them once for many)."""
    new = Instance.__new__(Instance)  # a shallow copy (fast): the fields that differ are replaced, not changed
    new.__dict__.update(inst.__dict__)
    pool_dir = posixpath.dirname(inst.os_disk)  # its pool's directory on its host (disks.path_in)
    new.os_disk = posixpath.join(pool_dir, disks.os_disk_name(inst.domain))
    new.provisioning_state, new.error = "Updating", None
    if to_model:
        assert image is not None
        new.profile, new.profile_digest = applied or (applied_profile(ss, image.version), profile_digest(ss))
        wanted = guest_ports(ss)
        if sorted(wanted) != sorted(inst.ports):  # a new probe port: lease one more forward
            new.ports = allocate_ports(lab, inst.domain, wanted, inst.ports)
    new.ci_instance_id = vm.new_ci_instance_id(inst)
    new.seed = posixpath.join(pool_dir, disks.seed_name(inst.domain, new.ci_instance_id))
    return new


# -- steps run in threads (no database) ------------------------------------------------------
def backing(lab: Lab, inst: Instance, iv: ImageVersion) -> Volume | Backing:
    """What the instance's OS overlay backs onto: on the local host the gallery's file, on another
    host the version's replica in that host's pool (ImageError ImageNotReplicated without one)."""
    if lab.here(inst):
        return Backing(str(iv.path), iv.virtual_size_bytes)
    pool = lab.pool_of(inst)
    replica = pool.volume(iv.volume_name)
    if replica is None:
        raise ImageError(IMAGE_REF, f"image version {iv.version} has no replica ({iv.volume_name}) in pool "
                                    f"{pool.name} on host {inst.host_uri}; replicate it to that host first",
                         "ImageNotReplicated")
    return replica


def write_disks(lab: Lab, inst: Instance, iv: ImageVersion) -> None:
    """The new OS disk and seed (and data disks the instance lacks), volumes of the instance's host
    pool; existing ones are kept."""
    pool, profile = lab.pool_of(inst), vm.typed_profile(inst)
    base = None if disks.exists(pool, inst.os_disk) else backing(lab, inst, iv)  # no replica: nothing made
    disks.ensure_data_disks(pool, inst.domain, profile.storageProfile.dataDisks)
    if base is not None:
        disks.create_os_disk(pool, inst.os_disk, base, profile.storageProfile.osDisk.diskSizeGB)
    if not disks.exists(pool, inst.seed):
        disks.write_seed(pool, inst.seed, vm.instance_seed(lab.paths, inst, inst.ci_instance_id))


def _domain_xml(lab: Lab, inst: Instance) -> str:
    data = vm.typed_profile(inst).storageProfile.dataDisks
    return vm.domain_xml(lab.paths, inst, disks.data_disk_paths(lab.pool_of(inst), inst.domain, data), lab.accel,
                         lab.here(inst))


def switch(lab: Lab, inst: Instance) -> float:
    """Power off, grow data disks the profile made bigger, define the domain on `inst`'s OS disk
    and seed, start; returns the start time."""
    hv = lab.hv_of(inst)
    if attached_os_disk(hv, inst.domain) != inst.os_disk:
        vm.hostkeys(lab.paths, inst).forget()  # another OS disk, other host keys: the lab re-pins
    dom = hv.lookup(inst.domain)
    if dom is not None:
        dom.destroy()
        if dom.uuid() != vm.domain_uuid(inst):  # defined by an older lab version: same name, other uuid
            dom.undefine()
    disks.grow_data_disks(lab.pool_of(inst), inst.domain, vm.typed_profile(inst).storageProfile.dataDisks)
    _, started = vm.boot(hv, lab.paths, _domain_xml(lab, inst), inst)
    return started


def wait_booted(lab: Lab, inst: Instance, started: float, timeout: float = BOOT_TIMEOUT) -> vm.Booted:
    return vm.wait(lab.hv_of(inst), lab.paths, inst, started, timeout, lab.route(inst), lab.here(inst))


def apply_booted(inst: Instance, booted: vm.Booted) -> Instance:
    """Provisioning state from cloud-init's result and the extension statuses."""
    exts = inst.profile["vm"].get("extensionProfile", {}).get("extensions", [])
    inst.boot_id, inst.stamp = booted.readiness.boot_id, booted.readiness.stamp
    inst.extensions = booted.extensions or ext_mod.pending_statuses(exts)
    failed = [s for s in inst.extensions if s.get("provisioningState") != "Succeeded"]
    if failed:
        inst.provisioning_state = "Failed"
        inst.error = "; ".join(f"extension {s['name']}: {s.get('message', '')}" for s in failed)
    elif booted.readiness.cloud_init_status != "done":
        inst.provisioning_state, inst.error = "Failed", f"cloud-init status: {booted.readiness.cloud_init_status}"
    else:
        inst.provisioning_state, inst.error = "Succeeded", None
    inst.power_state = "running"
    return inst


# -- one new OS disk, end to end ----------------------------------------------------------------
async def bring_up(lab: Lab, swap: Swap, new: Instance, iv: ImageVersion, timeout: float = BOOT_TIMEOUT) -> Instance:
    """Write the new disk, switch the domain to it, wait for cloud-init, settle on it.
    A disk that never boots leaves the instance Failed on it (no automatic rollback here).
    An in-place swap re-runs the changed extensions instead (update_in_place)."""
    if swap.in_place:
        return await update_in_place(lab, swap, new, timeout)
    try:
        await asyncio.to_thread(write_disks, lab, new, iv)
        started = await asyncio.to_thread(switch, lab, new)
        lab.journal.set_phase(swap, "swapped")
        booted = await asyncio.to_thread(wait_booted, lab, new, started, timeout)
        apply_booted(new, booted)
    except Interrupted:  # the process stops: the swap stays open for the next controller or `repair`
        raise
    except Exception as exc:  # noqa: BLE001 - any failure is the instance's state, not a crash
        new.provisioning_state, new.error = "Failed", f"{type(exc).__name__}: {exc}"
        if swap.old_os_disk and _attached(lab, new) != new.os_disk:
            # never switched: the instance stays on its old disk, running again if it was
            old = old_side(new, swap)
            old.provisioning_state, old.error = "Failed", new.error
            if old.power_state == "running":
                try:
                    await asyncio.to_thread(switch, lab, old)
                except Exception as exc2:  # noqa: BLE001
                    old.error += f"; restarting on the old disk failed: {exc2}"
            settle_old(lab.db, lab.journal, swap, old, new.error, lab.remover(old))
            return old
    settle_new(lab.db, lab.journal, swap, new, lab.remover(new))
    return new


async def update_in_place(lab: Lab, swap: Swap, new: Instance, timeout: float = BOOT_TIMEOUT) -> Instance:
    """An extension-only change (extupdate.py): settled on the model with the statuses the guest
    reports (a failed extension: Failed, as at first boot); a guest that cannot be reached keeps
    its old profile, Failed, and the next update-instances tries again."""
    try:
        change = extupdate.change_of(swap, new.extensions)
        booted = await asyncio.to_thread(extupdate.run, lab, new, change, timeout)
    except Exception as exc:  # noqa: BLE001 - any failure is the instance's state, not a crash
        old = old_side(new, swap)
        old.provisioning_state, old.error = "Failed", f"extensions not updated in place: {type(exc).__name__}: {exc}"
        settle_old(lab.db, lab.journal, swap, old, old.error, lab.remover(old))
        return old
    settle_new(lab.db, lab.journal, swap, apply_booted(new, booted), lab.remover(new))
    return new


async def bring_up_many(lab: Lab, jobs: list[tuple[Swap, Instance, ImageVersion]]) -> list[Instance]:
    return list(await asyncio.gather(*(bring_up(lab, s, n, p) for s, n, p in jobs)))


@dataclass(frozen=True)
class _Named:
    """vm's per-domain paths (host key, console log) read only the domain name."""
    domain: str


def _attached(lab: Lab, inst: Instance) -> str | None:
    """The OS disk the instance's host has attached; None also when the host does not answer."""
    try:
        return attached_os_disk(lab.hv_of(inst), inst.domain)
    except HypervisorError:
        return None


Pools = Iterable[tuple[str | None, str | None]]  # (host URI, pool); (None, None): the local pool


def purge_domain(lab: Lab, domain: str, hosts: Pools = ((None, None),)) -> None:
    """A domain and all the lab keeps for it: its definition on each of `hosts` and its volumes
    in their pools (OS disks, seeds, data disks), port leases, pinned host key, console log.
    Whatever is already gone is skipped; a host that does not answer raises HypervisorError."""
    undefined: set[str | None] = set()
    for uri, pool in hosts:
        uri = None if uri == lab.uri else uri
        if uri not in undefined:
            dom = lab.hv_at(uri).lookup(domain)
            if dom is not None:
                dom.undefine()
            undefined.add(uri)
        found = lab.pool_if_any(uri, pool)
        if found is not None:
            disks.purge(found, domain)
    PortAllocator().release(port_owner(lab, domain))
    named = cast(Instance, _Named(domain))
    vm.hostkeys(lab.paths, named).forget()
    vm.console_log(lab.paths, named).unlink(missing_ok=True)


def remove_instance(lab: Lab, inst: Instance) -> None:
    """The instance's domain with all its files and leases, then its health and its row."""
    purge_domain(lab, inst.domain, ((inst.host_uri, inst.host_pool),))
    HealthStore(lab.db).forget(inst.scale_set, inst.instance_id)
    lab.instances.delete(inst.scale_set, inst.instance_id)


# -- crash repair ------------------------------------------------------------------------------
async def finish_orphan(lab: Lab, swap: Swap, inst: Instance) -> Instance:
    """Finish or undo a swap whose process died: whichever disk libvirt has attached wins."""
    lab.journal.claim(swap)
    attached = attached_os_disk(lab.hv_of(inst), inst.domain)
    new = new_side(inst, swap)
    if swap.kind in ("create", "surge") or swap.in_place or attached == swap.new_os_disk:
        image = lab.image(new.image)
        return await bring_up(lab, swap, new, image)
    old = old_side(inst, swap)
    if attached != swap.old_os_disk or old.power_state == "running":
        started = await asyncio.to_thread(switch, lab, old)
        try:
            apply_booted(old, await asyncio.to_thread(wait_booted, lab, old, started))
        except Exception as exc:  # noqa: BLE001
            old.provisioning_state, old.error = "Failed", f"{type(exc).__name__}: {exc}"
    settle_old(lab.db, lab.journal, swap, old, "interrupted before the new OS disk was attached; undone",
               lab.remover(old))
    return old


async def settle_orphan(lab: Lab, swap: Swap) -> str:
    """One swap a dead process left: finished, undone, or (its instance is gone) closed with
    both its disks removed. Never raises a LabError: says what could not be done."""
    what = f"instance {swap.instance_id}: unfinished {swap.kind}"
    try:
        inst = lab.instances.get(swap.scale_set, swap.instance_id)
    except ModelError as exc:
        if exc.code != "NotFound":
            raise
        lab.journal.claim(swap)
        lab.journal.set_phase(swap, "aborted", "the instance was removed before the swap finished")
        try:
            model = lab.models.get(swap.scale_set)
        except LabError:
            model = None  # the set is gone (or does not read): its region's hosts are not known
        # its disks, both sides of the swap, are its domain's volumes: purged with it
        purge_domain(lab, domain_name(lab.paths.home, swap.scale_set, swap.instance_id), lab.host_pools(model))
        return f"{what} closed: the instance is gone; its disks removed"
    try:
        done = await finish_orphan(lab, swap, inst)
    except LabError as exc:
        return f"{what} could not be finished: {exc}"
    finished = (done.os_disk, done.profile_digest) == (swap.new_os_disk, swap.new_digest)
    return f"{what} {'completed' if finished else 'undone'}"


async def reconcile(lab: Lab, ss: ScaleSet) -> list[str]:
    """Make libvirt and the database agree after a crash; returns what was done."""
    done = []
    upgrading = UpgradeStore(lab.db).active(ss.name) is not None
    orphans = [s for s in lab.journal.orphans(ss.name)  # a rolling upgrade resumes its own (rolling.py, surge.py)
               if not (s.kind in ("rolling", "surge") and upgrading)]
    done += await asyncio.gather(*(settle_orphan(lab, s) for s in orphans))  # their boot waits at once
    rows = {i.domain: i for i in lab.instances.list(ss.name)}
    busy = lab.journal.busy(ss.name)
    live = {p for i in rows.values() for p in (i.os_disk, i.seed)}
    live |= {p for s in lab.journal.open_swaps(ss.name) for p in (s.old_os_disk, s.old_seed, s.new_os_disk, s.new_seed)}
    dead = [p for p in lab.journal.dead_files(ss.name) if p not in live]
    pairs = lab.host_pools(ss, ((i.host_uri, i.host_pool) for i in rows.values()))
    down: dict[str | None, str] = {}  # hosts that did not answer: their instances are left alone
    for uri in dict.fromkeys(uri for uri, _ in pairs):
        try:
            found = lab.hv_at(uri).lab_domains(str(lab.paths.home))
        except HypervisorError as exc:
            down[uri] = exc.reason
            done.append(f"{exc.reason}; its domains were not checked")
            continue
        for dom in found:
            tag = dom.lab_tag()
            if tag and tag.scale_set.lower() == ss.name.lower() and dom.name not in rows:
                purge_domain(lab, dom.name, [p for p in pairs if p[0] == uri])
                done.append(f"domain {dom.name}: no instance record; removed")
    gone = sum(_sweep(pool, dead) for p in pairs if p[0] not in down and (pool := lab.pool_if_any(*p)))
    if gone:  # a process killed between recording a settle and deleting the other disk
        done.append(f"removed {gone} disks that finished swaps had left behind")
    for inst in rows.values():
        if inst.instance_id in busy or (None if inst.host_uri == lab.uri else inst.host_uri) in down:
            continue
        if lab.hv_of(inst).lookup(inst.domain) is None and _has_disks(lab, inst):
            try:
                await asyncio.to_thread(_redefine, lab, inst)
                done.append(f"instance {inst.instance_id}: domain missing; defined again")
            except HypervisorError as exc:
                inst.provisioning_state, inst.error = "Failed", str(exc)
                lab.instances.save(inst)
                done.append(f"instance {inst.instance_id}: domain missing; defining it again failed: {exc}")
    return done


def _sweep(pool: Pool, paths: list[str]) -> int:
    """Delete the volumes of `pool` among `paths`; returns how many there were."""
    there = [p for p in paths if disks.exists(pool, p)]
    disks.delete(pool, *there)
    return len(there)


def _has_disks(lab: Lab, inst: Instance) -> bool:
    pool = lab.pool_of(inst)
    return disks.exists(pool, inst.os_disk) and disks.exists(pool, inst.seed)


def _redefine(lab: Lab, inst: Instance) -> None:
    dom = lab.hv_of(inst).define(_domain_xml(lab, inst))
    if inst.power_state == "running":
        dom.start()
