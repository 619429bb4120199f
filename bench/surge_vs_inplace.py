"""Benchmark: the same 3-guest rolling upgrade in place and with MaxSurge (TCG here).

    sudo .venv/bin/python bench/surge_vs_inplace.py [--instances 3] [--home DIR]

Creates a scale set with the sample app and the health extension on version A, upgrades it in
place to B, then with MaxSurge back to A, a watcher counting every second the healthy running
instances (libvirt's domain list and the health agents). Prints, per mode: wall time, the
fewest healthy instances seen, and the controller overhead from get-latest.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

P, O, S = "scaleset-lab", "debian", "debian-12"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=3)
    ap.add_argument("--home", help="lab home (default: a temporary one)")
    args = ap.parse_args()
    os.environ["SCALESET_HOME"] = args.home or tempfile.mkdtemp(prefix="scaleset-bench-")
    os.environ.setdefault("SCALESET_CACHE", str(Path(__file__).resolve().parent.parent / ".cache" / "images"))
    from controller.ops import commands as ops
    from controller.ops.lab import Lab
    from controller.ops.rolling import Orchestrator, start_upgrade
    from controller.ops.rolling_driver import LibvirtDriver
    from controller.ops.upgrade_views import latest_view
    from images.builder import build
    from tests.capacity import CapacityWatch, wait_healthy
    from tests.vmfixtures import app_model

    lab = Lab.open()
    existing = [iv.version for iv in lab.gallery.list(P, O, S)]
    for v in ("1.0.0", "1.0.1"):
        if v not in existing:
            build(lab.gallery, P, O, S, v, log=lambda _m: None)
    name, ok = "surgebench", True
    ops.create(lab, app_model(name, args.instances, "sb", "1.0.0", {"mode": "Rolling"}, {"healthWaitTimeout": "PT5M"}))
    try:
        for mode, version, surge in (("in place", "1.0.1", "false"), ("MaxSurge", "1.0.0", "true")):
            ops.update_model(lab, name, [f"properties.virtualMachineProfile.storageProfile.imageReference.version={version}",
                                         f"properties.upgradePolicy.rollingUpgradePolicy.maxSurge={surge}"])
            wait_healthy(lab, name)
            watch = CapacityWatch(name)
            watch.start()
            up = start_upgrade(lab, lab.models.get(name), "User")
            up = asyncio.run(Orchestrator(lab, LibvirtDriver(lab)).run(up))
            watch.stop()
            over = latest_view(lab, up)["lab"]["overhead"]
            ok = ok and up.status == "Completed"
            print(f"{mode}: {up.status}, wall {over['wallSeconds']:.1f} s, fewest healthy {watch.low} of "
                  f"{args.instances} ({len(watch.samples)} samples, widest gap {watch.widest_gap:.1f} s), "
                  f"overhead {over['overheadSeconds']:.1f} s ({over['overheadPercent']} %)")
            print("  batches:", json.dumps([{k: b[k] for k in ("batch", "wall", "slowest", "mode")}
                                            for b in up.batch_times]))
    finally:
        ops.delete(lab, name)
        lab.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
