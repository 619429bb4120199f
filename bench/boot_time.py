"""Benchmark: seconds from domain start to "cloud-init done, port open" for the recipe's image.

    sudo .venv/bin/python bench/boot_time.py [--runs N] [--vcpus N] [--urn P:O:S:V]

Boots an instance the way every instance boots (ops/provision.py: disks, seed, domain, the
wait chain) in a scale set with no other instances, then removes it; per run it prints when
the console showed cloud-init's final message (host-side, no guest CPU spent on polling),
when SSH (port 22 through the 127.0.0.1 forward) answered, and when cloud-init's result was
read over SSH. Builds the image first if the gallery lacks it.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def running_guests(hv) -> set[str]:
    names = set()
    for d in hv.domains():
        try:
            if d.state() == "running":
                names.add(d.name)
        except Exception:  # noqa: BLE001 - undefined meanwhile by its owner
            pass
    return names


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--vcpus", type=int, default=2)
    ap.add_argument("--memory-mib", type=int, default=512)
    ap.add_argument("--urn", default="scaleset-lab:debian:debian-12:1.0.0")
    ap.add_argument("--home", help="lab home (default: a temporary one)")
    args = ap.parse_args()
    os.environ["SCALESET_HOME"] = args.home or tempfile.mkdtemp(prefix="scaleset-bench-")
    os.environ.setdefault("SCALESET_CACHE", str(Path(__file__).resolve().parent.parent / ".cache" / "images"))
    from controller.core.errors import ImageError
    from controller.ops import commands as ops
    from controller.ops.lab import Lab
    from controller.ops.provision import (
        plan_instance,
        remove_instance,
        switch,
        wait_booted,
        write_disks,
    )
    from images.builder import build

    p, o, s, v = args.urn.split(":")
    lab = Lab.open()
    try:
        iv = lab.gallery.get(p, o, s, v)
    except ImageError:
        iv = build(lab.gallery, p, o, s, v, log=lambda m: print(f"# {m}", file=sys.stderr))
    print(f"# accel={lab.accel.kind} ({lab.accel.reason}) vcpus={args.vcpus} memory={args.memory_mib}MiB "
          f"image={iv.urn}")
    ss = ops.create(lab, {"name": "bootbench", "sku": {"capacity": 0}, "properties": {
        "virtualMachineProfile": {"storageProfile": {"imageReference": {"publisher": p, "offer": o, "sku": s,
                                                                        "version": v}},
                                  "osProfile": {"computerNamePrefix": "boot"}},
        "labSettings": {"vcpus": args.vcpus, "memoryMiB": args.memory_mib}}})
    rows = []
    try:
        for i in range(args.runs):
            inst = plan_instance(lab, ss, 0, iv)
            lab.instances.insert(inst)
            try:
                others = running_guests(lab.hv)  # other guests share the host's cores under TCG
                write_disks(lab, inst, iv)
                booted = wait_booted(lab, inst, switch(lab, inst))
                r = booted.readiness
                others |= running_guests(lab.hv) - {inst.domain}
            finally:
                remove_instance(lab, inst)
            rows.append(r.timings)
            print(json.dumps({"run": i + 1, **{k: round(t, 1) for k, t in r.timings.items() if t is not None},
                              "status": r.cloud_init_status, "otherGuests": sorted(others)}), flush=True)
    finally:
        ops.delete(lab, ss.name)
        lab.close()
    for key in ("consoleCloudInitFinished", "ssh", "cloudInitDone"):
        vals = [r[key] for r in rows if r.get(key) is not None]
        if vals:
            print(f"{key}: median {statistics.median(vals):.1f} s, min {min(vals):.1f} s, max {max(vals):.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
