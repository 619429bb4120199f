"""The lab's SQLite database: one file under $SCALESET_HOME, the source of truth."""
from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any, Callable

from controller.core.errors import from_db_error, from_os_error
from controller.core.txn import transaction
from controller.state.schema import migrate



def connect(path: Path) -> sqlite3.Connection:
    """The lab's database, migrated to the current schema; errors name the file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: a commit survives a killed process (what crash safety needs here); only a
        # power loss may drop the last commits. Saves an fsync per transaction.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        # A rolling upgrade reads the whole set before every batch: keep a large set's rows in
        # the page cache (up to 64 MiB, used only as the database grows) instead of re-reading them.
        conn.execute("PRAGMA cache_size=-65536")
        migrate(conn, path)
        for f in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):  # models may hold protectedSettings
            if f.exists():
                f.chmod(0o600)
    except sqlite3.Error as exc:
        raise from_db_error(exc, path) from None
    except OSError as exc:
        raise from_os_error(exc, str(path)) from None
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
