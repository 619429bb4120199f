"""Benchmark: replication throughput of a ~500 MB qcow2 to a second libvirt host, against `cp`.

    sudo .venv/bin/python bench/replication.py [--runs 3] [--mb 500] [--src FILE.qcow2] [--uri URI --pool NAME]

The second host is a libvirtd of its own listening on 127.0.0.1 (tests/secondhost.py) unless
--uri names one (with --pool). The image is a fresh qcow2 of --mb MB of random data (no holes,
incompressible) unless --src names one. Per run (after a `sync`, so no run pays for the last
one's dirty pages) it prints, in MB/s: `cp` of the file on this machine then `sync` (the limit:
the same disk, no network, no libvirt), `replicate`'s upload over virStorageVolUpload then
`sync`, its far-side sha256 read back over virStorageVolDownload, and `replicate` in all (upload
and verify, without the sync). `sha256` of the local file is the hashing limit.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from controller.virt.hypervisor import Hypervisor
from controller.virt.replica import replicate
from controller.virt.storage import ensure_pool
from images.qcow2 import sha256_file
from tests.secondhost import running_host


def make_image(path: Path, mb: int) -> Path:
    raw = path.with_suffix(".raw")
    with raw.open("wb") as f:
        for _ in range(mb):
            f.write(os.urandom(1_000_000))
    subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(path)], check=True)
    raw.unlink()
    return path


def timed(fn) -> float:
    t0 = time.monotonic()
    fn()
    return time.monotonic() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--mb", type=int, default=500, help="MB of random data in the made image")
    ap.add_argument("--src", type=Path, help="a qcow2 to send instead of a made one")
    ap.add_argument("--uri", help="a libvirt host to send to (default: a second libvirtd on 127.0.0.1)")
    ap.add_argument("--pool", default="scaleset")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="scaleset-bench-repl-"))
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, work, True)
        src = args.src or make_image(work / "image.qcow2", args.mb)
        size, digest = src.stat().st_size, sha256_file(src)
        uri = args.uri or stack.enter_context(running_host(work / "ns")).uri
        pool = ensure_pool(Hypervisor(uri), args.pool)
        stack.callback(pool.delete, "bench.qcow2")
        print(f"# {src.name}: {size / 1e6:.0f} MB, to {uri} pool {args.pool}", flush=True)
        local_hash = timed(lambda: sha256_file(src))
        print(f"# local sha256: {size / 1e6 / local_hash:.0f} MB/s", flush=True)
        rows = []
        for i in range(args.runs):
            pool.delete("bench.qcow2")
            os.sync()
            cp = timed(lambda: (subprocess.run(["cp", str(src), str(work / "copy.qcow2")], check=True), os.sync()))
            (work / "copy.qcow2").unlink()
            os.sync()
            rep = replicate(pool, "bench.qcow2", src, digest)
            if rep.state != "Completed":
                print(f"replication failed: {rep.details}", file=sys.stderr)
                return 1
            flush = timed(os.sync)  # the far side's dirty pages (verifying only reads)
            mb = size / 1e6
            row = {"run": i + 1, "cp_mb_s": mb / cp, "upload_mb_s": mb / (rep.upload_seconds + flush),
                   "verify_mb_s": mb / (rep.seconds - rep.upload_seconds), "replicate_mb_s": mb / rep.seconds}
            rows.append(row)
            print(json.dumps({k: round(v, 1) for k, v in row.items()}), flush=True)
        for key in ("cp_mb_s", "upload_mb_s", "verify_mb_s", "replicate_mb_s"):
            vals = [r[key] for r in rows]
            print(f"{key}: median {statistics.median(vals):.0f} MB/s, min {min(vals):.0f}, max {max(vals):.0f}")
        up = statistics.median(r["upload_mb_s"] for r in rows) / statistics.median(r["cp_mb_s"] for r in rows)
        print(f"upload / cp: {up:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
