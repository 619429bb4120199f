"""One use-case function per command of `scaleset` (create, scale, reimage, ...)."""
from __future__ import annotations

import asyncio
import copy
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from agent.health import UNKNOWN
from controller.core.clock import now_iso
from controller.core.errors import HypervisorError, LabError, ModelError
from controller.core.txn import transaction
from controller.model.checks import check_capacity
from controller.model.jsonmap import to_json
from controller.model.instance import (
    Instance,
    applied_profile,
    domain_name,
    plan_capacity,
    profile_digest,
    resolve_ids,
    set_action_targets,
)
from controller.model.scaleset import ScaleSet, parse
from controller.model.setpath import set_path
from controller.ops import extupdate
from controller.ops.health import Monitor
from controller.ops.lab import Lab
from controller.ops.provision import (
    BOOT_TIMEOUT,
    apply_booted,
    bring_up_many,
    plan_instance,
    port_owner,
    purge_domain,
    reconcile,
    remove_instance,
    switch,
    target_of,
    wait_booted,
)
from controller.state import reserve
from controller.state.health import HealthStore, Reading
from controller.state.upgrades import UpgradeStore
from controller.virt import disks, vm
from controller.virt.ports import PortAllocator
from controller.virt.ssh import CommandResult
from images.gallery import ImageVersion

MODEL_RETRIES = 20  # compare-and-swap attempts of one model change before ConcurrentUpdate


def _run(coro):
    return asyncio.run(coro)


def prepare(lab: Lab, name: str) -> ScaleSet:
    """The stored model, after finishing whatever a killed command left behind."""
    ss = lab.models.get(name)
    _run(reconcile(lab, ss))
    return ss


Expect = Callable[[int | None], object]  # a write's precondition on the generation it read (None: no set)


@dataclass(frozen=True)
class Written:
    """A model write: the model as stored, its generation (the etag's) and the capacity the
    document asked for, validated (scale() brings the instances and the stored one to it)."""
    model: ScaleSet
    generation: int
    capacity: int


def create_model(lab: Lab, document: dict, expect: Expect | None = None) -> ScaleSet:
    """Store a new model (validated, its image checked); no instance yet. `expect(None)` runs
    first (a precondition of the write: the set does not exist yet)."""
    if expect is not None:
        expect(None)
    ss = parse(document)
    lab.resolve_image(ss, verify=True)
    return lab.models.create(ss.to_json())


def create(lab: Lab, document: dict) -> ScaleSet:
    """Store the model, then create its instances and wait for them."""
    ss = create_model(lab, document)
    scale(lab, ss.name, ss.sku.capacity)
    return lab.models.get(ss.name)


def replace_model(lab: Lab, name: str, build: Callable[[dict], dict], expect: Expect | None = None) -> Written:
    """ARM's PUT and PATCH: `build(stored)` makes the new document from the stored one, read
    inside the compare-and-swap (so a retry builds on the newer model). It is validated whole
    with the capacity it asks for (absent: the stored one); the stored capacity is kept until
    scale() changes it together with the instances."""
    def mutate(doc: dict) -> None:
        new = build(copy.deepcopy(doc))
        sku = new.get("sku", {})
        if isinstance(sku, dict):
            new["sku"] = {"capacity": doc["sku"]["capacity"], **sku}
        doc.clear()
        doc.update(new)
    return write_model(lab, name, mutate, expect, keep_capacity=True)


def change_model(lab: Lab, name: str, mutate: Callable[[dict], object], expect: Expect | None = None) -> ScaleSet:
    """Every read-modify-write of a model (write_model); the model as stored."""
    return write_model(lab, name, mutate, expect).model


def write_model(lab: Lab, name: str, mutate: Callable[[dict], object], expect: Expect | None = None,
                keep_capacity: bool = False) -> Written:
    """Read the model with its generation, check `expect(generation)` on it, apply `mutate` to
    the document, validate the whole (a changed image reference must resolve), write it only if
    no other write came in between (compare and swap); a lost race starts again from the newer
    model, a few times at most. `keep_capacity`: the capacity the document asks for is validated,
    the stored one written."""
    for attempt in range(MODEL_RETRIES):
        ss, generation = lab.models.read(name)
        if expect is not None:
            expect(generation)
        doc = ss.to_json()
        mutate(doc)
        new = parse(doc)
        if new.name.lower() != ss.name.lower():
            raise ModelError("$.name", "the name of a scale set cannot change")
        if (_image_ref(new), new.location) != (_image_ref(ss), ss.location):
            lab.resolve_image(new)  # an imageReference.id: its publisher/offer/sku filled in, and stored
            doc["properties"]["virtualMachineProfile"]["storageProfile"]["imageReference"] = to_json(_image_ref(new))
        if keep_capacity:
            if new.sku.capacity != ss.sku.capacity:
                _plan(lab, ss.name, new.sku.capacity)  # refused now (scale-in protection), not in scale()
            doc.setdefault("sku", {})["capacity"] = ss.sku.capacity
        try:
            return Written(lab.models.replace(doc, generation), generation + 1, new.sku.capacity)
        except ModelError as exc:
            if exc.code != "ConcurrentUpdate":
                raise
        time.sleep(random.uniform(0, 0.002 * (attempt + 1)))  # let the other writer finish
    raise ModelError("--name", f"scale set '{name}' kept changing under this update ({MODEL_RETRIES} tries); "
                               "run it again", "ConcurrentUpdate")


def _image_ref(ss: ScaleSet) -> object:
    return ss.properties.virtualMachineProfile.storageProfile.imageReference


def update_model(lab: Lab, name: str, assignments: list[str]) -> ScaleSet:
    """`--set PATH=VALUE`...: a new model, validated whole; instances change only when told to
    (Manual) -- the orchestrator acts on Automatic/Rolling."""
    return change_model(lab, name, lambda doc: [set_path(doc, a) for a in assignments])


def set_extension(lab: Lab, name: str, ext_name: str, properties: dict) -> ScaleSet:
    """Add the extension `ext_name` to the model, or replace the one of that name."""
    def mutate(doc: dict) -> None:
        vmp = doc["properties"]["virtualMachineProfile"]
        exts = vmp.setdefault("extensionProfile", {}).setdefault("extensions", [])
        exts[:] = [e for e in exts if e.get("name") != ext_name] + [{"name": ext_name, "properties": properties}]
    return change_model(lab, name, mutate)


def scale(lab: Lab, name: str, capacity: int) -> list[Instance]:
    """Bring the set to `capacity` instances (checked first: 0..1000) and wait for the new ones."""
    check_capacity(capacity, "sku.capacity")
    ss = prepare(lab, name)
    existing, (add, remove) = _plan(lab, ss.name, capacity)  # refused before any change
    if capacity != ss.sku.capacity:
        def resize(doc: dict) -> None:
            doc["sku"]["capacity"] = capacity
        ss = change_model(lab, name, resize)
    for inst in existing:
        if inst.instance_id in remove:
            remove_instance(lab, inst)
    if add:
        image = lab.resolve_image(ss, verify=True)
        news = [plan_instance(lab, ss, iid, image) for iid in add]
        blank = [replace(n, os_disk="", seed="", ci_instance_id="", profile={}, profile_digest="") for n in news]
        try:
            with transaction(lab.db):  # rows and journal together: no instance row without its intent
                for new in news:
                    lab.instances.insert(new)
                swaps = lab.journal.begin_many("create", list(zip(blank, news, strict=True)))
        except BaseException:
            for new in news:
                PortAllocator().release(port_owner(lab, new.domain))
            raise
        _run(bring_up_many(lab, [(s, n, image) for s, n in zip(swaps, news, strict=True)]))
    return lab.instances.list(ss.name)


def _plan(lab: Lab, name: str, capacity: int) -> tuple[list[Instance], tuple[list[int], list[int]]]:
    """The set's instances (MaxSurge replacements in flight not counted) and plan_capacity's plan."""
    surging = UpgradeStore(lab.db).surging(name)
    existing = [i for i in lab.instances.list(name) if i.instance_id not in surging]
    return existing, plan_capacity([i.instance_id for i in existing], capacity,
                                   {i.instance_id for i in existing if i.scale_in_protected})


def _swap(lab: Lab, ss: ScaleSet, targets: list[Instance], kind: str, to_model: bool) -> list[Instance]:
    """New OS disks for `targets`, all recorded in one transaction before any step: an instance
    another command works on refuses the whole command before anything is recorded."""
    if not targets:  # e.g. every instance protected from scale-set actions
        return []
    model_image = lab.resolve_image(ss, verify=True) if to_model else None
    verified: dict[tuple, ImageVersion] = {}

    def image_of(inst: Instance) -> ImageVersion:  # each version's checksum verified once per command
        key = tuple(sorted(inst.image.items()))
        if key not in verified:
            verified[key] = lab.image(inst.image, verify=True)
        return verified[key]

    images = [model_image or image_of(inst) for inst in targets]
    applied = (applied_profile(ss, model_image.version), profile_digest(ss)) if model_image else None
    news = [(applied and extupdate.in_place_target(inst, applied))  # an extension-only change: in place
            or target_of(lab, ss, inst, to_model, model_image, applied) for inst in targets]
    with transaction(lab.db):
        swaps = lab.journal.begin_many(kind, list(zip(targets, news, strict=True)))
        lab.instances.set_state(ss.name, [i.instance_id for i in targets], "Updating")
    jobs = list(zip(swaps, news, images, strict=True))
    return _run(bring_up_many(lab, jobs))


def reimage(lab: Lab, name: str, ids: list[str] | None, on_instance: bool = False) -> list[Instance]:
    """A fresh OS disk from each instance's current image; id, data disks, forwards kept.
    An action on the set skips (or, named, refuses) protected instances; `on_instance` does not."""
    ss = prepare(lab, name)
    pick = resolve_ids if on_instance else set_action_targets
    return _swap(lab, ss, pick(lab.instances.list(ss.name), ids), "reimage", to_model=False)


def update_instances(lab: Lab, name: str, ids: list[str] | None, update_domain: int | None = None) -> list[Instance]:
    """Manual upgrade: bring the named instances (or one update domain) to the latest model: an
    extension-only difference in place (extupdate.py), any other on a new OS disk."""
    ss = prepare(lab, name)
    insts = set_action_targets(lab.instances.list(ss.name), ids)
    if update_domain is not None:
        insts = [i for i in insts if i.update_domain == update_domain]
        if not insts:
            raise ModelError("--update-domain", f"no instance in update domain {update_domain} to update "
                                                "(those protected from scale-set actions are left out)")
    return _swap(lab, ss, insts, "upgrade", to_model=True)


def power(lab: Lab, name: str, ids: list[str] | None, action: str) -> list[Instance]:
    """start | stop | restart (graceful, then hard after 60 s); start and restart wait for the boot."""
    ss = prepare(lab, name)
    insts = resolve_ids(lab.instances.list(ss.name), ids)

    def act(inst: Instance) -> Instance:
        dom = lab.hv_of(inst).lookup(inst.domain)
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


def delete(lab: Lab, name: str, expect: Expect | None = None) -> list[str]:
    """The scale set and everything of it, whatever a killed command left: its unfinished swaps
    are stopped (not finished), then domains (with or without a row), disks, seeds and data
    disks, port leases, host keys, console logs, and every row. The model need not read.
    Refused only while a live process works on the set, or when `expect(generation)` (None: no
    model) refuses. Returns the instance domains removed. On a full disk it still commits: it
    frees space (state/reserve.py)."""
    name = lab.models.stored_name(name) or name

    def take_over() -> None:  # from here on no other command finishes or resumes the set's work
        with transaction(lab.db):
            if expect is not None:
                expect(lab.models.generation(name) if lab.models.stored_name(name) else None)
            UpgradeStore(lab.db).refuse_if_driven(name)
            lab.journal.take_over(name)
    reserve.freeing(lab.paths.db, take_over)
    rows = lab.instances.remnants(name)
    files = lab.journal.files(name) + [p for _, disk, seed in rows for p in (disk, seed)]
    hosts = _set_hosts(lab, name)
    domains = {d for d, _, _ in rows} | _set_domains(lab, name, hosts)
    if not (domains or files or lab.models.stored_name(name)):
        raise ModelError("name", f"scale set '{name}' not found", "ResourceNotFound")
    for domain in sorted(domains):
        purge_domain(lab, domain, hosts)  # with its volumes: the files above are among them
    reserve.freeing(lab.paths.db, lambda: lab.models.delete(name))
    return sorted(d for d, _, _ in rows)


def _set_hosts(lab: Lab, name: str) -> list[tuple[str | None, str | None]]:
    """The (host, pool) pairs the set's domains and disks may be on: its region's (if its model
    reads) and its rows'."""
    try:
        model: ScaleSet | None = lab.models.get(name)
    except LabError:
        model = None
    return lab.host_pools(model, lab.instances.host_pools(name))


def _set_domains(lab: Lab, name: str, hosts: list[tuple[str | None, str | None]]) -> set[str]:
    """Domain names of the set that libvirt (on `hosts`, in their pools), the port leases or the
    lab's directories still know."""
    pattern = re.compile(re.escape(domain_name(lab.paths.home, name, 0)[:-1]) + r"\d+", re.IGNORECASE)
    found = {d.name for uri in dict.fromkeys(u for u, _ in hosts)
             for d in lab.hv_at(uri).lab_domains(str(lab.paths.home))
             if (tag := d.lab_tag()) and tag.scale_set.lower() == name.lower()}
    pools = [pool for pair in hosts if (pool := lab.pool_if_any(*pair))]
    found |= {d for pool in pools for v in pool.volumes() if (d := disks.domain_of(v.name))}
    owner = port_owner(lab, "")
    found |= {o[len(owner):] for o in PortAllocator().leases().values() if o.startswith(owner)}
    for folder, suffix in ((lab.paths.keys / "hostkeys", ".hostkey"), (lab.paths.logs, ".console.log")):
        if folder.is_dir():
            found |= {p.name.removesuffix(suffix) for p in folder.iterdir() if p.name.endswith(suffix)}
    return {d for d in found if pattern.fullmatch(d)}


MAX_SCRIPT = 256 * 1024


def check_script(script: str, field: str) -> None:
    if len(script.encode("utf-8", "surrogateescape")) > MAX_SCRIPT or "\x00" in script:
        raise ModelError(field, f"must be shell text without NUL characters, at most {MAX_SCRIPT} bytes")


def run_command(lab: Lab, name: str, instance_id: str, script: str, timeout: float = 600.0) -> CommandResult:
    """The script runs as root through SSH (`sudo sh -s`), its text sent on stdin."""
    ss = lab.models.get(name)
    inst = resolve_ids(lab.instances.list(ss.name), [instance_id], "--instance-id")[0]
    client = vm.ssh(lab.paths, inst, lab.hv_of(inst), lab.route(inst))
    client.wait(time.monotonic() + 30)
    try:
        return client.run("sudo sh -s", timeout=timeout, stdin=script.encode())
    finally:
        client.close()


async def read_health(lab: Lab, ss: ScaleSet, monitor: Monitor, insts: list[Instance]) -> dict[int, Reading]:
    """One concurrent poll of the instances' health source, recorded with its `since`."""
    hs = await asyncio.to_thread(lab.states, insts)  # a host that does not answer costs its timeout
    reach = [i for i in insts if i.domain not in hs.unreachable]
    readings = await monitor.poll(reach, {i.instance_id: hs.states.get(i.domain) == "running" for i in reach},
                                  lab.route)
    stamp = now_iso()
    readings.update({i.instance_id: Reading(UNKNOWN, monitor.source, hs.unreachable[i.domain], checked_at=stamp)
                     for i in insts if i.domain in hs.unreachable})
    return HealthStore(lab.db).record(ss.name, readings)


def poll_health(lab: Lab, ss: ScaleSet, monitor: Monitor | None = None,
                insts: list[Instance] | None = None) -> dict[int, Reading]:
    """read_health() over the whole set (or `insts`), from synchronous code."""
    insts = insts if insts is not None else lab.instances.list(ss.name)
    return _run(read_health(lab, ss, monitor or Monitor(ss), insts))


def refresh(lab: Lab, inst: Instance) -> Instance:
    """Read the boot id, stamp and extension statuses again from a running guest (best effort)."""
    try:
        hv = lab.hv_of(inst)
        dom = hv.lookup(inst.domain)
    except HypervisorError:  # its host does not answer: the last known view stays
        return inst
    if dom is None or dom.state() != "running":
        return inst
    try:
        booted = vm.wait(hv, lab.paths, inst, time.monotonic() - 1, timeout=45, route=lab.route(inst),
                         here=lab.here(inst))
    except Exception:  # noqa: BLE001 - an unreachable guest keeps its last known view
        return inst
    inst.boot_id, inst.stamp = booted.readiness.boot_id, booted.readiness.stamp
    if booted.extensions:
        inst.extensions = booted.extensions
    lab.instances.save(inst)
    return inst

