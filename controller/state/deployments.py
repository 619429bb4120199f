"""Template deployments in SQLite: one record per (resource group, name), written when a PUT is
accepted and as it runs, and one operation per resource it deploys. Secure parameter values are
never stored (the record keeps Prepared.parameters_record()). A record left Accepted or Running
by a process that no longer runs is the restarted controller's to end (ops/takeup.py)."""
from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field

from controller.core.clock import now_iso
from controller.core.errors import ModelError
from controller.core.procs import owner_alive, process_tag
from controller.core.txn import transaction

ACTIVE = ("Accepted", "Running")
ENDED = ("Succeeded", "Failed", "Canceled")
MAX_DEPLOYMENTS = 800  # per resource group, as ARM keeps (older ended ones are pruned)


@dataclass
class ResourceOp:
    """One resource's operation in a deployment."""
    operation_id: str
    seq: int
    resource_id: str
    resource_type: str
    resource_name: str
    provisioning_operation: str  # Create | Update
    state: str  # Running | Succeeded | Failed
    timestamp: str
    started_epoch: float
    status_code: str | None = None
    status_message: dict | None = None
    duration: float | None = None


@dataclass
class DeploymentRecord:
    resource_group: str
    name: str
    run_id: str
    template: dict
    parameters: dict
    mode: str
    state: str
    correlation_id: str
    template_hash: str
    timestamp: str
    started_epoch: float
    generation: int
    owner: str
    outputs: dict | None = None
    output_resources: list[str] = field(default_factory=list)
    error: dict | None = None
    duration: float | None = None
    cancel_requested: bool = False

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @property
    def orphaned(self) -> bool:
        return self.active and not owner_alive(self.owner)


def _loads(text: str | None):
    return json.loads(text) if text else None


def _record(r: sqlite3.Row) -> DeploymentRecord:
    return DeploymentRecord(r["resource_group"], r["name"], r["run_id"], json.loads(r["template"]),
                            json.loads(r["parameters"]), r["mode"], r["state"], r["correlation_id"],
                            r["template_hash"], r["timestamp"], r["started_epoch"], r["generation"], r["owner"],
                            _loads(r["outputs"]), json.loads(r["output_resources"]), _loads(r["error"]),
                            r["duration"], bool(r["cancel_requested"]))


def _op(r: sqlite3.Row) -> ResourceOp:
    return ResourceOp(r["operation_id"], r["seq"], r["resource_id"], r["resource_type"], r["resource_name"],
                      r["provisioning_operation"], r["state"], r["timestamp"], r["started_epoch"], r["status_code"],
                      _loads(r["status_message"]), r["duration"])


class DeploymentError(ModelError):
    """An error of the deployments API, with its HTTP status."""

    STATUSES = {"DeploymentNotFound": 404, "DeploymentActive": 409, "DeploymentNotCancellable": 409}

    @property
    def status(self) -> int:
        return self.STATUSES.get(self.code, super().status)


def active_conflict(rg: str, name: str) -> ModelError:
    return DeploymentError("deploymentName", f"The deployment '{name}' of resource group '{rg}' is still active "
                                        "(Accepted or Running): cancel it or wait for it to end.", "DeploymentActive")


class DeploymentStore:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def get(self, rg: str, name: str) -> DeploymentRecord | None:
        r = self.db.execute("SELECT * FROM deployments WHERE resource_group=? AND name=?", (rg, name)).fetchone()
        return _record(r) if r else None

    def list(self, rg: str) -> list[DeploymentRecord]:
        rows = self.db.execute("SELECT * FROM deployments WHERE resource_group=? ORDER BY started_epoch, name", (rg,))
        return [_record(r) for r in rows]

    def begin(self, rec: DeploymentRecord, check=None) -> DeploymentRecord:
        """Write a new run of the deployment (replacing an ended one and its operations) in one
        transaction; `check(current etag generation or None)` runs inside it (If-Match). An active
        one is DeploymentActive."""
        with transaction(self.db):
            old = self.get(rec.resource_group, rec.name)
            if check is not None:
                check(None if old is None else old.generation)
            if old is not None and old.active:
                raise active_conflict(old.resource_group, old.name)
            rec.generation = (old.generation + 1) if old else 1
            if old is not None:
                rec.name, rec.resource_group = old.name, old.resource_group  # spelled as first made
                self.db.execute("DELETE FROM deployments WHERE resource_group=? AND name=?", (old.resource_group,
                                                                                             old.name))
            self._prune(rec.resource_group)
            self.db.execute(
                "INSERT INTO deployments (resource_group, name, run_id, template, parameters, mode, state, "
                "correlation_id, template_hash, timestamp, started_epoch, generation, owner) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (rec.resource_group, rec.name, rec.run_id, json.dumps(rec.template), json.dumps(rec.parameters),
                 rec.mode, rec.state, rec.correlation_id, rec.template_hash, rec.timestamp, rec.started_epoch,
                 rec.generation, process_tag()))
        return rec

    def _prune(self, rg: str) -> None:
        over = self.db.execute("SELECT COUNT(*) FROM deployments WHERE resource_group=?", (rg,)).fetchone()[0] \
            - MAX_DEPLOYMENTS + 1
        if over > 0:
            self.db.execute("DELETE FROM deployments WHERE rowid IN (SELECT rowid FROM deployments WHERE "
                            "resource_group=? AND state NOT IN ('Accepted','Running') ORDER BY started_epoch "
                            "LIMIT ?)", (rg, over))

    def set_state(self, rec: DeploymentRecord, state: str) -> None:
        with transaction(self.db):
            self.db.execute("UPDATE deployments SET state=?, generation=generation+1 WHERE resource_group=? AND "
                            "name=? AND run_id=?", (state, rec.resource_group, rec.name, rec.run_id))

    def end(self, rec: DeploymentRecord, state: str, outputs: dict | None, output_resources: list[str],
            error: dict | None) -> None:
        """The run's end (only the run `rec` is: a newer PUT's record is left alone)."""
        with transaction(self.db):
            self.db.execute(
                "UPDATE deployments SET state=?, outputs=?, output_resources=?, error=?, duration=?, "
                "generation=generation+1 WHERE resource_group=? AND name=? AND run_id=?",
                (state, json.dumps(outputs) if outputs is not None else None, json.dumps(output_resources),
                 json.dumps(error) if error else None, time.time() - rec.started_epoch, rec.resource_group,
                 rec.name, rec.run_id))

    def request_cancel(self, rg: str, name: str) -> DeploymentRecord:
        """Mark the active deployment canceled-on-request; 404 / 409 when there is none active."""
        with transaction(self.db):
            rec = self.get(rg, name)
            if rec is None:
                raise not_found(rg, name)
            if not rec.active:
                raise DeploymentError("deploymentName", f"The deployment '{rec.name}' is {rec.state}: only an "
                                                        "Accepted or Running deployment can be canceled.",
                                      "DeploymentNotCancellable")
            self.db.execute("UPDATE deployments SET cancel_requested=1 WHERE resource_group=? AND name=?",
                            (rec.resource_group, rec.name))
        return rec

    def cancel_requested(self, rec: DeploymentRecord) -> bool:
        r = self.db.execute("SELECT cancel_requested FROM deployments WHERE resource_group=? AND name=? AND run_id=?",
                            (rec.resource_group, rec.name, rec.run_id)).fetchone()
        return r is None or bool(r[0])  # gone (deleted): nothing more starts

    def delete(self, rg: str, name: str, check=None) -> bool:
        """The record and its operations (not its resources); False when there is none. An
        active deployment is DeploymentActive."""
        with transaction(self.db):
            rec = self.get(rg, name)
            if check is not None:
                check(None if rec is None else rec.generation)
            if rec is None:
                return False
            if rec.active:
                raise active_conflict(rec.resource_group, rec.name)
            self.db.execute("DELETE FROM deployments WHERE resource_group=? AND name=?", (rec.resource_group,
                                                                                         rec.name))
        return True

    def by_run(self, run_id: str) -> DeploymentRecord | None:
        r = self.db.execute("SELECT * FROM deployments WHERE run_id=?", (run_id,)).fetchone()
        return _record(r) if r else None

    def orphans(self) -> list[DeploymentRecord]:
        rows = self.db.execute("SELECT * FROM deployments WHERE state IN ('Accepted','Running')")
        return [rec for rec in map(_record, rows) if rec.orphaned]

    # -- per-resource operations

    def begin_op(self, rec: DeploymentRecord, op: ResourceOp) -> None:
        with transaction(self.db):
            self.db.execute(
                "INSERT INTO deployment_operations (resource_group, deployment, operation_id, seq, resource_id, "
                "resource_type, resource_name, provisioning_operation, state, timestamp, started_epoch) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (rec.resource_group, rec.name, op.operation_id, op.seq, op.resource_id, op.resource_type,
                 op.resource_name, op.provisioning_operation, op.state, op.timestamp, op.started_epoch))

    def end_op(self, rec: DeploymentRecord, op: ResourceOp) -> None:
        op.duration = time.time() - op.started_epoch
        with transaction(self.db):
            self.db.execute(
                "UPDATE deployment_operations SET state=?, status_code=?, status_message=?, duration=?, timestamp=? "
                "WHERE resource_group=? AND deployment=? AND operation_id=?",
                (op.state, op.status_code, json.dumps(op.status_message) if op.status_message is not None else None,
                 op.duration, now_iso(), rec.resource_group, rec.name, op.operation_id))

    def operations(self, rg: str, name: str) -> list[ResourceOp]:
        rows = self.db.execute("SELECT * FROM deployment_operations WHERE resource_group=? AND deployment=? "
                               "ORDER BY seq", (rg, name))
        return [_op(r) for r in rows]


def not_found(rg: str, name: str) -> ModelError:
    return DeploymentError("deploymentName", f"Deployment '{name[:64]}' could not be found in resource group '{rg}'.",
                      "DeploymentNotFound")
