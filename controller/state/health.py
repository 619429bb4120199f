"""The last health reading per instance, with `since` kept while the state does not change."""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from controller.core.txn import transaction


@dataclass
class Reading:
    state: str          # Healthy | Unhealthy | Unknown | Initializing
    source: str         # agent | probe | default
    detail: str = ""
    since: str | None = None  # when the state began (the agent says; else first seen by the lab)
    checked_at: str = ""


class HealthStore:
    """The last reading per instance; `since` kept while the state does not change."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def record(self, scale_set: str, readings: dict[int, Reading]) -> dict[int, Reading]:
        with transaction(self.db):
            for iid, r in readings.items():
                row = self.db.execute("SELECT state, since, source FROM health WHERE scale_set=? AND instance_id=?",
                                      (scale_set, iid)).fetchone()
                if r.since is None:
                    same = row is not None and row["state"] == r.state and row["source"] == r.source
                    r.since = row["since"] if same else r.checked_at
                self.db.execute("INSERT OR REPLACE INTO health VALUES (?,?,?,?,?,?,?)",
                                (scale_set, iid, r.state, r.since, r.source, r.detail, r.checked_at))
        return readings

    def get(self, scale_set: str) -> dict[int, Reading]:
        rows = self.db.execute("SELECT * FROM health WHERE scale_set=?", (scale_set,))
        return {r["instance_id"]: Reading(r["state"], r["source"], r["detail"] or "", r["since"], r["checked_at"])
                for r in rows}

    def forget(self, scale_set: str, instance_id: int | None = None) -> None:
        with transaction(self.db):
            if instance_id is None:
                self.db.execute("DELETE FROM health WHERE scale_set=?", (scale_set,))
            else:
                self.db.execute("DELETE FROM health WHERE scale_set=? AND instance_id=?", (scale_set, instance_id))
