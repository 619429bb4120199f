"""Replication in the CLI: `scaleset image replicate`, and what build, import, update and delete
of a version do to its replicas on the hosts of its target regions."""
from __future__ import annotations

import sys

from controller.ops import replication
from controller.ops.lab import Lab
from controller.virt.replica import Replica
from images.gallery import ImageVersion


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def report(iv: ImageVersion, reps: list[Replica]) -> None:
    """One line per host on stderr; ReplicationFailed (after all hosts were tried) if one failed."""
    for r in reps:
        rate = f", {r.mb_per_s:.1f} MB/s" if r.bytes else ""
        _log(f"replica {r.volume} on {r.uri} (pool {r.pool}): {r.state} in {r.seconds:.1f} s{rate}: {r.details}")
    failed = [r for r in reps if r.state != "Completed"]
    if failed:
        raise replication.ReplicationFailed(iv, failed)


def published(lab: Lab, iv: ImageVersion) -> None:
    """After build or import: replicate to the configured target regions."""
    report(iv, replication.replicate_version(lab, iv))


def updated(lab: Lab, iv: ImageVersion) -> None:
    """After a targetRegions update: replicate to the new targets, drop the replicas of the old ones."""
    done = replication.sync_regions(lab, iv)
    for where in done.removed:
        _log(f"removed the replica on {where}")
    for note in done.kept:
        _log(f"kept the replica on {note}")
    report(iv, done.replicas)


def replicate(lab: Lab, iv: ImageVersion, regions: list[str] | None, show) -> None:
    """`scaleset image replicate`: again (idempotent); `show` gets the replicationStatus, then
    ReplicationFailed if a host failed."""
    reps = replication.replicate_version(lab, iv, regions)
    if not reps:
        _log(f"{iv.urn}: no configured region among its targets ({', '.join(iv.target_regions)}): "
             "nothing to replicate")
    show(replication.replication_status(lab, iv))
    report(iv, reps)
