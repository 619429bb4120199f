"""MaxSurge batches: new instances from the target version first, the old ones deleted only once
their replacements are healthy, so the set never has fewer healthy instances than its capacity.

Each replacement (old instance O, new instance N) is recorded before any step: N's row and its
creation swap (journal kind `surge`), and O's upgrade row with `surge_id` N and a phase:
    creating    N's disks written, its domain started, its boot and health waited for
    retiring    N was healthy (recorded with its swap done): O's domain, disks and row go
    discarding  N was not healthy in time: N's domain, disks and row go; O keeps serving
A killed controller resumes every replacement from its phase (`resume`), so no instance is lost
or left twice, and no disk or domain leaks.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from controller.core.errors import ModelError
from controller.core.txn import transaction
from controller.model.instance import Instance
from controller.model.jsonmap import parse_duration
from controller.model.scaleset import ScaleSet
from controller.ops.outcome import Outcome
from controller.ops.provision import plan_instance, port_owner
from controller.state.health import HealthStore
from controller.state.journal import Swap, record_new
from controller.state.upgrades import Upgrade
from controller.virt.ports import PortAllocator
from images.gallery import ImageVersion

if TYPE_CHECKING:
    from controller.ops.rolling import Orchestrator


class Surge:
    """The MaxSurge steps of an Orchestrator (its lab, driver, store and health wait)."""

    def __init__(self, orch: Orchestrator) -> None:
        self.o = orch
        self.lab, self.store = orch.lab, orch.store

    def new_ids(self, name: str, count: int) -> list[int]:
        """Ids above every id the set has or a replacement was ever given (Azure never reuses one)."""
        used = {i.instance_id for i in self.lab.instances.list(name)} | self.store.surge_ids(name)
        first = max(used, default=-1) + 1
        return list(range(first, first + count))

    async def batch(self, up: Upgrade, ss: ScaleSet, olds: list[Instance], image: ImageVersion) -> list[Outcome]:
        lab, number = self.lab, up.batches_done + 1
        news = [plan_instance(lab, ss, iid, image) for iid in self.new_ids(ss.name, len(olds))]
        blank = [replace(n, os_disk="", seed="", ci_instance_id="", profile={}, profile_digest="") for n in news]
        try:
            with transaction(lab.db):  # the whole batch is recorded before any step is taken
                for new in news:
                    lab.instances.insert(new)
                swaps = lab.journal.begin_many("surge", list(zip(blank, news, strict=True)))
                self.store.begin_instances(up, number, {o.instance_id: s.id for o, s in zip(olds, swaps, strict=True)},
                                           {o.instance_id: n.instance_id for o, n in zip(olds, news, strict=True)})
        except BaseException:
            for new in news:
                PortAllocator().release(port_owner(lab, new.domain))
            raise
        self.o.say(f"batch {number}: new instances {[n.instance_id for n in news]} on {up.target['version']} "
                   f"replace {[o.instance_id for o in olds]} (MaxSurge)")
        wait = parse_duration(ss.properties.labSettings.healthWaitTimeout, "healthWaitTimeout")
        return list(await asyncio.gather(*(self._replace(up, ss, o.instance_id, s, n, wait)
                                           for o, s, n in zip(olds, swaps, news, strict=True))))

    async def _replace(self, up: Upgrade, ss: ScaleSet, old_id: int, swap: Swap, new: Instance, wait: float,
                       created: bool = False) -> Outcome:
        healthy, why, timings = await self.o.bring_up(ss, new, wait, switched=created)
        if healthy:
            with transaction(self.lab.db):
                record_new(self.lab.db, self.lab.journal, [(swap, new)])
                self.store.set_surge_phase(up, old_id, "retiring")
            return await self._retire(up, ss.name, old_id, new.instance_id, timings)
        self.o.say(f"instance {new.instance_id}: not healthy in time ({why})")
        return await self._discard(up, ss.name, old_id, new.instance_id, swap, f"not healthy within {int(wait)} s: "
                                   f"{why}", timings)

    async def _retire(self, up: Upgrade, name: str, old_id: int, new_id: int, timings: dict) -> Outcome:
        """The old instance goes: its replacement is healthy."""
        t0 = time.monotonic()
        await self._remove(name, old_id)
        timings["retire"] = round(time.monotonic() - t0, 3)
        self.store.set_instance(up, old_id, "Succeeded", None, timings)
        self.o.say(f"instance {old_id}: replaced by {new_id} (Succeeded: create {timings.get('swap', 0):.1f} s, "
                   f"boot {timings.get('boot', 0):.1f} s, health {timings.get('health', 0):.1f} s)")
        return Outcome(old_id, "Succeeded", timings, replaced_by=new_id)

    async def _discard(self, up: Upgrade, name: str, old_id: int, new_id: int, swap: Swap, why: str,
                       timings: dict) -> Outcome:
        """The new instance goes, the old one stays: MaxSurge's rollback (the old one was never touched)."""
        self.store.set_surge_phase(up, old_id, "discarding", why)
        t0 = time.monotonic()
        await self._remove(name, new_id)
        if swap.phase not in ("done", "aborted"):
            self.lab.journal.set_phase(swap, "aborted", why[:400])
        timings["rollback"] = round(time.monotonic() - t0, 3)
        state = "RolledBack" if up.auto_rollback else "Failed"
        self.store.set_instance(up, old_id, state, why, timings)
        self.o.say(f"instance {new_id}: deleted; instance {old_id} kept on {self._version(name, old_id)} ({state})")
        return Outcome(old_id, state, timings, replaced_by=new_id)

    async def _remove(self, name: str, instance_id: int) -> None:
        """An instance's domain, disks and leases, then its health and row (a repeat finds less)."""
        try:
            inst = self.lab.instances.get(name, instance_id)
        except ModelError as exc:
            if exc.code != "NotFound":
                raise
            return
        await self.o.driver.remove(inst)
        with transaction(self.lab.db):
            HealthStore(self.lab.db).forget(name, instance_id)
            self.lab.instances.delete(name, instance_id)

    def _version(self, name: str, instance_id: int) -> str:
        try:
            return self.lab.instances.get(name, instance_id).image["version"]
        except ModelError:
            return "?"

    async def resume(self, up: Upgrade, ss: ScaleSet, row: dict) -> Outcome:
        """One replacement a killed controller left in flight, from its recorded phase."""
        old_id, new_id, phase = row["instanceId"], row["replacedBy"], row["surgePhase"]
        swap = self.lab.journal.get(row["swapId"])
        self.lab.journal.claim(swap)
        if phase == "retiring":
            return await self._retire(up, ss.name, old_id, new_id, dict(row["timings"]))
        try:
            new = self.lab.instances.get(ss.name, new_id)
        except ModelError as exc:
            if exc.code != "NotFound":
                raise
            new = None
        if phase == "discarding" or new is None:
            return await self._discard(up, ss.name, old_id, new_id, swap, row["error"] or "resumed after a restart",
                                       dict(row["timings"]))
        wait = parse_duration(ss.properties.labSettings.healthWaitTimeout, "healthWaitTimeout")
        return await self._replace(up, ss, old_id, swap, new, wait, created=self.o.driver.attached(new) == new.os_disk)
