"""Benchmark: controller CPU of a rolling upgrade of 1,000 instances, per batch and per instance.

    .venv/bin/python bench/upgrade_scale.py [--instances 1000] [--batch-percent 20 5]

The VM work is an in-process fake (tests/fakedriver.py: disks are small files, health is
scripted); the database, the journal, the planning and the orchestrator are the real ones.
Each batch size runs a whole upgrade of a fresh set; with two sizes the CPU is split into a
fixed part per batch (health check over the whole set, planning, bookkeeping) and a part
per upgraded instance (journal, records, settling), from the first two runs.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from controller.accel import Accel  # noqa: E402
from controller.config import LabPaths  # noqa: E402
from controller.lab import Lab  # noqa: E402
from controller.rolling import Orchestrator, start_upgrade  # noqa: E402
from controller.upgrade_store import UpgradeStore  # noqa: E402
from tests.fakedriver import FakeDriver, make_scale_set  # noqa: E402
from tests.helpers import make_qcow2  # noqa: E402

P, O, S = "scaleset-lab", "debian", "debian-12"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=1000)
    ap.add_argument("--batch-percent", type=int, nargs="+", default=[20, 5])
    args = ap.parse_args()
    n = args.instances
    runs = [(pct, *upgrade(n, pct)) for pct in args.batch_percent]
    if len(runs) >= 2:
        (pct, b1, c1), (_, b2, c2) = runs[0], runs[1]
        per_batch = (c1 - c2) / (b1 - b2) if b1 != b2 else 0.0
        per_instance = (c1 - per_batch * b1) / n
        print(f"fixed controller CPU per batch: {1000 * per_batch:.1f} ms; per upgraded instance: "
              f"{1e6 * per_instance:.0f} us (a batch of {n * pct // 100} costs "
              f"{1000 * (per_batch + per_instance * n * pct / 100):.0f} ms in all)")
    return 0


def upgrade(instances: int, batch_percent: int) -> tuple[int, float]:
    """(batches, controller CPU seconds) of one whole upgrade of a fresh scale set."""
    tmp = Path(tempfile.mkdtemp(prefix="scaleset-scale-"))
    os.environ["SCALESET_PORTS_DIR"] = str(tmp)
    lab = Lab(LabPaths(tmp / "lab").ensure(), "test:///default", Accel("tcg", "benchmark"))
    disk = make_qcow2(tmp / "disk.qcow2", data=b"x" * 4096)
    lab.gallery.import_file(P, O, S, "1.0.0", disk)
    driver = FakeDriver()
    t0 = time.monotonic()
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
    print(f"set-up: {instances} instances in {time.monotonic() - t0:.1f} s")
    lab.gallery.import_file(P, O, S, "2.0.0", disk)
    up = start_upgrade(lab, lab.models.get("big"), "Platform")
    cpu0, wall0 = time.process_time(), time.monotonic()
    if os.environ.get("BENCH_PROFILE"):
        import cProfile
        cProfile.runctx("asyncio.run(Orchestrator(lab, driver, poll_interval=0).run(up))", globals(), locals(),
                        sort="tottime")
    else:
        asyncio.run(Orchestrator(lab, driver, poll_interval=0).run(up))
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    up = UpgradeStore(lab.db).get(up.id)
    batches = up.batches_done
    print(f"upgrade {up.status}: {instances} instances in {batches} batches of "
          f"{instances * batch_percent // 100}")
    ctl = cpu - driver.cpu  # minus the fake's own disk-file writes (the VM side's work)
    print(f"process CPU {cpu:.3f} s, of which the fake VM side {driver.cpu:.3f} s (wall {wall:.2f} s)")
    print(f"controller CPU: {ctl:.3f} s in all, {1000 * ctl / batches:.1f} ms per batch, "
          f"{1e6 * ctl / instances:.0f} us per instance")
    assert up.status == "Completed", up.status
    return batches, ctl


if __name__ == "__main__":
    sys.exit(main())
