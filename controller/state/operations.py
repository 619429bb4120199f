"""The API's long-running operations in SQLite: a record written when one starts and when it
ends, so its URL still answers after the controller stopped or was killed. A record left
InProgress by a process that no longer runs is the restarted controller's to take up
(ops/takeup.py): resumed, or ended Failed with `OperationPreempted`."""
from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass

from controller.core.procs import owner_alive, process_tag
from controller.core.txn import transaction

IN_PROGRESS = "InProgress"
KEEP_SECONDS = 3600.0  # a finished operation can be polled this long
MAX_KEPT = 10_000
PREEMPTED = "OperationPreempted"


@dataclass
class OpRecord:
    id: str
    kind: str
    resource: str
    location: str
    status: str
    error: dict | None
    owner: str
    start_time: str
    end_time: str | None = None
    ended_epoch: float | None = None

    @property
    def orphaned(self) -> bool:
        """In progress, and the process running it is gone."""
        return self.status == IN_PROGRESS and not owner_alive(self.owner)


def _record(r: sqlite3.Row) -> OpRecord:
    return OpRecord(r["id"], r["kind"], r["resource"], r["location"], r["status"],
                    json.loads(r["error"]) if r["error"] else None, r["owner"], r["start_time"], r["end_time"],
                    r["ended_epoch"])


def preempted(why: str) -> dict:
    """The error of an operation the controller's stop cut off."""
    return {"code": PREEMPTED, "message": f"the controller stopped while the operation ran; {why}"}


class OperationStore:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def begin(self, op_id: str, kind: str, resource: str, location: str, start_time: str) -> list[str]:
        """Record an operation that starts (after pruning, in the same transaction); returns the
        ids of the operations pruned."""
        with transaction(self.db):
            gone = self.prune()
            self.db.execute("INSERT INTO operations (id, kind, resource, location, status, owner, start_time) "
                            "VALUES (?,?,?,?,?,?,?)",
                            (op_id, kind, resource, location, IN_PROGRESS, process_tag(), start_time))
        return gone

    def end(self, op_id: str, status: str, error: dict | None, end_time: str) -> None:
        with transaction(self.db):
            self.db.execute("UPDATE operations SET status=?, error=?, end_time=?, ended_epoch=? WHERE id=?",
                            (status, json.dumps(error) if error else None, end_time, time.time(), op_id))

    def get(self, op_id: str) -> OpRecord | None:
        r = self.db.execute("SELECT * FROM operations WHERE id=?", (op_id,)).fetchone()
        return _record(r) if r else None

    def orphans(self) -> list[OpRecord]:
        """Operations left InProgress by processes that are gone, oldest first."""
        rows = self.db.execute("SELECT * FROM operations WHERE status=? ORDER BY start_time", (IN_PROGRESS,))
        return [op for op in map(_record, rows) if op.orphaned]

    def mine_in_progress(self) -> int:
        """How many operations this process has in progress."""
        return self.db.execute("SELECT COUNT(*) FROM operations WHERE status=? AND owner=?",
                               (IN_PROGRESS, process_tag())).fetchone()[0]

    def claim(self, op_id: str) -> None:
        """This process runs the operation from now on (it resumes it)."""
        with transaction(self.db):
            self.db.execute("UPDATE operations SET owner=? WHERE id=?", (process_tag(), op_id))

    def prune(self, keep_seconds: float | None = None, max_kept: int | None = None) -> list[str]:
        """Forget operations ended more than `keep_seconds` (KEEP_SECONDS) ago, then the oldest
        ended ones past `max_kept` - 1 (MAX_KEPT: room for one more; operations in progress are
        kept); returns the ids forgotten."""
        keep_seconds = KEEP_SECONDS if keep_seconds is None else keep_seconds
        max_kept = MAX_KEPT if max_kept is None else max_kept
        with transaction(self.db):
            gone = [r[0] for r in self.db.execute("SELECT id FROM operations WHERE ended_epoch < ?",
                                                  (time.time() - keep_seconds,))]
            over = self.db.execute("SELECT COUNT(*) FROM operations").fetchone()[0] - len(gone) - max_kept + 1
            if over > 0:
                gone += [r[0] for r in self.db.execute(
                    "SELECT id FROM operations WHERE ended_epoch >= ? ORDER BY ended_epoch LIMIT ?",
                    (time.time() - keep_seconds, over))]
            self.db.executemany("DELETE FROM operations WHERE id=?", [(g,) for g in gone])
        return gone
