"""Benchmark: controller CPU per batch of a rolling upgrade of 1,000 instances.

    .venv/bin/python bench/upgrade_scale.py [--instances 1000] [--batch-percent 20 5] [--runs 3]

The VM work is an in-process fake (tests/fakedriver.py: disks are small files, health is
scripted, its own CPU is counted apart); the database, the journal, the planning and the
orchestrator are the real ones. A batch's controller CPU is the process CPU from its start
to the next batch's start (health check over the whole set, planning, journal, records,
settling, old disks deleted), minus the fake's. Each run upgrades a fresh set.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from controller.core.settings import LabPaths  # noqa: E402
from controller.ops.lab import Lab  # noqa: E402
from controller.ops.rolling import Orchestrator, start_upgrade  # noqa: E402
from controller.ops.service import settle_heap  # noqa: E402
from controller.state.upgrades import UpgradeStore  # noqa: E402
from controller.virt.accel import Accel  # noqa: E402
from tests.fakedriver import FakeDriver, make_scale_set  # noqa: E402
from tests.helpers import make_qcow2  # noqa: E402

P, O, S = "scaleset-lab", "debian", "debian-12"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=1000)
    ap.add_argument("--batch-percent", type=int, nargs="+", default=[20, 5])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    for pct in args.batch_percent:
        runs = [upgrade(args.instances, pct) for _ in range(args.runs)]
        planning = [p for p, _ in runs]
        per_batch = [ms for _, batches in runs for ms in batches]
        size = max(1, args.instances * pct // 100)
        print(f"batches of {size} ({pct} %), {len(per_batch)} batches in {args.runs} runs: controller CPU per "
              f"batch median {statistics.median(per_batch):.1f} ms, max {max(per_batch):.1f} ms "
              f"({1000 * statistics.median(per_batch) / size:.0f} us per instance); planning, once per "
              f"upgrade: median {statistics.median(planning):.1f} ms")
    return 0


def upgrade(instances: int, batch_percent: int) -> tuple[float, list[float]]:
    """Controller CPU (ms) of the planning and of each batch of one whole upgrade of a fresh set."""
    tmp = Path(tempfile.mkdtemp(prefix="scaleset-scale-"))
    os.environ["SCALESET_PORTS_DIR"] = str(tmp)
    lab = Lab(LabPaths(tmp / "lab").ensure(), "test:///default", Accel("tcg", "benchmark"))
    disk = make_qcow2(tmp / "disk.qcow2", data=b"x" * 4096)
    lab.gallery.import_file(P, O, S, "1.0.0", disk)
    driver = FakeDriver()
    make_scale_set(lab, {
        "name": "big", "sku": {"capacity": instances},
        "properties": {
            "upgradePolicy": {"mode": "Automatic",
                              "rollingUpgradePolicy": {"maxBatchInstancePercent": batch_percent,
                                                       "maxUnhealthyInstancePercent": max(20, batch_percent)},
                              "automaticOSUpgradePolicy": {"enableAutomaticOSUpgrade": True}},
            "labSettings": {"healthWaitTimeout": "PT0S"},
            "virtualMachineProfile": {
                "storageProfile": {"imageReference": {"publisher": P, "offer": O, "sku": S, "version": "latest"},
                                   "dataDisks": [{"lun": 0, "diskSizeGB": 1}]},
                "osProfile": {"computerNamePrefix": "big"},
                "extensionProfile": {"extensions": [{"name": "health", "properties": {
                    "publisher": "Microsoft.ManagedServices", "type": "ApplicationHealthLinux",
                    "settings": {"protocol": "http", "port": 8080}}}]}}}}, driver, "1.0.0")
    lab.gallery.import_file(P, O, S, "2.0.0", disk)
    up = start_upgrade(lab, lab.models.get("big"), "Platform")
    settle_heap()  # as `scaleset controller` does at start; the set-up's objects are another process's
    marks: list[tuple[float, float]] = []  # (process CPU, the fake's CPU) at each batch's start

    def mark(msg: str) -> None:
        if msg.startswith("batch ") or msg.startswith("upgrade "):
            marks.append((time.process_time(), driver.cpu))

    orchestrator = Orchestrator(lab, driver, poll_interval=0, on_event=mark)
    marks.append((time.process_time(), driver.cpu))
    if os.environ.get("BENCH_PROFILE"):
        import cProfile
        cProfile.runctx("asyncio.run(orchestrator.run(up))", globals(), locals(), sort="tottime")
    else:
        asyncio.run(orchestrator.run(up))
    up = UpgradeStore(lab.db).get(up.id)
    assert up.status == "Completed", up.status
    # marks: the run's start, then each batch's "batch N" event (said once the batch is journalled),
    # then the end. The first interval is the planning (the whole set listed, the model, the image
    # checked, batch 1 chosen and journalled); each later one drives a batch to its end, then
    # chooses and journals the next (health over the whole set, pending instances).
    cpu = [1000 * ((c1 - c0) - (f1 - f0)) for (c0, f0), (c1, f1) in zip(marks, marks[1:], strict=False)]
    shutil.rmtree(tmp, ignore_errors=True)
    return cpu[0], cpu[1:]


if __name__ == "__main__":
    sys.exit(main())
