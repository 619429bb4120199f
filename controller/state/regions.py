"""Regions in the lab's database: each a name and its hosts in order (position = fault domain).

`local` is never stored: `get()` makes it from the lab's own libvirt. A name that is not
stored is a label on the local host (`configured=False`). Writes are single transactions, so
two processes adding one name cannot both succeed, and a region is not removed while a scale
set's location is that region.
"""
from __future__ import annotations

import json
import sqlite3

from controller.core.clock import now_iso
from controller.core.errors import ModelError
from controller.core.settings import lab_paths, libvirt_uri
from controller.core.txn import transaction
from controller.model.region import (
    LOCAL,
    Host,
    Region,
    is_local,
    local_host,
    local_region,
    validate_region,
)


def _not_found(name: str) -> ModelError:
    return ModelError("name", f"region '{name}' not found (configured regions: scaleset region list)",
                      "ResourceNotFound")


class RegionStore:
    """`local_host`: the local region's host (default: $SCALESET_LIBVIRT_URI and the lab home's pool)."""

    def __init__(self, db: sqlite3.Connection, local: Host | None = None) -> None:
        self.db = db
        self._local = local

    @property
    def local(self) -> Host:
        if self._local is None:
            self._local = local_host(lab_paths().home, libvirt_uri())
        return self._local

    def add(self, region: Region) -> Region:
        """Store a new configured region (validated); Conflict if the name is taken (or is `local`)."""
        validate_region(region)
        with transaction(self.db):
            self.check_new(region.name)
            self.db.execute("INSERT INTO regions (name, created_at) VALUES (?,?)", (region.name, now_iso()))
            self.db.executemany("INSERT INTO region_hosts (region, position, uri, pool, pool_path, ssh) "
                                "VALUES (?,?,?,?,?,?)",
                                [(region.name, i, h.uri, h.pool, h.pool_path, h.ssh)
                                 for i, h in enumerate(region.hosts)])
        return Region(region.name, region.hosts, configured=True)

    def check_new(self, name: str) -> None:
        """Conflict if a region of that name (any case) exists; `local` always does."""
        if is_local(name):
            raise ModelError("$.name", f"region '{LOCAL}' is the lab's own host and always exists", "Conflict")
        if self.db.execute("SELECT 1 FROM regions WHERE name=?", (name,)).fetchone():
            raise ModelError("$.name", f"region '{name}' already exists", "Conflict")

    def configured(self, name: str) -> Region | None:
        """The stored region of that name (any case), None if there is none."""
        row = self.db.execute("SELECT name FROM regions WHERE name=?", (name,)).fetchone()
        if row is None:
            return None
        hosts = self.db.execute("SELECT uri, pool, pool_path, ssh FROM region_hosts WHERE region=? "
                                "ORDER BY position", (row["name"],)).fetchall()
        return Region(row["name"], tuple(Host(h["uri"], h["pool"], h["pool_path"], h["ssh"]) for h in hosts),
                      configured=True)

    def get(self, name: str) -> Region:
        """The region a location names: a configured one, `local`, or a label on the local host."""
        if is_local(name):
            return local_region(self.local)
        return self.configured(name) or local_region(self.local, name)

    def hosts_at(self, uri: str) -> list[Host]:
        """Every configured region's host entry at libvirt URI `uri`, by region name and position."""
        rows = self.db.execute("SELECT uri, pool, pool_path, ssh FROM region_hosts WHERE uri=? "
                               "ORDER BY region, position", (uri,)).fetchall()
        return [Host(h["uri"], h["pool"], h["pool_path"], h["ssh"]) for h in rows]

    def list(self) -> list[Region]:
        """`local` first, then the configured regions by name."""
        names = [r["name"] for r in self.db.execute("SELECT name FROM regions ORDER BY name")]
        return [local_region(self.local)] + [r for n in names if (r := self.configured(n)) is not None]

    def users(self, name: str) -> list[str]:
        """The scale sets whose location is region `name` (any case); a damaged model is skipped."""
        out = []
        for row in self.db.execute("SELECT name, model FROM scale_sets ORDER BY name"):
            try:
                location = json.loads(row["model"]).get("location", LOCAL)
            except (ValueError, AttributeError):
                continue
            if isinstance(location, str) and location.lower() == name.lower():
                out.append(row["name"])
        return out

    def remove(self, name: str) -> Region:
        """Remove a configured region; refused for `local` and while a scale set is located in it."""
        if is_local(name):
            raise ModelError("name", f"region '{LOCAL}' is the lab's own host and cannot be removed",
                             "OperationNotAllowed")
        with transaction(self.db):
            region = self.configured(name)
            if region is None:
                raise _not_found(name)
            users = self.users(name)
            if users:
                raise ModelError("name", f"region '{region.name}' is the location of scale set(s) "
                                         f"{', '.join(users)}: delete them first", "RegionInUse")
            self.db.execute("DELETE FROM region_hosts WHERE region=?", (region.name,))
            self.db.execute("DELETE FROM regions WHERE name=?", (region.name,))
        return region
