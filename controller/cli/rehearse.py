"""`scaleset rehearse FILE`: run a rehearsal scenario; exit 0 only if every expectation held."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

from controller.api.tls import ensure_certs
from controller.core import signals
from controller.ops.lab import Lab
from controller.rehearse.backend import LabBackend
from controller.rehearse.junit import write_junit
from controller.rehearse.report import write_report
from controller.rehearse.runner import Rehearsal
from controller.rehearse.scenario import load


def _say(msg: str) -> None:
    print(f"[rehearse {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def rehearse(file: Path, junit: Path | None = None, report: Path | None = None, keep: bool = False) -> int:
    scenario = load(file)  # a bad file ends here, before anything is built
    signals.defer()  # Ctrl-C stops the run, then what it created is deleted (a second Ctrl-C: at once)
    lab = Lab.open()
    log = lab.paths.logs / f"rehearse-{scenario.name}.controller.log"
    log.unlink(missing_ok=True)
    backend = LabBackend(lab, log)

    def link() -> None:
        url = backend.web_link()
        if url:
            _say(f"web view (the lab's CA: {ensure_certs(lab.paths).ca}); one-time login link, valid 1 h:")
            print(url, flush=True)

    _say(f"scenario {scenario.name} ({file}): {len(scenario.images)} image version(s), {len(scenario.steps)} steps; "
         f"lab {lab.paths.home}, acceleration {lab.accel.kind}")
    run = Rehearsal(scenario, backend, _say, on_controller=link)
    passed = False
    try:
        passed = asyncio.run(run.run())
    finally:
        with signals.cleaning_up():  # also after Ctrl-C: what the run created is deleted
            outcome = run.finish(keep)
            for line in outcome.cleanup:
                _say(line)
            for inst in outcome.instances:
                _say(f"instance {inst['instanceId']}: running {inst['version']}, {inst['provisioningState']}, "
                     f"health {inst['health']}")
            if junit:
                _say(f"JUnit XML: {write_junit(outcome, junit)}")
            if report:
                _say(f"report: {write_report(outcome, report)}")
    if outcome.runner:
        _say(f"rehearse process: {outcome.runner['cpuSeconds']:.2f} s CPU in {outcome.runner['stepsWallSeconds']:.0f} s "
             f"of steps ({outcome.runner['cpuPercent']} %: the runner and the commands it calls; "
             "not the guests or the controller)")
    failed = [r for r in outcome.results if r.status in ("failed", "error")]
    wall = (outcome.ended or time.time()) - outcome.started
    if passed:
        _say(f"PASSED: {scenario.name}, every expectation held ({wall:.0f} s)")
    else:
        _say(f"FAILED: {scenario.name}: " + (f"{failed[0].title}: {failed[0].message}" if failed else "not finished")
             + f" ({wall:.0f} s)")
    return 0 if passed else 1


def cmd_rehearse(args) -> int:
    return rehearse(args.file, args.junit, args.report, args.keep)


def register(sub) -> None:
    p = sub.add_parser("rehearse", help="run a rehearsal scenario (YAML): build, act, expect, clean up")
    p.add_argument("file", type=Path, metavar="FILE", help="the scenario (see lab/scenarios/)")
    p.add_argument("--junit", type=Path, metavar="PATH", help="write JUnit XML: one test case per image and step")
    p.add_argument("--report", type=Path, metavar="DIR", help="write DIR/index.html and DIR/rehearsal.json")
    p.add_argument("--keep", action="store_true", help="leave the scale set and image versions for inspection")
    p.set_defaults(func=cmd_rehearse)
