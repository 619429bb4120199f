"""Concurrent model changes from real processes: no write is lost, none fails.

Two processes each run 50 `scaleset update --set` (the CLI's main(), in a loop, in-process)
at the same time, each on fields of its own. Every field is written exactly once, so a lost
update (a write based on a model read before the other process's write) would leave one of
them at its old value for good.
"""
import copy
import multiprocessing
import os
import sys
import time

from controller.state.db import connect
from controller.state.scalesets import ScaleSetStore
from images.gallery import Gallery
from tests.test_model import BASE

DISKS = "properties.virtualMachineProfile.storageProfile.dataDisks"
PER_PROCESS = 25  # data disks each process owns; two fields each: 50 updates per process


def writer(first: int, barrier) -> None:
    """50 updates: size then caching of data disks first..first+24 (stdout, the model, dropped)."""
    from controller.cli.main import main
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the life of this process
    barrier.wait()
    failed = 0
    for k in range(first, first + PER_PROCESS):
        for assignment in (f"{DISKS}[{k}].diskSizeGB=2", f"{DISKS}[{k}].caching=ReadOnly"):
            failed += main(["update", "-n", "web", "--set", assignment]) != 0
    sys.exit(min(failed, 100))


def test_two_processes_updating_different_fields_lose_no_change(lab, qcow2_file, monkeypatch):
    monkeypatch.setenv("SCALESET_LIBVIRT_URI", "test:///default")
    doc = copy.deepcopy(BASE)
    doc["sku"]["capacity"] = 0
    doc["properties"]["virtualMachineProfile"]["storageProfile"]["dataDisks"] = [
        {"lun": k, "diskSizeGB": 1} for k in range(2 * PER_PROCESS)]
    db = connect(lab.db)
    Gallery(lab, db).import_file("scaleset-lab", "debian", "debian-12", "1.0.0", qcow2_file)
    store = ScaleSetStore(db)
    store.create(doc)
    ctx = multiprocessing.get_context("spawn")  # fresh interpreters: real, separate processes
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=writer, args=(first, barrier)) for first in (0, PER_PROCESS)]
    t0 = time.monotonic()
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]  # every update exited 0
    disks = store.get("web").properties.virtualMachineProfile.storageProfile.dataDisks
    assert [(d.lun, d.diskSizeGB, d.caching) for d in disks if (d.diskSizeGB, d.caching) != (2, "ReadOnly")] == []
    assert store.generation("web") == 1 + 4 * PER_PROCESS  # one generation per change: none written twice
    assert time.monotonic() - t0 < 30
