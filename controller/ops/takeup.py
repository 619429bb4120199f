"""What a stopped or killed controller left, taken up by the next one as it starts.

Every scale set is repaired as `scaleset repair` does (ops/provision.reconcile: unfinished swaps
finished or undone), each in a task of its own, so one slow guest delays no other set and the
controller's loop runs meanwhile. The API operations the dead process had InProgress
(state/operations.py) are claimed by this process and end truthfully:

- a create or update (PUT, PATCH) of a set is resumed: the set is brought to its model's capacity
  (commands.scale, as the request's own work did); a create then ends Succeeded or Failed as its
  instances are; an update, whose new capacity the stop may have cut off before it was stored,
  ends Failed `OperationPreempted` naming the capacity the set has (or as its instances failed);
- a delete of a set is resumed (commands.delete), before any repair of that set;
- a rolling upgrade (osRollingUpgrade) ends as the upgrade does (the controller resumes it), a
  cancel once it stopped;
- any other (reimage, power, an instance's, an image's) ends Failed `OperationPreempted`, saying
  what the repair of its set did: repeat it if it is still wanted.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from controller.core.clock import now_iso
from controller.core.errors import LabError, ModelError
from controller.model.scaleset import ScaleSet
from controller.ops import commands
from controller.ops.deploy import preempt_orphans
from controller.ops.lab import Lab
from controller.ops.provision import reconcile
from controller.state.operations import OperationStore, OpRecord, preempted
from controller.state.upgrades import ACTIVE, UpgradeStore

T = TypeVar("T")
FOLLOW_EVERY = 0.2  # seconds between two looks at an upgrade a resumed operation follows
RESUMED = ("create", "update")  # kinds of set operations whose work (scale to the model) is done again


def set_of(resource: str) -> tuple[str | None, bool]:
    """The scale set an ARM id is of, and whether the id is the set's own (not an instance's)."""
    parts = resource.strip("/").split("/")
    low = [p.lower() for p in parts]
    if "virtualmachinescalesets" not in low:
        return None, False
    i = low.index("virtualmachinescalesets")
    return (parts[i + 1], len(parts) == i + 2) if i + 1 < len(parts) else (None, False)


def in_own_lab(lab: Lab, fn: Callable[..., T], *args: Any) -> T:
    """fn(lab, *args) with a Lab of this thread's own (SQLite connections stay in their thread)."""
    own = Lab(lab.paths, lab.uri, lab._accel)
    try:
        return fn(own, *args)
    finally:
        own.close()


def _error(exc: BaseException) -> dict:
    if isinstance(exc, LabError):
        return exc.to_json()["error"]
    return {"code": "InternalError", "message": f"{type(exc).__name__}: {exc}"}


class TakeUp:
    def __init__(self, lab: Lab, say: Callable[[str], None]) -> None:
        self.lab, self.say = lab, say
        self.store = OperationStore(lab.db)
        self.tasks: dict[str, asyncio.Task] = {}  # scale set (lower case) -> its repair, then its operations
        self.repaired: set[str] = set()

    def busy(self, name: str) -> bool:
        """The set is still being repaired (the loop leaves it alone until then)."""
        return name.lower() in self.tasks and name.lower() not in self.repaired

    def start(self, sets: list[ScaleSet]) -> None:
        """Claim the orphaned operations; a task per set repairs it and ends its operations.
        Deployments left running end Failed (ops/deploy.py); their resources' operations are these."""
        preempt_orphans(self.lab, self.say)
        by_set: dict[str, list[OpRecord]] = {}
        for op in self.store.orphans():
            self.store.claim(op.id)
            name, _ = set_of(op.resource)
            if name is None:
                self._end(op, "Failed", preempted("nothing resumes it here; run it again if it is still wanted"))
            else:
                by_set.setdefault(name.lower(), []).append(op)
        known = {ss.name.lower(): ss for ss in sets}
        for key in dict.fromkeys([*known, *by_set]):
            self.tasks[key] = asyncio.create_task(self._take_up(known.get(key), key, by_set.get(key, [])))

    async def wait(self) -> None:
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)

    def _end(self, op: OpRecord, status: str, error: dict | None = None) -> None:
        self.store.end(op.id, status, error, now_iso())
        self.say(f"operation {op.id} ({op.kind} of {op.resource.rsplit('/', 1)[-1]}), left by the last controller: "
                 f"{status}" + (f": {error['code']}: {error['message']}" if error else ""))

    async def _take_up(self, ss: ScaleSet | None, name: str, ops: list[OpRecord]) -> None:
        try:
            await self._run(ss, name, ops)
        except Exception as exc:  # noqa: BLE001 - said, and every operation of the set still ends
            self.say(f"{name}: taking up what the last controller left failed: {type(exc).__name__}: {exc}")
            for op in ops:
                if self.store.get(op.id).status == "InProgress":  # type: ignore[union-attr]
                    self._end(op, "Failed", preempted(f"taking it up failed: {_error(exc)['message']}"))
        finally:
            self.repaired.add(name)

    async def _run(self, ss: ScaleSet | None, name: str, ops: list[OpRecord]) -> None:
        own = [op for op in ops if set_of(op.resource)[1]]
        deletes = [op for op in own if op.kind == "delete"]
        if deletes:
            await self._delete(ss.name if ss else name, deletes, [op for op in ops if op not in deletes])
            return
        lines: list[str] = []
        if ss is not None:
            try:
                lines = await reconcile(self.lab, ss)
            except LabError as exc:
                lines = [f"repair failed: {exc}"]
            for line in lines:
                self.say(f"{ss.name}: {line}")
        self.repaired.add(name)
        done = "; ".join(lines) or "nothing was left unfinished"
        follows = [op for op in ops if ss is not None and op.kind in ("osRollingUpgrade", "cancel")]
        for op in ops:
            if ss is None:
                self._end(op, "Failed", preempted(f"scale set '{name}' no longer exists"))
            elif op.kind in RESUMED and op in own:
                await self._scale(ss.name, op)
            elif op not in follows:
                self._end(op, "Failed", preempted(f"the restarted controller repaired the scale set ({done}); "
                                                  "run the operation again if it is still wanted"))
        if ss is not None:
            await asyncio.gather(*(self._follow(ss.name, op, cancel=op.kind == "cancel") for op in follows))

    async def _delete(self, name: str, deletes: list[OpRecord], others: list[OpRecord]) -> None:
        try:
            await asyncio.to_thread(in_own_lab, self.lab, commands.delete, name)
            status, error = "Succeeded", None
        except ModelError as exc:
            status, error = ("Succeeded", None) if exc.code == "ResourceNotFound" else ("Failed", _error(exc))
        except Exception as exc:  # noqa: BLE001 - the operation's error
            status, error = "Failed", _error(exc)
        for op in deletes:
            self._end(op, status, error)
        for op in others:
            self._end(op, "Failed", preempted(f"scale set '{name}' was being deleted"))

    async def _scale(self, name: str, op: OpRecord) -> None:
        """The create or update again: the set brought to its model's capacity."""
        try:
            capacity = self.lab.models.get(name).sku.capacity
            insts = await asyncio.to_thread(in_own_lab, self.lab, commands.scale, name, capacity)
        except Exception as exc:  # noqa: BLE001 - the operation's error
            self._end(op, "Failed", _error(exc))
            return
        bad = [i for i in insts if i.provisioning_state == "Failed"]
        if bad:
            self._end(op, "Failed", {"code": "InstanceOperationFailed", "target": "instanceIds", "message": "; ".join(
                f"instance {i.instance_id}: {i.error}" for i in bad)})
        elif op.kind == "create":  # its capacity was stored with the model before the operation began
            self._end(op, "Succeeded")
        else:  # a PATCH or PUT stores a new capacity only as its work begins: the stop may have cut that off
            self._end(op, "Failed", preempted(
                f"the restarted controller repaired the scale set and brought it to its stored capacity "
                f"({capacity}, every instance Succeeded); send the request again if it changed the capacity"))

    async def _follow(self, name: str, op: OpRecord, cancel: bool = False) -> None:
        """A rolling upgrade's operation ends as the upgrade does (the loop resumes the upgrade)."""
        store = UpgradeStore(self.lab.db)
        up = store.latest(name)
        while up is not None and up.status == ACTIVE:
            await asyncio.sleep(FOLLOW_EVERY)
            up = store.get(up.id)
        if up is None or cancel or up.status == "Completed":
            self._end(op, "Succeeded")
        elif up.status == "Cancelled":
            self._end(op, "Canceled", {"code": "OperationCanceled", "message": "the rolling upgrade was cancelled"})
        else:
            self._end(op, "Failed", {"code": up.error_code or "RollingUpgradeFaulted",
                                     "message": up.error_message or "the rolling upgrade faulted"})
