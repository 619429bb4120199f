"""Benchmark: OS-disk swap time and reimage-to-ready time of one instance (TCG here).

    sudo .venv/bin/python bench/reimage_time.py [--runs 3] [--home DIR] [--urn P:O:S:V]

Creates a one-instance scale set in a lab home (a temporary one by default; builds the image
if the gallery lacks it), then reimages it --runs times, printing per run: the new OS disk
and seed written (overlay: no copy), the domain switched to them (power off, redefine,
start), and the boot to "cloud-init done" read over SSH.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--home", help="lab home (default: a temporary one)")
    ap.add_argument("--urn", default="scaleset-lab:debian:debian-12:1.0.0")
    args = ap.parse_args()
    os.environ["SCALESET_HOME"] = args.home or tempfile.mkdtemp(prefix="scaleset-bench-")
    os.environ.setdefault("SCALESET_CACHE", str(Path(__file__).resolve().parent.parent / ".cache" / "images"))
    from controller.core.errors import ImageError
    from controller.ops import commands as ops
    from controller.ops.lab import Lab
    from controller.ops.provision import (
        apply_booted,
        switch,
        target_of,
        wait_booted,
        write_disks,
    )
    from controller.state.journal import settle_new
    from images.builder import build

    p, o, s, v = args.urn.split(":")
    lab = Lab.open()
    try:
        lab.gallery.get(p, o, s, v)
    except ImageError:
        print(f"building {args.urn} ...", flush=True)
        build(lab.gallery, p, o, s, v, log=lambda _m: None)
    t0 = time.monotonic()
    ops.create(lab, {"name": "bench", "sku": {"capacity": 1}, "properties": {"virtualMachineProfile": {
        "storageProfile": {"imageReference": {"publisher": p, "offer": o, "sku": s, "version": v}},
        "osProfile": {"computerNamePrefix": "bench"}}}})
    print(f"created and ready in {time.monotonic() - t0:.1f} s", flush=True)
    rows = []
    try:
        for run in range(1, args.runs + 1):
            ss, inst = lab.models.get("bench"), lab.instances.get("bench", 0)
            image = lab.image(inst.image)
            new = target_of(lab, ss, inst, False, None)
            swap = lab.journal.begin(inst, "reimage", new)
            t0 = time.monotonic()
            write_disks(lab, new, image)
            t1 = time.monotonic()
            started = switch(lab, new)
            t2 = time.monotonic()
            apply_booted(new, wait_booted(lab, new, started))
            t3 = time.monotonic()
            settle_new(lab.db, lab.journal, swap, new)
            rows.append((t1 - t0, t2 - t1, t3 - t2, t3 - t0))
            print(f"run {run}: new OS disk + seed {1000 * (t1 - t0):.0f} ms, domain switch {t2 - t1:.2f} s, "
                  f"boot to cloud-init done {t3 - t2:.1f} s, reimage to ready {t3 - t0:.1f} s "
                  f"({new.provisioning_state})", flush=True)
    finally:
        ops.delete(lab, "bench")
        lab.close()
    med = [statistics.median(c) for c in zip(*rows, strict=True)]
    print(f"median: OS-disk swap {1000 * med[0]:.0f} ms + switch {med[1]:.2f} s; reimage to ready {med[3]:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
