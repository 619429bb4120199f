"""Benchmark: controller overhead of a real rolling upgrade (TCG here).

    sudo .venv/bin/python bench/upgrade_overhead.py [--instances 3] [--home DIR]

Creates a scale set on version A of the recipe's image, publishes version B, runs a manual
rolling upgrade (batches of one at the default 20 %), and prints, per batch, the wall time
and the slowest instance's swap + boot + health time, then the overhead: the wall time of
the upgrade minus the per-batch slowest instance times (target: at most 5 %).
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=3)
    ap.add_argument("--home", help="lab home (default: a temporary one)")
    args = ap.parse_args()
    os.environ["SCALESET_HOME"] = args.home or tempfile.mkdtemp(prefix="scaleset-bench-")
    os.environ.setdefault("SCALESET_CACHE", str(Path(__file__).resolve().parent.parent / ".cache" / "images"))
    from controller.core.errors import ImageError
    from controller.ops import commands as ops
    from controller.ops.lab import Lab
    from controller.ops.rolling import Orchestrator, start_upgrade
    from controller.ops.rolling_driver import LibvirtDriver
    from controller.ops.upgrade_views import latest_view
    from images.builder import build

    p, o, s = "scaleset-lab", "debian", "debian-12"
    lab = Lab.open()
    existing = [iv.version for iv in lab.gallery.list(p, o, s)]
    for v in ("1.0.0", "1.0.1"):
        if v not in existing:
            try:
                build(lab.gallery, p, o, s, v, log=lambda _m: None)
            except ImageError as exc:
                print(f"cannot build {v}: {exc}")
                return 1
    ops.create(lab, {"name": "overhead", "sku": {"capacity": args.instances}, "properties": {
        "virtualMachineProfile": {
            "storageProfile": {"imageReference": {"publisher": p, "offer": o, "sku": s, "version": "1.0.0"}},
            "osProfile": {"computerNamePrefix": "ovh"}}}})
    ops.update_model(lab, "overhead", ["properties.virtualMachineProfile.storageProfile.imageReference.version=1.0.1"])
    try:
        up = start_upgrade(lab, lab.models.get("overhead"), "User")
        asyncio.run(Orchestrator(lab, LibvirtDriver(lab), on_event=print).run(up))
        view = latest_view(lab, up)
        for b in view["lab"]["batches"]:
            print(f"batch {b['batch']}: wall {b['wall']:.1f} s, slowest instance {b['slowest']:.1f} s")
        print(json.dumps(view["lab"]["overhead"]))
        return 0 if up.status == "Completed" else 1
    finally:
        ops.delete(lab, "overhead")
        lab.close()


if __name__ == "__main__":
    sys.exit(main())
