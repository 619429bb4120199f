"""Image replicas in the lab's database: one row per (image version, host, pool), what
replication last did there (Replicating, Completed or Failed) and why.

A region is ready for a version when each of its hosts holds a Completed replica of it; a
location that names no configured region (and `local`) reads the gallery file and is ready.
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from controller.core.clock import now_iso
from controller.core.txn import transaction
from controller.model.region import Host
from controller.state.regions import RegionStore
from images.gallery import ImageVersion

_KEY = "publisher=? AND offer=? AND sku=? AND version=?"


@dataclass(frozen=True)
class ReplicaRow:
    region: str
    host_uri: str
    pool: str
    volume: str
    state: str  # Replicating | Completed | Failed
    details: str
    bytes: int
    seconds: float
    updated_at: str


def _key(iv: ImageVersion) -> tuple[str, str, str, str]:
    return iv.publisher, iv.offer, iv.sku, iv.version


class ReplicaStore:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def record(self, iv: ImageVersion, region: str, host: Host, state: str, details: str = "",
               bytes: int = 0, seconds: float = 0.0) -> None:
        """What replication of `iv` to `host` (for `region`) is or did; replaces the host's last row."""
        with transaction(self.db):
            self.db.execute(
                "INSERT OR REPLACE INTO image_replicas (publisher, offer, sku, version, region, host_uri, pool, "
                "volume, state, details, bytes, seconds, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (*_key(iv), region, host.uri, host.pool, iv.volume_name, state, details, bytes, seconds, now_iso()))

    def of(self, iv: ImageVersion) -> list[ReplicaRow]:
        rows = self.db.execute(f"SELECT * FROM image_replicas WHERE {_KEY} ORDER BY region, host_uri, pool",
                               _key(iv)).fetchall()
        return [ReplicaRow(r["region"], r["host_uri"], r["pool"], r["volume"], r["state"], r["details"],
                           r["bytes"], r["seconds"], r["updated_at"]) for r in rows]

    def forget(self, iv: ImageVersion, host_uri: str | None = None, pool: str | None = None) -> None:
        """Drop the version's rows (only that host's and pool's, when given)."""
        q, args = f"DELETE FROM image_replicas WHERE {_KEY}", list(_key(iv))
        if host_uri is not None:
            q, args = q + " AND host_uri=? AND pool=?", args + [host_uri, pool]
        with transaction(self.db):
            self.db.execute(q, args)

    def ready(self, iv: ImageVersion, region_name: str) -> bool:
        """True when `iv` may be used in `region_name`: a target region whose every host holds a
        Completed replica (a region that is not configured: as soon as it is a target)."""
        if region_name.lower() not in (r.lower() for r in iv.target_regions):
            return False
        region = RegionStore(self.db).configured(region_name)
        if region is None:
            return True
        done = {(r.host_uri, r.pool) for r in self.of(iv) if r.state == "Completed" and r.volume == iv.volume_name}
        return all((h.uri, h.pool) in done for h in region.hosts)
