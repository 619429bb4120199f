"""Long-running operations as ARM runs them: the request answers 201/202 at once with
`Azure-AsyncOperation` (and `Location`) pointing at an operation resource; the work goes on
in this process and the resource says InProgress, then Succeeded, Failed or Canceled.

Each operation is recorded in SQLite when it starts and when it ends (state/operations.py), so
its URL answers after a restart too: one a stopped or killed controller left InProgress is taken
up by the restarted one (ops/takeup.py). A finished operation's result body stays in memory:
after a restart its Location URL answers 200 without it."""
from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from controller.api import responses
from controller.core import signals
from controller.core.clock import now_iso
from controller.core.errors import STATUS, LabError, ModelError, from_db_error
from controller.state import reserve
from controller.state.db import connect
from controller.state.operations import KEEP_SECONDS, MAX_KEPT, OperationStore

log = logging.getLogger("scaleset.api")


@dataclass
class Operation:
    id: str
    kind: str
    resource: str  # the ARM id the operation works on
    location: str
    status: str = "InProgress"
    error: dict | None = None
    result: Any = None
    start_time: str = field(default_factory=now_iso)
    end_time: str | None = None
    ended: float | None = None
    task: asyncio.Task | None = field(default=None, repr=False)

    def to_json(self) -> dict:
        out = {"name": self.id, "status": self.status, "startTime": self.start_time}
        if self.end_time:
            out["endTime"] = self.end_time
        if self.error:
            out["error"] = self.error
        return out

    def path(self) -> str:
        return f"/subscriptions/{self.resource.split('/')[2]}/providers/Microsoft.Compute/locations/" \
               f"{self.location}/operations/{self.id}"


class Operations:
    """This process's operations (in memory, with their tasks and results) over their records
    in the lab's database at `db` (None: in memory only)."""

    def __init__(self, db: Path | None = None) -> None:
        self.items: dict[str, Operation] = {}
        self.version = 0  # moves whenever an operation starts or ends (cached answers show their state)
        self.db = db
        self._local = threading.local()  # one SQLite connection per thread that asks

    def _store(self) -> OperationStore | None:
        if self.db is None:
            return None
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = connect(self.db)
        return OperationStore(conn)

    def start(self, kind: str, resource: str, location: str, work: Awaitable[Any]) -> Operation:
        """Record the operation (a LabError, e.g. a full disk, refuses it before any work), then run `work`."""
        self._prune()
        op = Operation(uuid.uuid4().hex, kind, resource, location)
        store = self._store()
        try:
            def begin() -> list[str]:
                return store.begin(op.id, kind, resource, location, op.start_time) if store else []
            # a delete frees space: on a full disk its record takes the space set aside (state/reserve.py)
            for gone in reserve.freeing(self.db, begin) if kind == "delete" and store else begin():
                self.items.pop(gone, None)
        except BaseException as exc:
            if asyncio.iscoroutine(work):
                work.close()  # never started
            if isinstance(exc, sqlite3.Error):  # a full disk: InsufficientStorage, before any work
                raise from_db_error(exc, self.db) from None
            raise
        self.items[op.id] = op
        self.version += 1
        op.task = asyncio.ensure_future(self._run(op, work))
        return op

    async def _run(self, op: Operation, work: Awaitable[Any]) -> None:
        try:
            op.result = await work
            op.status = "Succeeded"
        except BaseException as exc:
            if signals.STOP.is_set() or not isinstance(exc, Exception | asyncio.CancelledError):
                raise  # the controller stops: the record stays InProgress, taken up at the restart
            op.status, op.error = _outcome(op, exc)
        op.end_time, op.ended = now_iso(), time.monotonic()
        self.version += 1
        try:
            store = self._store()
            if store is not None:
                store.end(op.id, op.status, op.error, op.end_time)
        except Exception as exc:  # noqa: BLE001 - the answer in memory stands; the restart says it was cut off
            log.error("operation %s: its end was not recorded: %s: %s", op.id, type(exc).__name__, exc)

    def get(self, op_id: str) -> Operation:
        op = self.items.get(op_id)
        if op is None:
            op = self._recorded(op_id)
        if op is None:
            raise ModelError("operationId", f"operation '{op_id[:64]}' not found (operations are kept "
                                            f"{KEEP_SECONDS:g} s after they end)", "NotFound")
        return op

    def _recorded(self, op_id: str) -> Operation | None:
        """An operation of another process (one before a restart), from its record."""
        store = self._store()
        rec = store.get(op_id[:64]) if store is not None else None
        if rec is None:
            return None
        return Operation(rec.id, rec.kind, rec.resource, rec.location, rec.status, rec.error,
                         start_time=rec.start_time, end_time=rec.end_time)

    def running_on(self, resource: str) -> Operation | None:
        """The operation in progress on `resource` (ids compare case-insensitively), if any."""
        for op in self.items.values():
            if op.status == "InProgress" and op.resource.lower() == resource.lower():
                return op
        return None

    def _prune(self) -> None:
        now = time.monotonic()
        for key in [k for k, o in self.items.items() if o.ended and now - o.ended > KEEP_SECONDS]:
            del self.items[key]
        while len(self.items) >= MAX_KEPT:
            done = next((k for k, o in self.items.items() if o.ended), None)
            if done is None:
                break
            del self.items[done]

    async def wait(self, op: Operation) -> None:
        if op.task is not None:
            await asyncio.shield(op.task)

    def close(self) -> None:
        """This thread's connection (the others close with their threads)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _outcome(op: Operation, exc: BaseException) -> tuple[str, dict]:
    """An operation's status and error from what its work raised."""
    if isinstance(exc, asyncio.CancelledError):
        return "Canceled", {"code": "OperationCanceled", "message": "the operation was canceled"}
    if isinstance(exc, LabError):
        return "Failed", exc.to_json()["error"]
    # said once in the log, never as a traceback to the client
    log.error("operation %s (%s of %s) failed: %s: %s", op.id, op.kind, op.resource, type(exc).__name__, exc)
    return "Failed", {"code": "InternalError", "message": f"{type(exc).__name__}: {exc}"}


def headers(request: web.Request, op: Operation, location: bool) -> dict[str, str]:
    """Azure-AsyncOperation (and Location for POST and DELETE), absolute, with the caller's api-version."""
    version = request.query.get("api-version", "")
    base = responses.origin(request).with_path(op.path())
    out = {"Azure-AsyncOperation": str(base.with_query({"api-version": version})),
           "Retry-After": responses.RETRY_AFTER}
    if location:
        out["Location"] = str(base.with_query({"monitor": "true", "api-version": version}))
    return out


def status_response(request: web.Request, op: Operation) -> web.Response:
    """The operation resource; with `monitor=true` (the Location URL) 202 until it ends, then the
    result (200) or the error in ARM's shape with its status."""
    if request.query.get("monitor", "").lower() != "true":
        busy = {"Retry-After": responses.RETRY_AFTER} if op.status == "InProgress" else None
        return responses.body(op.to_json(), headers=busy)
    if op.status == "InProgress":
        here = responses.origin(request).join(request.rel_url)  # the listener's own, never `Host`'s
        return web.Response(status=202, headers={"Location": str(here), "Retry-After": responses.RETRY_AFTER})
    if op.status in ("Failed", "Canceled"):
        err = op.error or {"code": "InternalError", "message": "failed"}
        return responses.body({"error": err}, STATUS.get(err["code"], 400))
    if op.result is None:
        return web.Response(status=200)
    return responses.body(op.result)
