"""Rolling upgrades as `az vmss rolling-upgrade get-latest` and `get-os-upgrade-history` show
them (section 3 of the spec), plus the lab's batches, per-instance timings and overhead."""
from __future__ import annotations

import time

from controller.core.errors import ModelError
from controller.model.armid import group_of, vmss_id
from controller.ops.lab import Lab
from controller.ops.upgrade_plan import FAILED_STATES, model_digest
from controller.ops.upgrade_plan import pending as plan_pending
from controller.state.upgrades import Upgrade, UpgradeStore

TYPE = "Microsoft.Compute/virtualMachineScaleSets/rollingUpgrades"


def progress(lab: Lab, up: Upgrade, rows: list[dict]) -> dict:
    touched = {r["instanceId"]: r["state"] for r in rows}
    try:
        digest = model_digest(lab.models.get(up.scale_set))
    except ModelError:  # a model that does not read: the image alone
        digest = None
    pending = plan_pending(lab.instances.list(up.scale_set), up.target["version"], touched, digest)
    return {"successfulInstanceCount": sum(r["state"] == "Succeeded" for r in rows),
            "failedInstanceCount": sum(r["state"] in FAILED_STATES for r in rows),
            "inProgressInstanceCount": sum(r["state"] == "InProgress" for r in rows),
            "pendingInstanceCount": len(pending)}


def overhead(up: Upgrade) -> dict:
    """Controller overhead: wall time minus, per batch, the slowest instance's swap + boot +
    health (+ rollback) time, and minus the policy's pauses between batches."""
    wall = (up.ended_epoch or time.time()) - up.started_epoch
    busy = sum(b.get("slowest", 0.0) for b in up.batch_times)
    pauses = sum(b.get("pause", 0.0) for b in up.batch_times)
    over = max(0.0, wall - busy - pauses)
    return {"wallSeconds": round(wall, 3), "slowestInstanceSecondsPerBatch": round(busy, 3),
            "pauseSeconds": round(pauses, 3), "overheadSeconds": round(over, 3),
            "overheadPercent": round(100 * over / wall, 2) if wall > 0 else 0.0}


def _properties(lab: Lab, up: Upgrade, rows: list[dict]) -> dict:
    return {
        "policy": up.policy,
        "runningStatus": {"code": up.status, "startTime": up.start_time, "endTime": up.end_time,
                          "lastAction": "Cancel" if up.cancel_requested else "Start",
                          "lastActionTime": up.start_time},
        "progress": progress(lab, up, rows),
        "error": {"code": up.error_code, "message": up.error_message} if up.error_code else None,
        "startedBy": up.started_by,
        "targetImageReference": up.target,
        "rollbackInfo": {"successfullyRolledbackInstanceCount": sum(r["state"] == "RolledBack" for r in rows),
                         "failedRolledbackInstanceCount": sum(r["state"] == "RollbackFailed" for r in rows),
                         "rollbackError": up.rollback_error},
    }


def _offsets(up: Upgrade, rows: list[dict]) -> list[dict]:
    """Each instance row with `startSeconds`: when its swap began, in seconds after the upgrade's start."""
    for r in rows:
        started = r.pop("started", None)
        r["startSeconds"] = round(started - up.started_epoch, 3) if started is not None else None
    return rows


def latest_view(lab: Lab, up: Upgrade) -> dict:
    """`rolling-upgrade get-latest`: the status, with the lab's batches and timings."""
    rows = _offsets(up, UpgradeStore(lab.db).instances(up))
    ss = lab.models.get(up.scale_set)
    return {"id": f"{vmss_id(group_of(ss.id), ss.name)}/rollingUpgrades/latest", "type": TYPE, "location": ss.location,
            **_properties(lab, up, rows),
            "lab": {"upgradeId": up.id, "batches": up.batch_times, "instances": rows, "overhead": overhead(up),
                    "elapsedSeconds": round((up.ended_epoch or time.time()) - up.started_epoch, 3)}}


def history_item(lab: Lab, up: Upgrade) -> dict:
    """One entry of `get-os-upgrade-history`."""
    rows = UpgradeStore(lab.db).instances(up)
    props = _properties(lab, up, rows)
    props.pop("policy")
    return {"properties": props, "type": TYPE, "location": lab.models.get(up.scale_set).location}
