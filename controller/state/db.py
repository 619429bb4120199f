"""The lab's SQLite database: one file under $SCALESET_HOME, the source of truth."""
from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable

from controller.core.errors import from_db_error, from_os_error
from controller.core.txn import transaction
from controller.state import reserve
from controller.state.schema import migrate


def _wal(conn: sqlite3.Connection, timeout: float = 30.0) -> None:
    """WAL mode (kept in the file). Switching a new file answers "locked" at once, without the
    busy timeout, while another process opens it too: wait for that here."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(random.uniform(0.005, 0.05))


def connect(path: Path) -> sqlite3.Connection:
    """The lab's database, migrated to the current schema; errors name the file."""
    conn = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        conn.row_factory = sqlite3.Row
        _wal(conn)
        # WAL + NORMAL: a commit survives a killed process (what crash safety needs here); only a
        # power loss may drop the last commits. Saves an fsync per transaction.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        # A rolling upgrade reads the whole set before every batch: keep a large set's rows in
        # the page cache (up to 64 MiB, used only as the database grows) instead of re-reading them.
        conn.execute("PRAGMA cache_size=-65536")
        migrate(conn, path)
        reserve.keep(path)  # room for a delete to commit on a full disk
        for f in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):  # models may hold protectedSettings
            try:
                f.chmod(0o600)
            except FileNotFoundError:  # no WAL yet, or another process's last close just removed it
                pass
    except BaseException as exc:
        if conn is not None:
            conn.close()
        if isinstance(exc, sqlite3.Error):
            raise from_db_error(exc, path) from None
        if isinstance(exc, OSError):
            raise from_os_error(exc, str(path)) from None
        raise
    return conn


class GroupCommit:
    """Writes that many coroutines ask for at the same moment, committed as one transaction.

    `await group.write(handler, item)` returns once the item is committed, so a step recorded
    this way is still recorded before it is taken. The items that arrive together reach their
    handler as one list (one statement for many rows). If the shared transaction fails, each
    item is tried again alone, so one bad write fails only its own caller.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._queue: list[tuple[Callable[[list], None], Any, asyncio.Future]] = []

    async def write(self, handler: Callable[[list], None], item: Any) -> None:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._queue.append((handler, item, fut))
        if len(self._queue) == 1:  # the flush runs after every coroutine that is ready now
            loop.call_soon(self._flush)
        await fut

    @staticmethod
    def _run(entries: list) -> None:
        groups: dict[Callable[[list], None], list] = {}
        for handler, item, _ in entries:
            groups.setdefault(handler, []).append(item)
        for handler, items in groups.items():
            handler(items)

    def _flush(self) -> None:
        queue, self._queue = self._queue, []
        try:
            with transaction(self.conn):
                self._run(queue)
        except Exception:  # noqa: BLE001 - retried one by one below
            for entry in queue:
                try:
                    with transaction(self.conn):
                        self._run([entry])
                except Exception as exc:  # noqa: BLE001 - the caller's own error
                    if not entry[2].done():
                        entry[2].set_exception(exc)
                else:
                    if not entry[2].done():
                        entry[2].set_result(None)
            return
        for _, _, fut in queue:
            if not fut.done():  # a cancelled caller: its write is committed all the same
                fut.set_result(None)
