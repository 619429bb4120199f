"""Benchmark: seconds from domain start to "cloud-init done, port open" for the recipe's image.

    sudo .venv/bin/python bench/boot_time.py [--runs N] [--vcpus N] [--urn P:O:S:V]

Prints, per run: when the console showed cloud-init's final message (host-side, no guest
CPU spent on polling), when SSH (port 22 through the 127.0.0.1 forward) answered, and when
`cloud-init status --wait` returned over SSH. Builds the image first if the gallery lacks it.
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

from controller.virt import accel  # noqa: E402
from controller.core.settings import LabPaths, libvirt_uri  # noqa: E402
from controller.virt.readiness import Guest  # noqa: E402
from controller.virt.hypervisor import Hypervisor  # noqa: E402
from images.builder import build  # noqa: E402
from controller.core.errors import ImageError  # noqa: E402
from controller.state.db import connect  # noqa: E402
from images.gallery import Gallery  # noqa: E402


def running_guests(hv: Hypervisor) -> set[str]:
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
    home = Path(args.home or tempfile.mkdtemp(prefix="scaleset-bench-"))
    os.environ["SCALESET_HOME"] = str(home)
    os.environ.setdefault("SCALESET_CACHE", str(Path(__file__).resolve().parent.parent / ".cache" / "images"))
    paths = LabPaths(home).ensure()
    gallery = Gallery(paths, connect(paths.db))
    p, o, s, v = args.urn.split(":")
    try:
        iv = gallery.get(p, o, s, v)
    except ImageError:
        iv = build(gallery, p, o, s, v, log=lambda m: print(f"# {m}", file=sys.stderr))
    a = accel.detect()
    print(f"# accel={a.kind} ({a.reason}) vcpus={args.vcpus} memory={args.memory_mib}MiB image={iv.urn}")
    hv = Hypervisor(libvirt_uri())
    rows = []
    for i in range(args.runs):
        guest = Guest(paths, hv, f"bench-boot-{os.getpid()}")
        try:
            # Other guests share the host's cores under TCG: name those running at start and end.
            others = running_guests(hv)
            guest.create(iv, vcpus=args.vcpus, memory_mib=args.memory_mib, accel=a)
            r = guest.wait_ready(timeout=600)
            others |= running_guests(hv) - {guest.name}
            rows.append(r.timings)
            print(json.dumps({"run": i + 1, **{k: round(t, 1) for k, t in r.timings.items() if t is not None},
                              "status": r.cloud_init_status, "otherGuests": sorted(others)}), flush=True)
        finally:
            guest.delete()
    for key in ("consoleCloudInitFinished", "ssh", "cloudInitDone"):
        vals = [r[key] for r in rows if r.get(key) is not None]
        if vals:
            print(f"{key}: median {statistics.median(vals):.1f} s, min {min(vals):.1f} s, max {max(vals):.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
