"""The API's operations outlive the process that ran them: recorded in SQLite when they start and
when they end (kept an hour, capped), answered from the record after a restart, and those a
dead process left InProgress are taken up by the next controller (ops/takeup.py)."""
from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest
from aiohttp.test_utils import make_mocked_request

from controller.api.operations import Operation, Operations, status_response
from controller.core import signals
from controller.core.errors import LabError, ModelError
from controller.model.armid import vmss_id
from controller.ops.takeup import TakeUp, set_of
from controller.state import operations as opstate
from controller.state.db import connect
from controller.state.operations import OperationStore

DEAD = "999999999:0"
SET = vmss_id("rg", "web")


def run(coro):
    return asyncio.run(coro)


async def finished(ops: Operations, op: Operation) -> Operation:
    await ops.wait(op)
    return op


def test_an_operation_is_recorded_at_its_start_and_its_end_and_answers_after_a_restart(lab):
    async def main():
        ops = Operations(lab.db)
        gate = asyncio.Event()

        async def work():
            await gate.wait()
            return {"ok": True}
        op = ops.start("create", SET, "local", work())
        assert OperationStore(connect(lab.db)).get(op.id).status == "InProgress"  # before any work ran
        gate.set()
        return await finished(ops, op)
    op = run(main())
    after = Operations(lab.db)  # a new process: nothing in memory
    got = after.get(op.id)
    assert (got.status, got.kind, got.resource, got.end_time) == ("Succeeded", "create", SET, op.end_time)
    monitor = status_response(make_mocked_request("GET", "/x?monitor=true"), got)
    assert monitor.status == 200 and monitor.body is None  # the body stayed with the dead process
    with pytest.raises(ModelError) as err:
        after.get("nope")
    assert err.value.code == "NotFound"


def test_failures_are_recorded_with_their_error(lab):
    async def main():
        ops = Operations(lab.db)

        async def work():
            raise ModelError("instanceIds", "instance 0: boom", "InstanceOperationFailed")
        return await finished(ops, ops.start("reimage", SET, "local", work()))
    op = run(main())
    rec = OperationStore(connect(lab.db)).get(op.id)
    assert rec.status == "Failed" and rec.error["code"] == "InstanceOperationFailed"
    resp = status_response(make_mocked_request("GET", "/x?monitor=true"), Operations(lab.db).get(op.id))
    assert resp.status == 400


def test_a_stop_leaves_the_record_in_progress_for_the_next_controller(lab):
    async def main():
        ops = Operations(lab.db)

        async def work():
            signals.STOP.set()
            raise signals.Interrupted(15)
        op = ops.start("update", SET, "local", work())
        with pytest.raises(LabError):
            await ops.wait(op)
        return op
    signals.reset()
    try:
        op = run(main())
    finally:
        signals.reset()
    assert OperationStore(connect(lab.db)).get(op.id).status == "InProgress"


def test_a_record_that_cannot_be_written_refuses_the_operation_before_any_work(lab, monkeypatch):
    ran = []

    def full(*a, **kw):
        raise sqlite3.OperationalError("database or disk is full")
    monkeypatch.setattr(OperationStore, "begin", full)

    async def main():
        async def work():
            ran.append(1)
        Operations(lab.db).start("create", SET, "local", work())
    with pytest.raises(LabError) as err:
        run(main())
    assert err.value.code == "InsufficientStorage" and ran == []


def test_ended_operations_are_kept_an_hour_and_capped_in_sqlite(lab, monkeypatch):
    db = connect(lab.db)
    store = OperationStore(db)
    for n in range(5):
        store.begin(f"op{n}", "create", SET, "local", "t")
        store.end(f"op{n}", "Succeeded", None, "t")
    db.execute("UPDATE operations SET ended_epoch=? WHERE id='op0'", (time.time() - opstate.KEEP_SECONDS - 1,))
    store.begin("running", "update", SET, "local", "t")
    assert store.get("op0") is None and store.get("op1") is not None  # older than an hour: gone
    monkeypatch.setattr(opstate, "MAX_KEPT", 3)
    gone = store.begin("new", "update", SET, "local", "t")
    assert sorted(gone) == ["op1", "op2", "op3"]  # the oldest ended ones; the one in progress stays
    assert sorted(r[0] for r in db.execute("SELECT id FROM operations")) == ["new", "op4", "running"]


def test_set_of_an_arm_id():
    assert set_of(SET) == ("web", True)
    assert set_of(SET + "/virtualMachines/3") == ("web", False)
    assert set_of("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/i") == \
        (None, False)


def orphan(db, op_id: str, kind: str, resource: str) -> None:
    OperationStore(db).begin(op_id, kind, resource, "local", "t")
    db.execute("UPDATE operations SET owner=? WHERE id=?", (DEAD, op_id))


def test_orphans_answer_in_progress_until_taken_up_then_end_preempted(flab):
    """Operations a dead process left: InProgress at their URL until the controller starts; then
    an image's and a vanished set's end Failed OperationPreempted, saying why."""
    db = flab.db
    gallery = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/i/versions/1.0.0"
    orphan(db, "img", "create", gallery)
    orphan(db, "gone", "reimage", vmss_id("rg", "gone"))
    assert Operations(flab.paths.db).get("img").status == "InProgress"
    said: list[str] = []

    async def main():
        takeup = TakeUp(flab, said.append)
        takeup.start(flab.models.list())
        await takeup.wait()
    run(main())
    store = OperationStore(db)
    for op_id, why in (("img", "nothing resumes it"), ("gone", "scale set 'gone' no longer exists")):
        rec = store.get(op_id)
        assert rec.status == "Failed" and rec.error["code"] == "OperationPreempted", rec
        assert "the controller stopped while the operation ran" in rec.error["message"] and why in rec.error["message"]
        assert rec.end_time and not rec.orphaned
    assert len(said) == 2 and all("left by the last controller" in s for s in said)
