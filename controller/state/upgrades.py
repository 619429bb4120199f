"""Rolling upgrades in SQLite: one row per attempt, one per instance it touches, and the
JSON shapes of `az vmss rolling-upgrade get-latest` and `get-os-upgrade-history`."""
from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from controller.core.clock import now_iso
from controller.core.errors import ModelError
from controller.core.procs import owner_alive, process_tag
from controller.core.txn import transaction

ACTIVE = "RollingForward"
HISTORY_SIZE, HISTORY_DAYS = 5, 60


@dataclass
class Upgrade:
    id: int
    scale_set: str
    status: str
    started_by: str
    target: dict
    policy: dict
    auto_rollback: bool
    start_time: str
    end_time: str | None
    error_code: str | None
    error_message: str | None
    cancel_requested: bool
    owner: str | None
    batches_done: int
    batch_times: list[dict] = field(default_factory=list)
    rollback_error: str | None = None
    started_epoch: float = 0.0
    ended_epoch: float | None = None


def _upgrade(r: sqlite3.Row) -> Upgrade:
    return Upgrade(r["id"], r["scale_set"], r["status"], r["started_by"], json.loads(r["target"]),
                   json.loads(r["policy"]), bool(r["auto_rollback"]), r["start_time"], r["end_time"],
                   r["error_code"], r["error_message"], bool(r["cancel_requested"]), r["owner"], r["batches_done"],
                   json.loads(r["batch_times"]), r["rollback_error"], r["started_epoch"], r["ended_epoch"])


class UpgradeStore:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def start(self, scale_set: str, started_by: str, target: dict, policy: dict, auto_rollback: bool,
              owner: str | None = None) -> Upgrade:
        """A new attempt; refused while another one of the scale set is rolling forward."""
        with transaction(self.db):
            if self.db.execute("SELECT 1 FROM rolling_upgrades WHERE scale_set=? AND status=?",
                               (scale_set, ACTIVE)).fetchone():
                raise ModelError("--name", f"a rolling upgrade of '{scale_set}' is already in progress",
                                 "RollingUpgradeInProgress")
            cur = self.db.execute(
                "INSERT INTO rolling_upgrades (scale_set, status, started_by, target, policy, auto_rollback, "
                "start_time, owner, started_epoch) VALUES (?,?,?,?,?,?,?,?,?)",
                (scale_set, ACTIVE, started_by, json.dumps(target), json.dumps(policy), int(auto_rollback),
                 now_iso(), owner, time.time()))
        return self.get(cur.lastrowid)

    def get(self, upgrade_id: int) -> Upgrade:
        return _upgrade(self.db.execute("SELECT * FROM rolling_upgrades WHERE id=?", (upgrade_id,)).fetchone())

    def latest(self, scale_set: str) -> Upgrade | None:
        r = self.db.execute("SELECT * FROM rolling_upgrades WHERE scale_set=? ORDER BY id DESC LIMIT 1",
                            (scale_set,)).fetchone()
        return _upgrade(r) if r else None

    def active(self, scale_set: str) -> Upgrade | None:
        r = self.db.execute("SELECT * FROM rolling_upgrades WHERE scale_set=? AND status=?",
                            (scale_set, ACTIVE)).fetchone()
        return _upgrade(r) if r else None

    def orphaned(self) -> list[Upgrade]:
        """Upgrades rolling forward with no live process driving them."""
        rows = self.db.execute("SELECT * FROM rolling_upgrades WHERE status=?", (ACTIVE,))
        return [u for u in map(_upgrade, rows) if not (u.owner and owner_alive(u.owner))]

    def refuse_if_driven(self, scale_set: str) -> None:
        """OperationNotAllowed while another live process drives an upgrade of the set."""
        r = self.db.execute("SELECT id, owner FROM rolling_upgrades WHERE scale_set=? AND status=?",
                            (scale_set, ACTIVE)).fetchone()
        if r and r["owner"] and r["owner"] != process_tag() and owner_alive(r["owner"]):
            raise ModelError("--name", f"scale set '{scale_set}' is busy: rolling upgrade {r['id']} is driven by pid "
                                       f"{r['owner'].split(':')[0]}; cancel it first", "OperationNotAllowed")

    def claim(self, up: Upgrade) -> None:
        up.owner = process_tag()
        with transaction(self.db):
            self.db.execute("UPDATE rolling_upgrades SET owner=? WHERE id=?", (up.owner, up.id))

    def history(self, scale_set: str, now: datetime | None = None) -> list[Upgrade]:
        """The last 5 attempts of the last two months, newest first."""
        since = ((now or datetime.now(UTC)) - timedelta(days=HISTORY_DAYS)).isoformat(timespec="seconds")
        rows = self.db.execute("SELECT * FROM rolling_upgrades WHERE scale_set=? AND start_time>=? "
                               "ORDER BY id DESC LIMIT ?", (scale_set, since, HISTORY_SIZE))
        return [_upgrade(r) for r in rows]

    def faulted_platform_versions(self, scale_set: str) -> set[str]:
        """Versions whose automatic upgrade faulted: the platform does not retry them by itself."""
        rows = self.db.execute("SELECT target FROM rolling_upgrades WHERE scale_set=? AND started_by='Platform' "
                               "AND status='Faulted'", (scale_set,))
        return {json.loads(r["target"])["version"] for r in rows}

    def request_cancel(self, scale_set: str) -> Upgrade:
        with transaction(self.db):
            cur = self.db.execute("UPDATE rolling_upgrades SET cancel_requested=1 WHERE scale_set=? AND status=?",
                                  (scale_set, ACTIVE))
            if cur.rowcount == 0:
                raise ModelError("--name", f"no rolling upgrade of '{scale_set}' is in progress", "NotFound")
        up = self.active(scale_set)
        assert up is not None
        return up

    def cancel_requested(self, up: Upgrade) -> bool:
        r = self.db.execute("SELECT cancel_requested FROM rolling_upgrades WHERE id=?", (up.id,)).fetchone()
        return bool(r and r[0])

    def finish(self, up: Upgrade, status: str, error: tuple[str, str] | None = None) -> None:
        up.status, up.end_time, up.ended_epoch = status, now_iso(), time.time()
        up.error_code, up.error_message = error if error else (None, None)
        with transaction(self.db):
            self.db.execute("UPDATE rolling_upgrades SET status=?, end_time=?, error_code=?, error_message=?, "
                            "rollback_error=?, ended_epoch=? WHERE id=?",
                            (status, up.end_time, up.error_code, up.error_message, up.rollback_error,
                             up.ended_epoch, up.id))

    def batch_done(self, up: Upgrade, record: dict | None = None) -> None:
        """Count a finished batch with its timings (None: save changed timings only)."""
        if record is not None:
            up.batches_done += 1
            up.batch_times.append(record)
        with transaction(self.db):
            self.db.execute("UPDATE rolling_upgrades SET batches_done=?, batch_times=? WHERE id=?",
                            (up.batches_done, json.dumps(up.batch_times), up.id))

    # -- instances ---------------------------------------------------------------------------
    def begin_instances(self, up: Upgrade, batch: int, swaps: dict[int, int],
                        surge: dict[int, int] | None = None) -> None:
        """Record a whole batch (inside the caller's transaction, if any): instance id -> its
        journalled swap; with MaxSurge, `surge` maps it to the new instance that replaces it."""
        surge = surge or {}
        with transaction(self.db):
            now = time.time()
            self.db.executemany("INSERT OR REPLACE INTO upgrade_instances (upgrade_id, instance_id, batch, state, "
                                "swap_id, started_epoch, surge_id, surge_phase) VALUES (?,?,?,?,?,?,?,?)",
                                [(up.id, iid, batch, "InProgress", sid, now, surge.get(iid),
                                  "creating" if iid in surge else None) for iid, sid in swaps.items()])

    def set_surge_phase(self, up: Upgrade, instance_id: int, phase: str, error: str | None = None) -> None:
        with transaction(self.db):
            self.db.execute("UPDATE upgrade_instances SET surge_phase=?, error=COALESCE(?, error) WHERE upgrade_id=? "
                            "AND instance_id=?", (phase, error, up.id, instance_id))

    def surging(self, scale_set: str) -> set[int]:
        """Ids of the MaxSurge replacements an upgrade of the set is creating right now."""
        rows = self.db.execute("SELECT ui.surge_id FROM upgrade_instances ui JOIN rolling_upgrades ru ON "
                               "ru.id = ui.upgrade_id WHERE ru.scale_set=? AND ru.status=? AND ui.state='InProgress' "
                               "AND ui.surge_id IS NOT NULL", (scale_set, ACTIVE))
        return {r[0] for r in rows}

    def surge_ids(self, scale_set: str) -> set[int]:
        """Every instance id a MaxSurge replacement of the set was given (never handed out twice)."""
        rows = self.db.execute("SELECT ui.surge_id FROM upgrade_instances ui JOIN rolling_upgrades ru ON "
                               "ru.id = ui.upgrade_id WHERE ru.scale_set=? AND ui.surge_id IS NOT NULL", (scale_set,))
        return {r[0] for r in rows}

    def set_instance(self, up: Upgrade, instance_id: int, state: str, error: str | None = None,
                     timings: dict | None = None) -> None:
        self.set_instances(up, [(instance_id, state, error, timings)])

    def set_instances(self, up: Upgrade, items: list[tuple[int, str, str | None, dict | None]]) -> None:
        """(instance id, state, error, timings) of many instances, in one transaction."""
        with transaction(self.db):
            self.db.executemany("UPDATE upgrade_instances SET state=?, error=?, timings=? WHERE upgrade_id=? AND "
                                "instance_id=?", [(st, err, json.dumps(t or {}), up.id, iid)
                                                  for iid, st, err, t in items])

    def states(self, up: Upgrade) -> dict[int, str]:
        """instance id -> state, for every instance the upgrade touched (cheap: no JSON)."""
        cur = self.db.cursor()
        cur.row_factory = None
        return dict(cur.execute("SELECT instance_id, state FROM upgrade_instances WHERE upgrade_id=?", (up.id,)))

    def instances(self, up: Upgrade) -> list[dict]:
        rows = self.db.execute("SELECT * FROM upgrade_instances WHERE upgrade_id=? ORDER BY batch, instance_id",
                               (up.id,))
        return [{"instanceId": r["instance_id"], "batch": r["batch"], "state": r["state"], "swapId": r["swap_id"],
                 "error": r["error"], "timings": json.loads(r["timings"]), "started": r["started_epoch"],
                 "replacedBy": r["surge_id"], "surgePhase": r["surge_phase"]}
                for r in rows]
