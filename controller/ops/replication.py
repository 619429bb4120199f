"""Image versions replicated to the hosts of their target regions, through libvirt's storage API.

Each host of a configured target region gets a verified copy of the version's file as volume
`iv.volume_name` in its pool (controller/virt/replica.py); every step is recorded in
`image_replicas`, which `Gallery.resolve` reads (a version counts in a region once replicated).
A region that is not configured (and `local`) reads the gallery file: nothing to replicate; nor
does a configured region's host that is the lab's own libvirt.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from controller.core.errors import ImageError, LabError
from controller.model.region import Host, Region
from controller.ops.lab import Lab
from controller.state.replicas import ReplicaStore
from controller.virt.replica import Replica, replicate
from controller.virt.storage import Pool, ensure_pool
from images.gallery import ImageVersion

PROGRESS = {"Completed": 100}


class ReplicationFailed(LabError):
    """Replication to some host failed; `failed`: those hosts' results (ARM's error details)."""

    def __init__(self, iv: ImageVersion, failed: list[Replica]) -> None:
        hosts = "; ".join(f"{r.uri} (pool {r.pool}): {r.details}" for r in failed)
        super().__init__("properties.publishingProfile.targetRegions",
                         f"{iv.urn}: replication failed on {len(failed)} host(s): {hosts}", "ReplicationFailed")
        self.failed = failed

    def to_json(self) -> dict:
        out = super().to_json()
        out["error"]["details"] = [{"code": "ReplicationFailed", "target": r.uri,
                                    "message": f"pool {r.pool}, volume {r.volume}: {r.details}"} for r in self.failed]
        return out


@dataclass
class Sync:
    """What sync_regions did: replications to added regions, replicas removed and replicas kept."""
    replicas: list[Replica] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def _same(a: str, b: str) -> bool:
    return a.lower() == b.lower()


def target_regions(lab: Lab, iv: ImageVersion, regions: list[str] | None = None) -> list[Region]:
    """The configured regions among the version's targets (only `regions`, each a target, if given)."""
    names = list(iv.target_regions)
    if regions:
        for i, r in enumerate(regions):
            if not any(_same(r, t) for t in names):
                raise ImageError(f"--region[{i}]" if len(regions) > 1 else "--region",
                                 f"'{r}' is not a target region of {iv.urn} (targets: {', '.join(names)})")
        names = [t for t in names if any(_same(r, t) for r in regions)]
    return [c for n in names if (c := lab.regions.configured(n)) is not None]


def replicate_to(lab: Lab, iv: ImageVersion, region: Region, host: Host) -> Replica:
    """One host: Replicating, then Completed or Failed with the reason (a host that does not answer)."""
    store = ReplicaStore(lab.db)
    if (host.uri, host.pool) == (lab.uri, lab.local.pool):  # overlays here back onto the gallery file
        rep = Replica(host.uri, host.pool, iv.volume_name, "Completed", "the lab's own host: the gallery file is used",
                      0.0, 0)
        store.record(iv, region.name, host, rep.state, rep.details)
        return rep
    store.record(iv, region.name, host, "Replicating", "replication under way")
    t0 = time.monotonic()
    try:
        pool = ensure_pool(lab.hv_at(host.uri), host.pool, host.pool_path)
    except LabError as exc:
        rep = Replica(host.uri, host.pool, iv.volume_name, "Failed", f"host not usable: {exc.reason}",
                      time.monotonic() - t0, 0)
    else:
        rep = replicate(pool, iv.volume_name, iv.path, iv.sha256)
    store.record(iv, region.name, host, rep.state, rep.details, rep.bytes, rep.seconds)
    return rep


def replicate_version(lab: Lab, iv: ImageVersion, regions: list[str] | None = None) -> list[Replica]:
    """Replicate to every host of the configured target regions (or of `regions`); a host that
    fails does not stop the others. A verified copy already there is not uploaded again."""
    return [replicate_to(lab, iv, region, host)
            for region in target_regions(lab, iv, regions) for host in region.hosts]


def _pool(lab: Lab, uri: str, name: str) -> Pool:
    return ensure_pool(lab.hv_at(uri), name)


def sync_regions(lab: Lab, iv: ImageVersion) -> Sync:
    """After a targetRegions update: replicate to the targets not ready yet; drop the replicas of
    regions no longer targeted (a volume some disk is built on, or on a host that does not answer,
    stays, and so does its row)."""
    out, store = Sync(), ReplicaStore(lab.db)
    needed = {(h.uri, h.pool) for r in target_regions(lab, iv) for h in r.hosts}  # a host of two regions
    for row in store.of(iv):
        if any(_same(row.region, t) for t in iv.target_regions) or (row.host_uri, row.pool) in needed:
            continue
        where = f"{row.host_uri} (pool {row.pool}, region {row.region})"
        try:
            pool = _pool(lab, row.host_uri, row.pool)
            vol = pool.volume(row.volume)
            users = pool.users_of(vol) if vol is not None else []
            if not users:
                pool.delete(row.volume)
        except LabError as exc:
            out.kept.append(f"{where}: {exc.reason}")
            continue
        if users:
            out.kept.append(f"{where}: in use by {', '.join(users)}")
            continue
        store.forget(iv, row.host_uri, row.pool)
        out.removed.append(where)
    pending = [r.name for r in target_regions(lab, iv) if not store.ready(iv, r.name)]
    out.replicas = replicate_version(lab, iv, pending) if pending else []
    return out


def delete_version(lab: Lab, iv: ImageVersion, expect=None) -> ImageVersion:
    """Delete the replicas on every host, then the version; nothing is deleted while an instance
    uses the version, a replica has users, or a replica's host does not answer. `expect`: the
    gallery's check of the version as its delete reads it (an If-Match)."""
    if (iv.publisher.lower(), iv.offer.lower(), iv.sku.lower(), iv.version) in lab.instances.images_in_use():
        raise ImageError("version", f"{iv.urn} is in use by instances (their OS disks are overlays on it); "
                                    "upgrade or delete them first; nothing was deleted", "ImageVersionInUse")
    store, found = ReplicaStore(lab.db), []
    for row in store.of(iv):
        try:
            pool = _pool(lab, row.host_uri, row.pool)
            vol = pool.volume(row.volume)
            users = pool.users_of(vol) if vol is not None else []
        except LabError as exc:
            raise ImageError("version", f"cannot check the replica of {iv.urn} on {row.host_uri} (pool {row.pool}): "
                                        f"{exc.reason}; nothing was deleted", "HostUnreachable") from None
        if users:
            raise ImageError("version", f"the replica of {iv.urn} on {row.host_uri} (pool {row.pool}) is the "
                                        f"backing of {', '.join(users)}; nothing was deleted", "ImageVersionInUse")
        found.append((row, pool))
    for row, pool in found:
        pool.delete(row.volume)
        store.forget(iv, row.host_uri, row.pool)
    return lab.gallery.delete(iv.publisher, iv.offer, iv.sku, iv.version, lab.instances.images_in_use(), expect)


def _region_state(rows: list, region: Region | None) -> tuple[str, str]:
    if region is None:
        return "Completed", ""
    by_host = {(r.host_uri, r.pool): r for r in rows if _same(r.region, region.name)}
    states, notes = [], []
    for h in region.hosts:
        r = by_host.get((h.uri, h.pool))
        states.append(r.state if r is not None else "Replicating")
        if r is not None and r.state == "Failed":
            notes.append(f"{h.uri} (pool {h.pool}): {r.details}")
    if "Failed" in states:
        return "Failed", "; ".join(notes)
    if all(s == "Completed" for s in states):
        return "Completed", ""
    return "Replicating", f"{states.count('Completed')} of {len(states)} host(s) done"


def replication_status(lab: Lab, iv: ImageVersion) -> dict:
    """Azure's ReplicationStatus: aggregatedState and a summary per target region."""
    rows, summary = ReplicaStore(lab.db).of(iv), []
    for name in iv.target_regions:
        state, details = _region_state(rows, lab.regions.configured(name))
        summary.append({"region": name, "state": state, "details": details, "progress": PROGRESS.get(state, 0)})
    states = {s["state"] for s in summary}
    aggregated = "Failed" if "Failed" in states else "InProgress" if "Replicating" in states else "Completed"
    return {"aggregatedState": aggregated, "summary": summary}
