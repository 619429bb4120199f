"""Benchmark: the ARM API under load while a rolling upgrade of the scale set runs.

    .venv/bin/python bench/api_load.py [--seconds 30] [--clients 50] [--instances 100] [--json]

A lab in a temp dir on test:///default: a scale set of --instances fake instances (tests/fakedriver.py,
each boot stretched by a sleep so that the upgrade runs during the load) on image 1.0.0, 1.0.1
published, controller + API served in one thread (tests/apiserver.py). A process of its own
(bench/loadgen.py) runs --clients clients for --seconds, each one keep-alive HTTPS connection
GETting the scale set and its VM list in turn; meanwhile a rolling upgrade is started through the
API (POST osRollingUpgrade). The same upgrade then runs again on a fresh lab without clients.

Figures: requests/s; p50/p90/p99/max latency per route as the clients see it (and p50/p99 as the
server's handler sees it, from its debug log); errors (any non-200); per upgrade, the lab's
overhead (rollingUpgrades/latest `lab.overhead`) and the controller's CPU: the thread CPU of the
upgrade's own tasks and commits (not the API's, which shares the process), minus the fake's.
BENCH_PROFILE=FILE writes a cProfile (thread CPU) of the server's event-loop thread during the load.
"""
from __future__ import annotations

import argparse
import asyncio
import collections.abc
import contextvars
import cProfile
import json
import logging
import math
import multiprocessing
import os
import shutil
import ssl
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path
from typing import Any, ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import loadgen  # noqa: E402
from controller.core.settings import LabPaths  # noqa: E402
from controller.ops import service  # noqa: E402
from controller.ops.lab import Lab  # noqa: E402
from controller.ops.rolling import Orchestrator  # noqa: E402
from controller.state.upgrades import UpgradeStore  # noqa: E402
from controller.virt.accel import Accel  # noqa: E402
from tests.apiserver import Served, serve  # noqa: E402
from tests.fakedriver import FakeDriver, make_scale_set  # noqa: E402
from tests.helpers import make_qcow2  # noqa: E402
from tests.test_rolling import model  # noqa: E402

P, O, S = "scaleset-lab", "debian", "debian-12"
API_VERSION = "2024-07-01"
BATCH_PERCENT = 20
ROUTES = ("GET scale set", "GET VM list")
UPGRADE_TIMEOUT = 600.0  # seconds an upgrade may take at most before the benchmark gives up


# -- the controller's CPU: thread CPU of the upgrade's own steps ---------------------------------
class Meter:
    """Thread CPU of the steps run under it (`with meter:`, nested ones counted once), and marks."""

    def __init__(self) -> None:
        self.cpu, self._since, self._depth = 0.0, 0.0, 0
        self.marks: list[tuple[float, float]] = []  # (meter CPU, fake's CPU) at the run's start and each batch

    def __enter__(self) -> None:
        if self._depth == 0:
            self._since = time.thread_time()
        self._depth += 1

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            self.cpu += time.thread_time() - self._since

    def now(self) -> float:
        return self.cpu + (time.thread_time() - self._since if self._depth else 0.0)


METER: contextvars.ContextVar[Meter | None] = contextvars.ContextVar("bench_meter", default=None)


class Metered(collections.abc.Coroutine):
    """A coroutine whose every step (send/throw) is counted on a meter."""

    def __init__(self, coro: Any, meter: Meter) -> None:
        self.coro, self.meter = coro, meter

    def send(self, value: Any) -> Any:
        with self.meter:
            return self.coro.send(value)

    def throw(self, *args: Any) -> Any:
        with self.meter:
            return self.coro.throw(*args)

    def close(self) -> None:
        self.coro.close()

    def __await__(self) -> Metered:
        return self

    __iter__ = __await__

    def __next__(self) -> Any:
        return self.send(None)


def task_factory(loop: asyncio.AbstractEventLoop, coro: Any, **kw: Any) -> asyncio.Task:
    """Tasks made under an upgrade (its batch's instances) are metered too."""
    meter = METER.get()
    if meter is not None and not isinstance(coro, Metered):
        coro = Metered(coro, meter)
    return asyncio.Task(coro, loop=loop, **kw)


class MeteredOrchestrator(Orchestrator):
    """The real orchestrator; its steps, its tasks and its group commits run under a Meter."""

    meters: ClassVar[list[Meter]] = []

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        meter = self.meter = Meter()
        self.meters.append(meter)
        flush, say = self.commits._flush, self.say

        def metered_flush() -> None:  # run by loop.call_soon, outside any task
            with meter:
                flush()

        def mark(msg: str) -> None:
            if msg.startswith(("batch ", "upgrade ")):
                meter.marks.append((meter.now(), self.driver.cpu))
            say(msg)
        self.commits._flush, self.say = metered_flush, mark  # type: ignore[method-assign]

    async def run(self, up: Any) -> Any:
        METER.set(self.meter)  # this task's context: tasks it makes inherit it
        self.meter.marks.append((self.meter.now(), self.driver.cpu))
        return await Metered(super().run(up), self.meter)


class SlowBootDriver(FakeDriver):
    """The fake, each boot taking `boot` seconds (a sleep); its CPU counted per thread."""

    def __init__(self, boot: float) -> None:
        super().__init__()
        self.boot = boot

    @contextmanager
    def _vm_side(self) -> Iterator[None]:
        t0 = time.thread_time()
        try:
            yield
        finally:
            self.cpu += time.thread_time() - t0

    async def wait_booted(self, inst: Any, timeout: float) -> Any:
        await asyncio.sleep(self.boot)
        return await super().wait_booted(inst, timeout)


class ServerTimes(logging.Handler):
    """The API's own per-request time (its debug line `METHOD PATH STATUS N ms`), per route."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.ms: dict[str, list[float]] = {r: [] for r in ROUTES}
        self.errors = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            self.errors += 1
        elif record.msg == "%s %s %s %.1f ms" and len(record.args or ()) == 4:
            method, path, _, ms = record.args  # type: ignore[misc]
            if method == "GET" and path.endswith("/virtualMachines"):
                self.ms[ROUTES[1]].append(ms)
            elif method == "GET" and path.endswith("/virtualMachineScaleSets/web"):
                self.ms[ROUTES[0]].append(ms)


# -- the lab and the API -------------------------------------------------------------------------
@contextmanager
def served_lab(tmp: Path, instances: int, boot: float) -> Iterator[Served]:
    """Controller + API on a fresh lab with the scale set on 1.0.0 and 1.0.1 published."""
    home = tmp / "lab"
    os.environ["SCALESET_HOME"], os.environ["SCALESET_PORTS_DIR"] = str(home), str(tmp)
    lab = Lab(LabPaths(home).ensure(), "test:///default", Accel("tcg", "benchmark"))
    disk = make_qcow2(tmp / "disk.qcow2", data=b"x" * 4096)
    lab.gallery.import_file(P, O, S, "1.0.0", disk)
    driver = SlowBootDriver(boot)
    try:
        with contextmanager(serve)(lab, driver, interval=2.0) as served:
            on_loop(served, lambda: asyncio.get_running_loop().set_task_factory(task_factory))
            doc = model(instances, maxBatchInstancePercent=BATCH_PERCENT, maxUnhealthyInstancePercent=BATCH_PERCENT,
                        enableAutomaticOSUpgrade=False)  # upgrades start through the API only
            make_scale_set(lab, doc, driver, "1.0.0")  # after the controller's start: nothing to repair
            lab.gallery.import_file(P, O, S, "1.0.1", disk)
            yield served
    finally:
        lab.close()


def on_loop(served: Served, fn: Any) -> None:
    """fn() on the server's event-loop thread; returns once it ran."""
    async def run() -> None:
        fn()
    asyncio.run_coroutine_threadsafe(run(), served.loop).result(10)


def call(served: Served, method: str, url: str, context: ssl.SSLContext, token: str) -> tuple[dict, dict]:
    """One request from this process (a few per run: start, polls); (body, headers)."""
    sep = "&" if "?" in url else "?"
    full = url if "api-version=" in url else f"{url}{sep}api-version={API_VERSION}"
    req = urllib.request.Request(full, method=method, data=b"" if method == "POST" else None,
                                 headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, context=context, timeout=30) as resp:
            raw = resp.read()
            return (json.loads(raw) if raw else {}), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        code = (json.loads(exc.read() or b"{}").get("error") or {}).get("code")
        raise SystemExit(f"{method} {url.split('?')[0]}: HTTP {exc.code} ({code})") from None
    except (urllib.error.URLError, OSError) as exc:
        raise SystemExit(f"{method} {url.split('?')[0]}: {exc}") from None


def upgrade(served: Served) -> dict:
    """Start the rolling upgrade through the API, wait for its operation, read get-latest."""
    context, token = ssl.create_default_context(cafile=str(served.ca)), served.token()
    cpu0, meters = time.process_time(), len(MeteredOrchestrator.meters)
    _, hdrs = call(served, "POST", served.url("virtualMachineScaleSets/web/osRollingUpgrade"), context, token)
    posted = time.monotonic()
    while True:
        op, _ = call(served, "GET", hdrs["Azure-AsyncOperation"], context, token)
        if op.get("status") != "InProgress" or time.monotonic() - posted > UPGRADE_TIMEOUT:
            break
        time.sleep(0.2)
    record = UpgradeStore(served.lab.db).latest("web")  # its precise times (the API's are to the second)
    shift = time.monotonic() - time.time()  # epoch -> this machine's monotonic clock, which the clients use too
    started, ended = record.started_epoch + shift, (record.ended_epoch or time.time()) + shift
    latest, _ = call(served, "GET", served.url("virtualMachineScaleSets/web/rollingUpgrades/latest"), context, token)
    props = latest["properties"]
    meter = MeteredOrchestrator.meters[meters] if len(MeteredOrchestrator.meters) > meters else Meter()
    marks = meter.marks
    batches = [1000 * ((c1 - c0) - (f1 - f0)) for (c0, f0), (c1, f1) in pairwise(marks)]
    fake = marks[-1][1] - marks[0][1] if marks else 0.0
    return {"status": props["runningStatus"]["code"], "operation": op.get("status"),
            "started": started, "ended": ended, "overhead": props["lab"]["overhead"],
            "controllerCpuMs": round(1000 * (meter.cpu - fake), 1),
            "controllerCpuPerBatchMs": [round(b, 1) for b in batches[1:]],
            "planningCpuMs": round(batches[0], 1) if batches else None,
            "processCpuMs": round(1000 * (time.process_time() - cpu0), 1)}


# -- the runs ------------------------------------------------------------------------------------
def loaded_run(tmp: Path, args: argparse.Namespace, boot: float) -> dict:
    """The upgrade while the clients run; the clients' samples and the server's times."""
    load_average = os.getloadavg()[0]
    times = ServerTimes()
    api_log = logging.getLogger("scaleset.api")
    api_log.addHandler(times)
    api_log.setLevel(logging.DEBUG)
    api_log.propagate = False
    with served_lab(tmp, args.instances, boot) as served:
        urls = [f"{served.url('virtualMachineScaleSets/web')}?api-version={API_VERSION}",
                f"{served.url('virtualMachineScaleSets/web/virtualMachines')}?api-version={API_VERSION}"]
        spawn = multiprocessing.get_context("spawn")
        ready, (mine, theirs) = spawn.Event(), spawn.Pipe(duplex=False)
        proc = spawn.Process(target=loadgen.run, daemon=True, args=(
            urls, served.token(), str(served.ca), args.clients, args.seconds, ready, theirs))
        proc.start()
        theirs.close()
        try:
            if not ready.wait(120):
                raise SystemExit("the load generator did not connect in 120 s")
            cpu0, t0 = time.process_time(), time.monotonic()
            profile = cProfile.Profile(time.thread_time) if os.environ.get("BENCH_PROFILE") else None
            if profile:  # CPU, not wall time (waits for the GIL are not the loop's work), of the loop's thread
                on_loop(served, profile.enable)
            time.sleep(lead(args.seconds))
            up = upgrade(served)
            if not mine.poll(args.seconds + 120):
                raise SystemExit("the load generator did not finish in time")
            try:
                load = mine.recv()
            except EOFError:
                raise SystemExit("the load generator ended without its figures") from None
            server_cpu, wall = time.process_time() - cpu0, time.monotonic() - t0
            if profile:
                on_loop(served, profile.disable)
                profile.dump_stats(os.environ["BENCH_PROFILE"])
        finally:
            proc.join(10)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
            mine.close()
    api_log.removeHandler(times)
    if "error" in load:
        raise SystemExit(f"load generator: {load['error']}")
    return {"upgrade": up, "load": load, "server": times, "loadAverage": load_average, "serverCpu": server_cpu,
            "serverWall": wall}


def quiet_run(tmp: Path, args: argparse.Namespace, boot: float) -> dict:
    with served_lab(tmp, args.instances, boot) as served:
        return {"upgrade": upgrade(served)}


def lead(seconds: float) -> float:
    """Seconds of load before the upgrade starts."""
    return min(1.0, 0.1 * seconds)


def boot_seconds(seconds: float, instances: int) -> float:
    """Each fake boot's sleep: the upgrade's boots fill 40 % of the load's time (the load stretches
    the rest: the upgrade should still end before the load does)."""
    batches = math.ceil(instances / max(1, instances * BATCH_PERCENT // 100))
    return max(0.02, (0.4 * seconds - lead(seconds)) / batches)


# -- the figures ---------------------------------------------------------------------------------
def pct(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) of values, 0 if none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)], 2)


def figures(loaded: dict, quiet: dict, args: argparse.Namespace, boot: float) -> dict:
    load, up = loaded["load"], loaded["upgrade"]
    samples, span = load["samples"], load["end"] - load["start"]
    routes = {}
    for index, name in enumerate(ROUTES):
        mine = [s for s in samples if s[0] == index]
        ms = [1000 * s[2] for s in mine]
        during = [1000 * s[2] for s in mine if up["started"] <= s[1] <= up["ended"]]
        server = loaded["server"].ms[name]
        routes[name] = {"requests": len(mine), "errors": sum(s[3] != 200 for s in mine),
                        "p50Ms": pct(ms, 50), "p90Ms": pct(ms, 90), "p99Ms": pct(ms, 99), "maxMs": pct(ms, 100),
                        "p99DuringUpgradeMs": pct(during, 99), "serverP50Ms": pct(server, 50),
                        "serverP99Ms": pct(server, 99)}
    return {
        "cores": os.cpu_count(), "loadAverageBefore": round(loaded["loadAverage"], 2), "clients": args.clients,
        "seconds": round(span, 2), "instances": args.instances, "bootSeconds": round(boot, 3),
        "requests": len(samples), "requestsPerSecond": round(len(samples) / span, 1) if span > 0 else 0.0,
        "errors": sum(s[3] != 200 for s in samples), "routes": routes,
        "loadGeneratorCpuPercent": round(100 * load["cpu"] / span, 1) if span > 0 else 0.0,
        "serverProcessCpuPercent": round(100 * loaded["serverCpu"] / loaded["serverWall"], 1),
        "serverLogErrors": loaded["server"].errors,
        "upgradeWindowInLoadSeconds": [round(up["started"] - load["start"], 2), round(up["ended"] - load["start"], 2)],
        "upgradeWithinLoad": load["start"] <= up["started"] and up["ended"] <= load["start"] + args.seconds,
        "upgradeWithLoad": _up(up), "upgradeWithoutLoad": _up(quiet["upgrade"]),
    }


def _up(up: dict) -> dict:
    return {k: v for k, v in up.items() if k not in ("started", "ended")}


def lines(f: dict) -> list[str]:
    out = [(f"machine: {f['cores']} cores, load average {f['loadAverageBefore']:.2f} before the run "
            "(other processes on the machine skew every figure)"),
           (f"load: {f['clients']} clients, {f['seconds']:.1f} s, {f['requests']} requests, "
            f"{f['requestsPerSecond']:.1f} requests/s, {f['errors']} errors (non-200)")]
    for name, r in f["routes"].items():
        out.append(f"{name}: {r['requests']} requests, {r['errors']} errors, p50 {r['p50Ms']:.1f} ms, "
                   f"p90 {r['p90Ms']:.1f} ms, p99 {r['p99Ms']:.1f} ms, max {r['maxMs']:.1f} ms "
                   f"(p99 during the upgrade {r['p99DuringUpgradeMs']:.1f} ms; in the server's handler "
                   f"p50 {r['serverP50Ms']:.1f} ms, p99 {r['serverP99Ms']:.1f} ms)")
    out.append(f"CPU: server process {f['serverProcessCpuPercent']:.0f} % of a core, load generator "
               f"{f['loadGeneratorCpuPercent']:.0f} % of a core")
    for key, label in (("upgradeWithLoad", "with load"), ("upgradeWithoutLoad", "without load")):
        u, o = f[key], f[key]["overhead"]
        per = u["controllerCpuPerBatchMs"]
        out.append(f"upgrade {label}: {u['status']}, wall {o['wallSeconds']:.2f} s, overhead "
                   f"{o['overheadSeconds']:.3f} s ({o['overheadPercent']:.2f} %), controller CPU "
                   f"{u['controllerCpuMs']:.0f} ms (per batch median {statistics.median(per) if per else 0:.1f} ms, "
                   f"max {max(per, default=0):.1f} ms), process CPU {u['processCpuMs']:.0f} ms")
    if not f["upgradeWithinLoad"]:
        start, end = f["upgradeWindowInLoadSeconds"]
        out.append(f"note: the upgrade ran from {start:.1f} s to {end:.1f} s of the load, not wholly within it; "
                   "give --seconds more")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--instances", type=int, default=100, help="the VM list GET reads the first page (100)")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON document")
    args = ap.parse_args()
    if not (1 <= args.clients <= 1000 and 1 <= args.instances <= 10_000 and 1 <= args.seconds <= 3600):
        ap.error("--clients 1..1000, --instances 1..10000, --seconds 1..3600")
    service.Orchestrator = MeteredOrchestrator  # the controller drives its upgrades with the metered one
    boot = boot_seconds(args.seconds, args.instances)
    tmp = Path(tempfile.mkdtemp(prefix="scaleset-api-load-"))
    try:
        loaded = loaded_run(tmp / "loaded", args, boot)
        quiet = quiet_run(tmp / "quiet", args, boot)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    f = figures(loaded, quiet, args, boot)
    print(json.dumps(f, indent=2) if args.json else "\n".join(lines(f)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
