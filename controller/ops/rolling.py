"""The rolling OS-image upgrade: batches, health waits, rollback, cancel, resume after a kill.

Each instance of a batch is upgraded in parallel: its OS-disk swap is journalled (osdisk.py,
kind `rolling`) before any step, so a killed controller resumes it from whichever disk
libvirt has attached. The old OS disk is deleted only once the instance is settled.
The VM work goes through a Driver (rolling_driver.py for libvirt; a fake in the tests).
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

from controller.core.errors import HypervisorError
from controller.core.procs import process_tag
from controller.core.txn import transaction
from controller.model.instance import Instance, applied_profile, profile_digest
from controller.model.jsonmap import from_json, parse_duration, to_json
from controller.model.modeldiff import Change
from controller.model.scaleset import RollingUpgradePolicy, ScaleSet
from controller.ops import extupdate
from controller.ops import upgrade_plan as plan
from controller.ops.lab import Lab
from controller.ops.outcome import Outcome
from controller.ops.provision import apply_booted, target_of
from controller.ops.surge import Surge
from controller.state.db import GroupCommit
from controller.state.health import Reading
from controller.state.instances import LiveSet
from controller.state.journal import (
    Swap,
    drop_old,
    new_side,
    old_side,
    record_new,
    settle_new,
    settle_old,
)
from controller.state.upgrades import Upgrade, UpgradeStore
from controller.virt.vm import Booted


class Driver(Protocol):
    async def write_disks(self, inst: Instance) -> None: ...
    async def switch(self, inst: Instance) -> None: ...
    def attached(self, inst: Instance) -> str | None: ...
    async def wait_booted(self, inst: Instance, timeout: float) -> Booted: ...
    async def health(self, ss: ScaleSet, inst: Instance) -> Reading: ...
    async def health_all(self, ss: ScaleSet, insts: list[Instance]) -> dict[int, str]: ...
    async def remove(self, inst: Instance) -> None: ...  # domain, disks, leases (MaxSurge)
    def surge_refusal(self, ss: ScaleSet, count: int) -> str | None: ...  # why `count` more guests do not fit
    async def update_extensions(self, inst: Instance, change: Change, timeout: float) -> Booted: ...


def start_upgrade(lab: Lab, ss: ScaleSet, started_by: str, owned: bool = True,
                  model_change: bool = False) -> Upgrade:
    """Record a new attempt towards the newest version the model allows (one at a time);
    `model_change`: the controller applies a changed model (modes Automatic and Rolling)."""
    image = lab.resolve_image(ss, verify=True)
    ref = ss.properties.virtualMachineProfile.storageProfile.imageReference
    target = {"publisher": ref.publisher, "offer": ref.offer, "sku": ref.sku, "version": image.version}
    up_policy = ss.properties.upgradePolicy
    policy = plan.upgrade_policy(ss, started_by, model_change)
    return UpgradeStore(lab.db).start(ss.name, started_by, target, to_json(policy),
                                      plan.automatic_rollback(started_by, up_policy.automaticOSUpgradePolicy),
                                      owner=process_tag() if owned else None)


def none_succeeded(states: dict[int, str]) -> tuple[str, str] | None:
    """(error code, message) when the upgrade touched instances and none of them succeeded: a
    threshold of 100 % lets every batch pass, but such an upgrade did not complete."""
    if not states or any(st not in plan.FAILED_STATES for st in states.values()):
        return None
    return plan.UPGRADED, (f"none of the {len(states)} upgraded instances became healthy "
                           f"({', '.join(sorted(set(states.values())))})")


class Orchestrator:
    def __init__(self, lab: Lab, driver: Driver, *, poll_interval: float = 1.0,
                 on_event: Callable[[str], None] | None = None) -> None:
        self.lab, self.driver, self.poll_interval = lab, driver, poll_interval
        self.store = UpgradeStore(lab.db)
        self.commits = GroupCommit(lab.db)  # the instances of a batch that finish together share a commit
        self.say = on_event or (lambda _msg: None)
        self._verified: set[int] = set()
        self._model: dict = {}  # the model, parsed once while it does not change
        self._sets: dict[str, LiveSet] = {}
        self.surge = Surge(self)
        self._mode: dict = {}  # how the batch in flight goes: {"mode": "MaxSurge" | "InPlace", "fallback": why}

    # -- the upgrade -----------------------------------------------------------------------------
    async def run(self, up: Upgrade) -> Upgrade:
        self.store.claim(up)
        policy = from_json(RollingUpgradePolicy, up.policy, "$.policy")
        inflight = [r for r in self.store.instances(up) if r["state"] == "InProgress"]
        if inflight:  # a killed controller left a batch in flight: settle it first
            self.say(f"resuming batch {inflight[0]['batch']}: instances {[r['instanceId'] for r in inflight]}")
            ss = self.lab.models.get(up.scale_set)
            self._mode = {"mode": "MaxSurge" if inflight[0]["replacedBy"] is not None else "InPlace"}
            outcomes = await asyncio.gather(*(self.surge.resume(up, ss, r) if r["replacedBy"] is not None
                                              else self._resume(up, ss, r["swapId"]) for r in inflight))
            if await self._end_batch(up, policy, list(outcomes), 0.0):
                return up
        while True:
            if self.store.cancel_requested(up):
                self.store.finish(up, "Cancelled")
                self.say("upgrade Cancelled")
                return up
            ss = self.lab.models.get(up.scale_set, self._model)
            live = self._sets.setdefault(ss.name, LiveSet(self.lab.instances, ss.name))
            insts = live.instances()
            pending = plan.pending(insts, up.target["version"], self.store.states(up), plan.model_digest(ss))
            if not pending:
                failed = none_succeeded(self.store.states(up))
                self.store.finish(up, "Faulted" if failed else "Completed", failed)
                self.say(f"upgrade Faulted: {failed[0]}: {failed[1]}" if failed else "upgrade Completed")
                return up
            health = await self.driver.health_all(ss, insts)
            breach = plan.health_breach(health, policy, up.batches_done)
            if breach:
                self.store.finish(up, "Faulted", breach)
                self.say(f"upgrade Faulted: {breach[0]}: {breach[1]}")
                return up
            size = plan.batch_size(len(insts), policy.maxBatchInstancePercent)
            batch = plan.next_batch(pending, health, size, policy.prioritizeUnhealthyInstances)
            t0 = time.monotonic()
            outcomes: list[Outcome] = []
            try:
                chosen = set(batch)
                outcomes = await self._batch(up, ss, [i for i in insts if i.instance_id in chosen], policy)
                stop = await self._end_batch(up, policy, outcomes, time.monotonic() - t0)
            finally:
                added = [o.replaced_by for o in outcomes if o.replaced_by is not None]
                live.changed(batch + added, {o.instance_id: o.saved for o in outcomes if o.saved is not None})
            if stop:
                return up
            pause = parse_duration(policy.pauseTimeBetweenBatches, "pauseTimeBetweenBatches")
            t_pause = time.monotonic()
            while time.monotonic() < t_pause + pause and not self.store.cancel_requested(up):
                await asyncio.sleep(min(self.poll_interval, max(0.0, t_pause + pause - time.monotonic())))
            if pause:
                up.batch_times[-1]["pause"] = round(time.monotonic() - t_pause, 3)
                self.store.batch_done(up)

    async def _batch(self, up: Upgrade, ss: ScaleSet, insts: list[Instance],
                     policy: RollingUpgradePolicy) -> list[Outcome]:
        number = up.batches_done + 1
        image = self.lab.image(up.target, verify=up.id not in self._verified)  # sha256 once per upgrade
        self._verified.add(up.id)
        self._mode = {"mode": "InPlace"}
        applied = (applied_profile(ss, image.version), profile_digest(ss))
        in_place = [extupdate.in_place_target(inst, applied) for inst in insts]  # extension-only changes
        if policy.maxSurge and None in in_place:  # no new instances for what changes in the running guests
            refusal = self.driver.surge_refusal(ss, len(insts))
            if refusal is None:
                self._mode = {"mode": "MaxSurge"}
                return await self.surge.batch(up, ss, insts, image)
            self._mode["fallback"] = f"MaxSurge: no room for {len(insts)} more instances: {refusal}"
            self.say(f"batch {number}: {self._mode['fallback']}; upgrading in place")
        news = [target or target_of(self.lab, ss, inst, True, image, applied)
                for inst, target in zip(insts, in_place, strict=True)]
        with transaction(self.lab.db):  # the whole batch is recorded before any step is taken
            swaps = self.lab.journal.begin_many("rolling", list(zip(insts, news, strict=True)))
            self.lab.instances.set_state(ss.name, [i.instance_id for i in insts], "Updating")
            self.store.begin_instances(up, number, {swap.instance_id: swap.id for swap in swaps})
        self.say(f"batch {number}: instances {[i.instance_id for i in insts]} -> {up.target['version']}")
        jobs = zip(swaps, news, strict=True)
        wait = parse_duration(ss.properties.labSettings.healthWaitTimeout, "healthWaitTimeout")
        return list(await asyncio.gather(*(self._upgrade_one(up, ss, swap, new, wait=wait) for swap, new in jobs)))

    async def _end_batch(self, up: Upgrade, policy: RollingUpgradePolicy, outcomes: list[Outcome],
                         wall: float) -> bool:
        """Record the batch; stop (True) when too many upgraded instances ended unhealthy."""
        slowest = max((sum(o.timings.values()) for o in outcomes), default=0.0)  # swap+boot+health(+rollback)
        self.store.batch_done(up, {"batch": up.batches_done + 1, "wall": round(wall, 3), "slowest": round(slowest, 3),
                                   "instances": [o.instance_id for o in outcomes], **self._mode})
        done = [st for st in self.store.states(up).values() if st != "InProgress"]
        unsettled = [o for o in outcomes if o.unsettled]
        failed = sum(st in plan.FAILED_STATES for st in done) + len(unsettled)
        breach = plan.upgraded_breach(failed, len(done) + len(unsettled), policy)
        for o in unsettled:
            assert o.unsettled is not None
            swap, new = o.unsettled
            if breach and policy.rollbackFailedInstancesOnPolicyBreach:
                o.state, o.saved = await self._rollback(up, swap, new, "policy breached", o.timings)
            else:  # no rollback: the instance stays Failed on the disk its host boots
                o.saved = self._settle_failed(swap, new)
                self.store.set_instance(up, o.instance_id, "Failed", new.error, o.timings)
        if breach:
            self.store.finish(up, "Faulted", breach)
            self.say(f"upgrade Faulted: {breach[0]}: {breach[1]}")
        return breach is not None

    # -- one instance ----------------------------------------------------------------------------
    async def _upgrade_one(self, up: Upgrade, ss: ScaleSet, swap: Swap, new: Instance,
                           switched: bool = False, wait: float | None = None) -> Outcome:
        if wait is None:
            wait = parse_duration(ss.properties.labSettings.healthWaitTimeout, "healthWaitTimeout")
        if swap.in_place:
            return await self._in_place(up, ss, swap, new, wait)
        healthy, why, timings = await self.bring_up(ss, new, wait, switched)
        iid = new.instance_id
        if healthy:
            await self.commits.write(self._settle_many, (up, swap, new, timings))
            drop_old(swap, self.lab.remover(new))
            self.say(f"instance {iid}: Succeeded (swap {timings['swap']:.1f} s, boot {timings['boot']:.1f} s, "
                     f"health {timings['health']:.1f} s)")
            return Outcome(iid, "Succeeded", timings, saved=new)
        new.provisioning_state, new.error = "Failed", f"not healthy within {int(wait)} s: {why}"
        self.say(f"instance {iid}: not healthy in time ({why})")
        if up.auto_rollback:
            t3 = time.monotonic()
            state, saved = await self._rollback(up, swap, new, why, timings)
            timings["rollback"] = round(time.monotonic() - t3, 3)
            self.store.set_instance(up, iid, state, why, timings)
            return Outcome(iid, state, timings, saved=saved)
        return Outcome(iid, "Failed", timings, unsettled=(swap, new))  # settled at the end of the batch

    async def _in_place(self, up: Upgrade, ss: ScaleSet, swap: Swap, new: Instance, wait: float) -> Outcome:
        """An extension-only change (extupdate.py): the changed extensions re-run in the running
        guest, then the health wait. There is no old OS disk to roll back to: a failed extension
        or an unhealthy instance stays Failed on the model (a failed upgraded instance); a guest
        that cannot be reached keeps its old profile, Failed."""
        t0 = time.monotonic()
        timings = {"extensions": 0.0, "health": 0.0}  # no swap, no boot
        iid = new.instance_id
        try:
            change = extupdate.change_of(swap, new.extensions)  # the runs get what a boot would, a minute at least
            apply_booted(new, await self.driver.update_extensions(new, change, max(60.0, wait)))
        except Exception as exc:  # noqa: BLE001 - a failed instance is an outcome, not a crash
            why = f"{type(exc).__name__}: {exc}"[:300]
            old = old_side(new, swap)
            old.provisioning_state, old.error = "Failed", f"extensions not updated in place: {why}"
            settle_old(self.lab.db, self.lab.journal, swap, old, old.error, self.lab.remover(old))
            timings["extensions"] = round(time.monotonic() - t0, 3)
            self.store.set_instance(up, iid, "Failed", why, timings)
            self.say(f"instance {iid}: extensions not updated in place ({why})")
            return Outcome(iid, "Failed", timings, saved=old)
        t1 = time.monotonic()
        healthy, why = False, new.error or ""
        if new.provisioning_state == "Succeeded":
            healthy, why = await self._wait_healthy(ss, new, t0 + wait)
            if not healthy:
                new.provisioning_state, new.error = "Failed", f"not healthy within {int(wait)} s: {why}"
        timings = {"extensions": round(t1 - t0, 3), "health": round(time.monotonic() - t1, 3)}
        if healthy:
            await self.commits.write(self._settle_many, (up, swap, new, timings))
        else:
            settle_new(self.lab.db, self.lab.journal, swap, new, self.lab.remover(new))
            self.store.set_instance(up, iid, "Failed", why, timings)
        self.say(f"instance {iid}: {'Succeeded' if healthy else 'Failed'} in place (extensions "
                 f"{timings['extensions']:.1f} s, health {timings['health']:.1f} s)")
        return Outcome(iid, "Succeeded" if healthy else "Failed", timings, saved=new)

    async def bring_up(self, ss: ScaleSet, new: Instance, wait: float, switched: bool = False
                       ) -> tuple[bool, str, dict]:
        """Write and switch to `new`'s disks (unless `switched`), wait for its boot and health:
        (healthy, why not, timings of swap, boot and health in seconds)."""
        t0 = time.monotonic()
        deadline = t0 + wait
        timings = {"swap": 0.0, "boot": 0.0, "health": 0.0}
        healthy, why = False, ""
        try:
            if not switched:
                await self.driver.write_disks(new)
                await self.driver.switch(new)  # no "swapped" record: a resume asks libvirt which disk is attached
            t1 = time.monotonic()
            timings["swap"] = t1 - t0
            apply_booted(new, await self.driver.wait_booted(new, max(1.0, deadline - t1)))
            t2 = time.monotonic()
            timings["boot"] = t2 - t1
            healthy, why = await self._wait_healthy(ss, new, deadline)
            timings["health"] = time.monotonic() - t2
        except Exception as exc:  # noqa: BLE001 - a failed instance is an outcome, not a crash
            why = f"{type(exc).__name__}: {exc}"[:300]
        return healthy, why, {k: round(v, 3) for k, v in timings.items()}

    def _settle_many(self, items: list[tuple[Upgrade, Swap, Instance, dict]]) -> None:
        """Healthy instances that finished together: on their new disks, Succeeded (one commit)."""
        record_new(self.lab.db, self.lab.journal, [(swap, new) for _, swap, new, _ in items])
        for up in {id(up): up for up, _, _, _ in items}.values():
            self.store.set_instances(up, [(new.instance_id, "Succeeded", None, timings)
                                          for u, _, new, timings in items if u is up])

    async def _wait_healthy(self, ss: ScaleSet, inst: Instance, deadline: float) -> tuple[bool, str]:
        """Initializing is waited for; Unknown and Unhealthy too, until the deadline."""
        while True:
            reading = await self.driver.health(ss, inst)
            if reading.state == "Healthy":
                return True, reading.detail
            if reading.source == "default" or time.monotonic() >= deadline:  # default: final once booted
                return False, f"{reading.state}: {reading.detail}"
            await asyncio.sleep(min(self.poll_interval, max(0.0, deadline - time.monotonic())))

    async def _rollback(self, up: Upgrade, swap: Swap, new: Instance, why: str,
                        timings: dict | None = None) -> tuple[str, Instance | None]:
        """Back to the previous OS disk (kept until now), booted; the new disk goes.
        Returns the state and the instance as saved (None: its row was left as it was)."""
        self.lab.journal.set_phase(swap, "rollingback")
        old = old_side(new, swap)
        saved: Instance | None = old
        try:
            await self.driver.switch(old)
            apply_booted(old, await self.driver.wait_booted(old, 600.0))
            old.error = f"upgrade to {up.target['version']} rolled back: {why}"[:400]
            settle_old(self.lab.db, self.lab.journal, swap, old, why, self.lab.remover(old))
            self.say(f"instance {old.instance_id}: rolled back to {old.image['version']}")
            state = "RolledBack"
        except Exception as exc:  # noqa: BLE001
            up.rollback_error = f"instance {old.instance_id}: {type(exc).__name__}: {exc}"[:300]
            try:
                attached = self.driver.attached(old)
            except HypervisorError as down:
                self._leave_to_repair(swap, new, down)
                attached = None
            if attached == old.os_disk:
                old.provisioning_state, old.error = "Failed", up.rollback_error
                settle_old(self.lab.db, self.lab.journal, swap, old, up.rollback_error,
                           self.lab.remover(old))
            else:
                saved = None
            self.say(f"instance {old.instance_id}: rollback failed ({exc})")
            state = "RollbackFailed"
        self.store.set_instance(up, old.instance_id, state, why, timings)
        return state, saved

    def _settle_failed(self, swap: Swap, new: Instance) -> Instance | None:
        """A failed instance without rollback stays on its new disk, as saved; None when its host
        does not answer (left to repair: the old disk may be the one it boots)."""
        try:
            self.driver.attached(new)
        except HypervisorError as down:
            self._leave_to_repair(swap, new, down)
            return None
        settle_new(self.lab.db, self.lab.journal, swap, new, self.lab.remover(new))
        return new

    def _leave_to_repair(self, swap: Swap, new: Instance, down: HypervisorError) -> None:
        """The instance's host does not answer: which disk it boots is not known, so both stay
        and the swap is left to `repair` (which asks libvirt once the host answers again)."""
        old = old_side(new, swap)
        old.provisioning_state, old.error = "Failed", f"{down.reason}; run repair once it answers"[:400]
        self.lab.instances.save(old)
        self.lab.journal.release(swap)

    async def _resume(self, up: Upgrade, ss: ScaleSet, swap_id: int) -> Outcome:
        swap = self.lab.journal.get(swap_id)
        self.lab.journal.claim(swap)
        inst = self.lab.instances.get(swap.scale_set, swap.instance_id)
        new = new_side(inst, swap)
        if swap.phase == "done":
            state = "Succeeded" if inst.provisioning_state == "Succeeded" else "Failed"
        elif swap.phase == "aborted":
            state = "RolledBack"
        elif swap.phase == "rollingback":
            state, _ = await self._rollback(up, swap, new, "resumed after a restart")
        else:
            return await self._upgrade_one(up, ss, swap, new, switched=self.driver.attached(new) == new.os_disk)
        self.store.set_instance(up, inst.instance_id, state)
        return Outcome(inst.instance_id, state, {})
