"""One use-case function per command of `scaleset` (create, scale, reimage, ...)."""
from __future__ import annotations

import asyncio
import time
from dataclasses import replace

from controller.virt import vm
from controller.ops.health import Monitor
from controller.state.health import HealthStore, Reading
from controller.model.instance import Instance, plan_capacity, resolve_ids
from controller.ops.lab import Lab
from controller.model.scaleset import ScaleSet, parse
from controller.core.errors import ModelError
from controller.ops.provision import (BOOT_TIMEOUT, apply_booted, bring_up_many, plan_instance, reconcile, remove_instance,
                        switch, target_of, wait_booted)
from controller.virt.ssh import CommandResult
from controller.model.setpath import set_path


def _run(coro):
    return asyncio.run(coro)


def prepare(lab: Lab, name: str) -> ScaleSet:
    """The stored model, after finishing whatever a killed command left behind."""
    ss = lab.models.get(name)
    _run(reconcile(lab, ss))
    return ss


def create(lab: Lab, document: dict) -> ScaleSet:
    """Store the model (validated, image checked), then create its instances and wait for them."""
    ss = parse(document)
    lab.resolve_image(ss, verify=True)
    lab.models.create(ss.to_json())
    scale(lab, ss.name, ss.sku.capacity)
    return lab.models.get(ss.name)


def update_model(lab: Lab, name: str, assignments: list[str]) -> ScaleSet:
    """`--set PATH=VALUE`...: a new model, validated whole; instances change only when told to
    (Manual) -- the orchestrator acts on Automatic/Rolling."""
    doc = lab.models.get(name).to_json()
    for a in assignments:
        set_path(doc, a)
    ss = parse(doc)
    if ss.name.lower() != name.lower():
        raise ModelError("$.name", "the name of a scale set cannot change")
    lab.resolve_image(ss)
    return lab.models.replace(doc)


def scale(lab: Lab, name: str, capacity: int) -> list[Instance]:
    ss = prepare(lab, name)
    if capacity != ss.sku.capacity:
        doc = ss.to_json()
        doc["sku"]["capacity"] = capacity
        ss = lab.models.replace(doc)
    existing = lab.instances.list(ss.name)
    add, remove = plan_capacity([i.instance_id for i in existing], capacity)
    for inst in existing:
        if inst.instance_id in remove:
            remove_instance(lab, inst)
    if add:
        image = lab.resolve_image(ss, verify=True)
        jobs = []
        for iid in add:
            new = plan_instance(lab, ss, iid, image)
            lab.instances.insert(new)
            nothing = replace(new, os_disk="", seed="", ci_instance_id="", profile={}, profile_digest="")
            jobs.append((lab.journal.begin(nothing, "create", new), new, image.path))
        _run(bring_up_many(lab, jobs))
    return lab.instances.list(ss.name)


def _swap(lab: Lab, ss: ScaleSet, targets: list[Instance], kind: str, to_model: bool) -> list[Instance]:
    busy = lab.journal.busy(ss.name)
    for inst in targets:
        if inst.instance_id in busy:
            s = busy[inst.instance_id]
            raise ModelError("--instance-ids", f"instance {inst.instance_id} is busy: a {s.kind} (operation "
                                               f"{s.id}) is working on it", "OperationNotAllowed")
    model_image = lab.resolve_image(ss, verify=True) if to_model else None
    jobs = []
    for inst in targets:
        image = model_image or lab.image(inst.image, verify=True)
        new = target_of(lab, ss, inst, to_model, model_image)
        swap = lab.journal.begin(inst, kind, new)
        inst.provisioning_state = "Updating"
        lab.instances.save(inst)
        jobs.append((swap, new, image.path))
    return _run(bring_up_many(lab, jobs))


def reimage(lab: Lab, name: str, ids: list[str] | None) -> list[Instance]:
    """A fresh OS disk from each instance's current image; id, data disks, forwards kept."""
    ss = prepare(lab, name)
    return _swap(lab, ss, resolve_ids(lab.instances.list(ss.name), ids), "reimage", to_model=False)


def update_instances(lab: Lab, name: str, ids: list[str] | None, update_domain: int | None = None) -> list[Instance]:
    """Manual upgrade: bring the named instances (or one update domain) to the latest model."""
    ss = prepare(lab, name)
    insts = resolve_ids(lab.instances.list(ss.name), ids)
    if update_domain is not None:
        insts = [i for i in insts if i.update_domain == update_domain]
        if not insts:
            raise ModelError("--update-domain", f"no instance in update domain {update_domain}")
    return _swap(lab, ss, insts, "upgrade", to_model=True)


def power(lab: Lab, name: str, ids: list[str] | None, action: str) -> list[Instance]:
    """start | stop | restart (graceful, then hard after 60 s); start and restart wait for the boot."""
    ss = prepare(lab, name)
    insts = resolve_ids(lab.instances.list(ss.name), ids)

    def act(inst: Instance) -> Instance:
        dom = lab.hv.lookup(inst.domain)
        if action in ("stop", "restart") and dom is not None:
            dom.shutdown(timeout=60)
        if action == "stop":
            inst.power_state = "stopped"
            return inst
        started = switch(lab, inst) if dom is None or dom.state() != "running" else time.monotonic()
        try:
            apply_booted(inst, wait_booted(lab, inst, started, BOOT_TIMEOUT))
        except Exception as exc:  # noqa: BLE001
            inst.provisioning_state, inst.error = "Failed", f"{type(exc).__name__}: {exc}"
        return inst

    async def all_of() -> list[Instance]:
        return list(await asyncio.gather(*(asyncio.to_thread(act, i) for i in insts)))

    out = _run(all_of())
    for inst in out:
        lab.instances.save(inst)
    return out


def delete(lab: Lab, name: str) -> list[str]:
    """Domains, OS disks, seeds and data disks of the scale set, then its model."""
    ss = lab.models.get(name)
    removed = []
    for inst in lab.instances.list(ss.name):
        remove_instance(lab, inst)
        removed.append(inst.domain)
    _run(reconcile(lab, ss))  # domains without a record
    lab.models.delete(ss.name)
    return removed


def run_command(lab: Lab, name: str, instance_id: str, script: str, timeout: float = 600.0) -> CommandResult:
    """The script runs as root through SSH (`sudo sh -s`), its text sent on stdin."""
    ss = lab.models.get(name)
    inst = resolve_ids(lab.instances.list(ss.name), [instance_id], "--instance-id")[0]
    client = vm.ssh(lab.paths, inst, lab.hv)
    client.wait(time.monotonic() + 30)
    try:
        return client.run("sudo sh -s", timeout=timeout, stdin=script.encode())
    finally:
        client.close()


def running_map(lab: Lab, insts: list[Instance]) -> dict[int, bool]:
    return {i.instance_id: (d := lab.hv.lookup(i.domain)) is not None and d.state() == "running" for i in insts}


def poll_health(lab: Lab, ss: ScaleSet, monitor: Monitor | None = None,
                insts: list[Instance] | None = None) -> dict[int, Reading]:
    """One concurrent poll of the scale set's health source, recorded with its `since`."""
    insts = insts if insts is not None else lab.instances.list(ss.name)
    readings = _run((monitor or Monitor(ss)).poll(insts, running_map(lab, insts)))
    return HealthStore(lab.db).record(ss.name, readings)


def refresh(lab: Lab, inst: Instance) -> Instance:
    """Read the boot id, stamp and extension statuses again from a running guest (best effort)."""
    dom = lab.hv.lookup(inst.domain)
    if dom is None or dom.state() != "running":
        return inst
    try:
        booted = vm.wait(lab.hv, lab.paths, inst, time.monotonic() - 1, timeout=45)
    except Exception:  # noqa: BLE001 - an unreachable guest keeps its last known view
        return inst
    inst.boot_id, inst.stamp = booted.readiness.boot_id, booted.readiness.stamp
    if booted.extensions:
        inst.extensions = booted.extensions
    lab.instances.save(inst)
    return inst

