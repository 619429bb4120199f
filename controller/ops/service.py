"""`scaleset controller`: the long-running process of the lab.

Every few seconds it looks at each scale set: it resumes a rolling upgrade no live process
drives (after a kill, or one started with --no-wait), and, for scale sets with automatic OS
upgrade and version `latest`, starts an upgrade (`startedBy: Platform`) once a newer version
(not excluded from latest, replicated to the set's region) has waited `autoUpgradeDelay`.
A version whose automatic upgrade faulted is not retried by the platform.
As it starts, it takes up what a stopped or killed controller left (ops/takeup.py).
"""
from __future__ import annotations

import asyncio
import gc
import sqlite3
import time
from collections.abc import Callable

from controller.core.errors import LabError, ModelError
from controller.core.procs import process_tag
from controller.model.instance import profile_digest, unprotected
from controller.model.jsonmap import parse_duration
from controller.model.scaleset import ScaleSet
from controller.model.versions import parse_version
from controller.ops import fileserver
from controller.ops.lab import Lab
from controller.ops.rolling import Driver, Orchestrator, start_upgrade
from controller.ops.takeup import TakeUp
from controller.state.operations import OperationStore
from controller.state.upgrades import ACTIVE, UpgradeStore

WATCH_SECONDS = 30.0  # a viewer's interest in a set's health lasts this long (it renews it while open)
HEALTH_EVERY = 5.0  # seconds between two health polls of a watched set


def settle_heap() -> None:
    """Collect once, then keep what is alive now (modules, the lab) out of later collections:
    a full collection then walks only what upgrades allocate (CPU spikes at 1,000 instances)."""
    gc.collect()
    gc.freeze()


class Controller:
    def __init__(self, lab: Lab, driver: Driver, *, interval: float = 2.0, say: Callable[[str], None] = print,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.lab, self.driver, self.interval, self.say, self.clock = lab, driver, interval, say, clock
        self.store = UpgradeStore(lab.db)
        self.waiting: dict[str, tuple[str, float]] = {}  # scale set -> (new version, first seen)
        self.noted: set[tuple[str, str]] = set()
        self.tasks: dict[str, asyncio.Task] = {}
        self.broken: dict[str, str] = {}  # scale sets whose model does not read -> why (said once)
        self.watched: dict[str, float] = {}  # scale set -> when a viewer last asked for live health
        self.health_polls: dict[str, tuple[float, asyncio.Task]] = {}
        self.models_applied: dict[str, str] = {}  # scale set -> the model digest last rolled out by itself
        self.takeup: TakeUp | None = None  # what the last controller left, taken up in run()

    def due_version(self, ss: ScaleSet) -> str | None:
        """The version an automatic upgrade should start for now, if any."""
        auto = ss.properties.upgradePolicy.automaticOSUpgradePolicy
        ref = ss.properties.virtualMachineProfile.storageProfile.imageReference
        if not auto.enableAutomaticOSUpgrade or ref.version.lower() != "latest":
            self.waiting.pop(ss.name, None)
            return None
        try:
            latest = self.lab.resolve_image(ss)
        except ModelError:
            return None
        newest = parse_version(latest.version)
        behind = [i for i in unprotected(self.lab.instances.list(ss.name))  # protected ones start no upgrade
                  if parse_version(i.image["version"]) < newest]
        if not behind:
            self.waiting.pop(ss.name, None)
            return None
        if latest.version in self.store.faulted_platform_versions(ss.name):
            if (ss.name, latest.version) not in self.noted:
                self.noted.add((ss.name, latest.version))
                self.say(f"{ss.name}: {latest.version} faulted before; not retried automatically "
                         "(publish a newer version or run rolling-upgrade start)")
            return None
        seen = self.waiting.get(ss.name)
        if seen is None or seen[0] != latest.version:
            delay = parse_duration(ss.properties.labSettings.autoUpgradeDelay, "autoUpgradeDelay")
            self.waiting[ss.name] = (latest.version, self.clock())
            self.say(f"{ss.name}: version {latest.version} published; {len(behind)} instance(s) behind; "
                     f"automatic upgrade in {delay:g} s")
            return None if delay > 0 else latest.version
        delay = parse_duration(ss.properties.labSettings.autoUpgradeDelay, "autoUpgradeDelay")
        if self.clock() - seen[1] >= delay:
            self.waiting.pop(ss.name, None)
            return latest.version
        return None

    def model_changed(self, ss: ScaleSet) -> bool:
        """Modes Automatic and Rolling: some instance is not on the model, and no command is
        changing instances. Each model is rolled out once by the controller: one that did not
        reach every instance waits for update-instances or rolling-upgrade start."""
        if ss.properties.upgradePolicy.mode == "Manual":
            return False
        digest = profile_digest(ss)
        if self.models_applied.get(ss.name) == digest or self.lab.journal.busy(ss.name):
            return False
        behind = [i for i in unprotected(self.lab.instances.list(ss.name)) if i.profile_digest != digest]
        if not behind:
            return False
        self.models_applied[ss.name] = digest
        return True

    def drive(self, name: str, up) -> asyncio.Task:
        """Run the upgrade `up` of scale set `name` in this loop (the API starts them here too)."""
        orch = Orchestrator(self.lab, self.driver, on_event=lambda m: self.say(f"{name}: {m}"))
        self.tasks[name] = asyncio.create_task(orch.run(up))
        return self.tasks[name]

    def watch(self, name: str) -> None:
        """A viewer (the web view) wants `name`'s health kept fresh for the next WATCH_SECONDS."""
        self.watched[name.lower()] = self.clock()

    def _poll_health(self, ss: ScaleSet) -> None:
        """While a viewer watches: one concurrent poll of the set's health source every
        HEALTH_EVERY seconds, recorded (the driver records what it reads), off the tick."""
        seen = self.watched.get(ss.name.lower())
        if seen is None or self.clock() - seen > WATCH_SECONDS:
            self.watched.pop(ss.name.lower(), None)
            return
        last = self.health_polls.get(ss.name)
        if last is not None and (not last[1].done() or self.clock() - last[0] < HEALTH_EVERY):
            return
        insts = self.lab.instances.list(ss.name)

        async def poll() -> None:
            try:
                await self.driver.health_all(ss, insts)
            except Exception as exc:  # noqa: BLE001 - a failed poll is retried at the next one
                self.say(f"{ss.name}: health poll failed: {type(exc).__name__}: {exc}")
        self.health_polls[ss.name] = (self.clock(), asyncio.create_task(poll()))

    def scale_sets(self) -> list[ScaleSet]:
        """The models that read; one that does not is named (once per problem) and skipped."""
        good, bad = self.lab.models.scan()
        for exc in bad:
            if self.broken.get(exc.field) != exc.reason:
                self.say(f"skipped: {exc}")
        self.broken = {exc.field: exc.reason for exc in bad}
        return good

    async def tick(self) -> None:
        for ss in self.scale_sets():
            try:
                self._poll_health(ss)
                await self._look_at(ss)
            except LabError as exc:  # one set's problem never stops the others
                self.say(f"{ss.name}: skipped this round: {exc}")

    async def _look_at(self, ss: ScaleSet) -> None:
        if self.takeup is not None and self.takeup.busy(ss.name):
            return  # still being repaired after the last controller's stop
        task = self.tasks.get(ss.name)
        if task is not None and not task.done():
            return
        if task is not None and task.exception() is not None:
            self.say(f"{ss.name}: upgrade stopped by an error: {task.exception()!r}")
        self.tasks.pop(ss.name, None)
        active = self.store.active(ss.name)
        if active is not None:
            if active in self.store.orphaned():
                self.say(f"{ss.name}: resuming rolling upgrade {active.id} to {active.target['version']}")
                self.drive(ss.name, active)
            return
        if self.due_version(ss):
            up = start_upgrade(self.lab, ss, "Platform")
            self.say(f"{ss.name}: automatic OS upgrade {up.id} to {up.target['version']} started")
            self.drive(ss.name, up)
        elif self.model_changed(ss):
            up = start_upgrade(self.lab, ss, "User", model_change=True)
            how = "to every instance at once" if up.policy["maxBatchInstancePercent"] == 100 else "in batches"
            self.say(f"{ss.name}: the model changed (mode {ss.properties.upgradePolicy.mode}); upgrade {up.id} "
                     f"applies it {how}")
            self.drive(ss.name, up)

    async def run(self, once: bool = False, files: bool = False) -> None:
        """Loop (or one look with `once`); `files`: also serve extension fileUris."""
        settle_heap()
        # repair what a killed command or controller left, and end or resume its API operations
        # (not upgrades: they resume in the loop); one task per set, the loop runs meanwhile
        self.takeup = TakeUp(self.lab, self.say)
        self.takeup.start(self.scale_sets())
        if once:
            await self.takeup.wait()
        runner = await fileserver.serve(self.lab.paths) if files else None
        if runner is not None:
            self.say(f"serving {self.lab.paths.home / 'files'} to guests on 127.0.0.1:"
                     f"{fileserver.port(self.lab.paths)} (guests: {fileserver.GUEST_HOST})")
        try:
            while True:
                await self.tick()
                if once:
                    if self.tasks:
                        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
                    return
                await asyncio.sleep(self.interval)
        finally:
            if runner is not None:
                await runner.cleanup()

    def cut_off(self, db: sqlite3.Connection | None = None) -> list[str]:
        """What this process has under way (a stop now leaves it to the next controller or to
        `scaleset repair`): its API operations in progress, its unfinished swaps, the upgrades it
        drives, its repair of what the last one left. `db`: a connection of the caller's thread."""
        db = db or self.lab.db
        me = process_tag()
        out = []
        ops = OperationStore(db).mine_in_progress()
        if ops:
            out.append(f"{ops} operation(s) in progress")
        swaps = db.execute("SELECT COUNT(*) FROM disk_swaps WHERE phase NOT IN ('done','aborted') AND owner_pid=?",
                           (me,)).fetchone()[0]
        if swaps:
            out.append(f"{swaps} unfinished OS-disk swap(s)")
        ups = db.execute("SELECT COUNT(*) FROM rolling_upgrades WHERE status=? AND owner=?", (ACTIVE, me)).fetchone()[0]
        if ups:
            out.append(f"{ups} rolling upgrade(s)")
        if self.takeup is not None and any(not t.done() for t in list(self.takeup.tasks.values())):
            out.append("the repair of what the last controller left")
        return out
