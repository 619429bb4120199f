"""Benchmark: the controller's CPU per rolling-upgrade batch, instances on one host vs two.

    sudo .venv/bin/python bench/hosts_cpu.py [--count 2]

In a lab of its own (images 1.0.0 and 1.1.0 built, the package set cached in .cache/images),
a set of --count guests in `local` (this machine's libvirtd) and one in region `two` (this
machine's and a second libvirtd on 127.0.0.1, tests/secondhost.py; fault domain = host). Each
is upgraded to 1.1.0 in batches of one by the orchestrator in this process. Prints this
process's CPU seconds per batch (tests/vmfixtures.py BatchCpu: swap, boot wait, health gate,
settle) and each batch's wall time.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=2, help="instances per set")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="scaleset-bench-hosts-"))
    os.environ.update(SCALESET_HOME=str(work / "home"), SCALESET_PORTS_DIR=str(work / "home"))
    os.environ.setdefault("SCALESET_CACHE", str(REPO / ".cache" / "images"))

    from controller.core.settings import LabPaths
    from controller.model.region import Host, Region
    from controller.ops import commands as ops
    from controller.ops import replication
    from controller.ops.lab import Lab
    from images.builder import build
    from tests.secondhost import running_host
    from tests.vmfixtures import BatchCpu, O, P, S, app_model, forget_pool, upgrade

    paths = LabPaths(work / "home").ensure()
    policy = {"mode": "Manual", "rollingUpgradePolicy": {"maxBatchInstancePercent": max(5, 100 // args.count),
                                                         "maxUnhealthyInstancePercent": 100}}
    sets = {"one": "local", "two": "two"}
    with running_host(work / "ns") as far:
        lab = Lab.open()
        try:
            lab.regions.add(Region("two", (lab.local, Host(far.uri, far.pool))))
            versions = []
            for version, script in (("1.0.0", None), ("1.1.0", "echo 'version two' > /etc/scaleset-demo\n")):
                customize = []
                if script:
                    (work / "v.sh").write_text(script)
                    customize = [work / "v.sh"]
                iv = build(lab.gallery, P, O, S, version, customize=customize, target_regions=["local", "two"],
                           log=lambda _m: None)
                versions.append(iv)
                assert all(r.state == "Completed" for r in replication.replicate_version(lab, iv))
                if version == "1.0.0":
                    for name, where in sets.items():
                        ops.create(lab, {**app_model(name, args.count, name, "latest", policy, {}),
                                         "location": where})
            for name in sets:
                rec, t0 = BatchCpu(), time.monotonic()
                up = upgrade(lab, name, rec)
                assert up.status == "Completed", up.error_message
                cpu = rec.per_batch()
                walls = [b["wall"] for b in up.batch_times]
                hosts = ["this" if i.host_uri in (None, lab.uri) else "second" for i in lab.instances.list(name)]
                print(f"{name} host(s): CPU per batch {cpu} s (median {statistics.median(cpu):.3f}), "
                      f"wall per batch {walls} s, instances on {hosts}, upgrade {time.monotonic() - t0:.0f} s")
        finally:
            for name in sets:
                try:
                    ops.delete(lab, name)
                except Exception as exc:  # noqa: BLE001 - not made: say so, go on cleaning
                    print(f"delete {name}: {exc}")
            for iv in lab.gallery.list():
                replication.delete_version(lab, iv)
            lab.close()
            forget_pool(paths.home)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
