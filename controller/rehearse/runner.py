"""`scaleset rehearse`: build what is missing, run the steps with the controller, watch the
rollouts, and then (unless --keep) delete everything the scenario created, whatever happened.

`Rehearsal.run()` is the part that may be interrupted; `finish()` is synchronous and runs
after it in every case (the CLI runs it with Ctrl-C set aside: see signals.cleaning_up).
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

from controller.core.errors import Interrupted, LabError
from controller.rehearse.backend import Backend
from controller.rehearse.progress import Progress
from controller.rehearse.scenario import EXPECTATIONS, ImageSpec, Scenario, ScenarioError
from controller.rehearse.scrub import scrub
from controller.rehearse.steps import ACTIONS, Context, Unmet

LOG_TAIL = 3000


@dataclass
class StepResult:
    index: int  # -1: an image build
    title: str
    kind: str
    status: str = "skipped"  # passed | failed | error | skipped
    message: str = ""
    started: float | None = None  # epoch seconds
    seconds: float = 0.0
    line: int = 0
    expectation: bool = False
    log: str = ""


@dataclass
class Outcome:
    scenario: str
    file: str
    scale_set: str
    started: float
    ended: float | None = None
    passed: bool = False
    results: list[StepResult] = field(default_factory=list)
    upgrades: list[dict] = field(default_factory=list)  # latest_view of each, oldest first
    history: list[dict] = field(default_factory=list)  # get-os-upgrade-history
    instances: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    cleanup: list[str] = field(default_factory=list)
    runner: dict = field(default_factory=dict)  # the runner's own CPU while the steps ran (its overhead)

    def to_json(self) -> dict:
        return scrub(asdict(self))


class Rehearsal:
    def __init__(self, scenario: Scenario, backend: Backend, say: Callable[[str], None] = print,
                 poll: float = 1.0, on_controller: Callable[[], None] | None = None) -> None:
        self.scenario, self.backend = scenario, backend
        self.say = lambda m: say(scrub(m))
        self.ctx = Context(scenario, backend, self.say, poll=poll)
        self.on_controller = on_controller  # e.g. print the web view's login link
        self.outcome = Outcome(scenario.name, str(scenario.path), scenario.scale_set, time.time())
        self.builds = [StepResult(-1, f"image {im.version}", "image") for im in scenario.images]
        self.steps = [StepResult(s.index, s.title, s.kind, line=s.line, expectation=s.kind in EXPECTATIONS)
                      for s in scenario.steps]
        self.outcome.results = self.builds + self.steps
        self.created_set = False
        self.built: list[str] = []  # versions this run added to the gallery

    # -- the run ---------------------------------------------------------------------------------
    async def run(self) -> bool:
        s = self.scenario
        if s.scale_set.lower() in {n.name.lower() for n in self.ctx.lab.models.list()}:
            raise ScenarioError("scaleSet.name", f"a scale set '{s.scale_set}' exists in this lab already "
                                                 "(delete it, or give the scenario another name)", "Conflict")
        await self.backend.start_controller()  # first: the web view shows the builds' versions too
        if self.on_controller:
            self.on_controller()
        for im, res in zip(s.images, self.builds, strict=True):
            if not await self._attempt(res, lambda im=im: self._image(im)):
                return self._end(False)
        progress = Progress(self.ctx)
        watcher = asyncio.create_task(progress.watch())
        cpu0, wall0 = time.process_time(), time.monotonic()
        try:
            for step, res in zip(s.steps, self.steps, strict=True):
                progress.look()  # what the last step set off, before the next one is said
                self.say(f"step {step.index + 1}/{len(s.steps)}: {step.title}")
                if step.kind == "create":
                    self.created_set = True
                if not await self._attempt(res, lambda step=step: ACTIONS[step.kind](self.ctx, step)):
                    await self._final_health()
                    return self._end(False)
            await self._final_health()
        finally:
            watcher.cancel()
            ended = (await asyncio.gather(watcher, return_exceptions=True))[0]
            if isinstance(ended, Exception):  # the progress is lost, not the run
                self.say(f"progress stopped: {type(ended).__name__}: {ended}")
            else:
                progress.look()  # what happened since its last look
            cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
            self.outcome.runner = {"cpuSeconds": round(cpu, 3), "stepsWallSeconds": round(wall, 3),
                                   "cpuPercent": round(100 * cpu / wall, 2) if wall > 0 else 0.0}
        return self._end(True)

    async def _final_health(self) -> None:
        """One last reading of every instance's health, for the report (best effort)."""
        if self.created_set and self.ctx.lab.models.stored_name(self.scenario.scale_set):
            try:
                await self.backend.health(self.scenario.scale_set)
            except (LabError, OSError) as exc:
                self.say(f"last health reading failed: {exc}")

    def _end(self, passed: bool) -> bool:
        self.outcome.passed = passed
        return passed

    async def _attempt(self, res: StepResult, work: Callable) -> bool:
        res.started, t0 = time.time(), time.monotonic()
        try:
            res.message = await work() or ""
            res.status = "passed"
        except Unmet as exc:
            res.status, res.message = "failed", str(exc)
        except LabError as exc:
            if isinstance(exc, Interrupted):
                res.status, res.message = "error", str(exc)
                raise
            res.status, res.message = "error", f"({exc.code}) {exc}"
        finally:
            res.seconds = round(time.monotonic() - t0, 3)
            if res.status == "skipped":  # interrupted or crashed mid-step
                res.status, res.message = "error", res.message or "interrupted"
        res.message = scrub(res.message)
        mark = {"passed": "ok", "failed": "FAILED", "error": "ERROR"}[res.status]
        self.say(f"  {mark} ({res.seconds:.1f} s){': ' + res.message if res.message else ''}")
        if res.status != "passed":
            res.log = scrub(self.backend.controller_log(LOG_TAIL))
        return res.status == "passed"

    async def _image(self, im: ImageSpec) -> str:
        s = self.scenario
        gallery = self.ctx.lab.gallery
        have = {iv.version: iv for iv in gallery.list(s.publisher, s.offer, s.sku)}
        if im.version in have:
            if im.held and not have[im.version].exclude_from_latest:
                raise Unmet(f"{s.publisher}:{s.offer}:{s.sku}:{im.version} exists and is in latest already: "
                            "its publish step would change nothing")
            return "exists: reused"
        self.say(f"image {im.version}: {'importing ' + str(im.source) if im.source else 'building'}"
                 f"{' (held back until its publish step)' if im.held else ''} ...")
        self.built.append(im.version)
        if im.source is not None:
            await asyncio.to_thread(_import, self.ctx.lab.paths, s, im)
        else:
            await self.backend.build(s.publisher, s.offer, s.sku, im.version, im.customize, im.recipe, im.held)
        return "built" if im.source is None else "imported"

    # -- afterwards ------------------------------------------------------------------------------
    def finish(self, keep: bool = False) -> Outcome:
        """Record what the lab shows, then delete what the run created (unless `keep`)."""
        o = self.outcome
        o.ended, o.events = time.time(), self.ctx.events
        try:
            self._collect()
        except LabError as exc:
            o.cleanup.append(f"could not read the rollouts: {exc}")
        self.backend.stop_controller()
        if keep:
            o.cleanup.append(f"kept (--keep): scale set {self.scenario.scale_set} and image versions "
                             f"{self.built} are left; `scaleset controller` carries on with them")
            return o
        lab = self.ctx.lab
        if self.created_set and lab.models.stored_name(self.scenario.scale_set):
            try:
                self.backend.delete(self.scenario.scale_set)
                o.cleanup.append(f"deleted scale set {self.scenario.scale_set}")
            except LabError as exc:
                o.cleanup.append(f"ERROR deleting scale set {self.scenario.scale_set}: {exc}")
        s = self.scenario
        for version in reversed(self.built):
            try:
                lab.gallery.delete(s.publisher, s.offer, s.sku, version, lab.instances.images_in_use())
                o.cleanup.append(f"deleted image version {version}")
            except LabError as exc:
                o.cleanup.append(f"ERROR deleting image version {version}: {exc}")
        for name in self.ctx.files:
            (lab.paths.files / name).unlink(missing_ok=True)
        return o

    def _collect(self) -> None:
        from controller.ops.upgrade_views import history_item, latest_view
        from controller.state.health import HealthStore
        from controller.state.upgrades import UpgradeStore
        lab, name, o = self.ctx.lab, self.scenario.scale_set, self.outcome
        if not lab.models.stored_name(name):
            return
        ups = list(reversed(UpgradeStore(lab.db).history(name)))
        o.upgrades = [latest_view(lab, u) for u in ups]
        o.history = [history_item(lab, u) for u in reversed(ups)]
        health = HealthStore(lab.db).get(name)
        o.instances = [{"instanceId": i.instance_id, "updateDomain": i.update_domain,
                        "version": i.stamp.get("version"), "provisioningState": i.provisioning_state,
                        "health": health[i.instance_id].state if i.instance_id in health else None}
                       for i in lab.instances.list(name)]


def _import(paths, s: Scenario, im: ImageSpec) -> None:
    from controller.state.db import connect
    from images.gallery import Gallery
    Gallery(paths, connect(paths.db)).import_file(s.publisher, s.offer, s.sku, im.version, im.source,
                                                  exclude_from_latest=im.held)
