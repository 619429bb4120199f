"""The lab's SQLite database: one file under $SCALESET_HOME, the source of truth."""
from __future__ import annotations

import asyncio
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

SCHEMA = """
CREATE TABLE IF NOT EXISTS image_versions (
    publisher TEXT NOT NULL COLLATE NOCASE,
    offer TEXT NOT NULL COLLATE NOCASE,
    sku TEXT NOT NULL COLLATE NOCASE,
    version TEXT NOT NULL,
    major INTEGER NOT NULL, minor INTEGER NOT NULL, patch INTEGER NOT NULL,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    virtual_size_bytes INTEGER NOT NULL,
    source TEXT NOT NULL,            -- built | imported
    recipe TEXT,                     -- recipe name for built versions
    build_seconds REAL,
    exclude_from_latest INTEGER NOT NULL DEFAULT 0,
    target_regions TEXT NOT NULL,    -- JSON list
    published_at TEXT NOT NULL,
    PRIMARY KEY (publisher, offer, sku, version)
);
CREATE TABLE IF NOT EXISTS scale_sets (
    name TEXT PRIMARY KEY COLLATE NOCASE,
    model TEXT NOT NULL,             -- the ARM-shaped JSON document
    generation INTEGER NOT NULL,     -- bumped on every model write
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS instances (
    scale_set TEXT NOT NULL COLLATE NOCASE,
    instance_id INTEGER NOT NULL,
    domain TEXT NOT NULL UNIQUE,      -- libvirt domain name
    computer_name TEXT NOT NULL,
    update_domain INTEGER NOT NULL,
    fault_domain INTEGER NOT NULL,
    profile TEXT NOT NULL,            -- profiles.ref: the virtualMachineProfile applied, image version resolved
    profile_digest TEXT NOT NULL,     -- digest of the scale-set profile it came from
    os_disk TEXT NOT NULL,            -- current OS disk (qcow2 overlay)
    seed TEXT NOT NULL,               -- current NoCloud seed
    ci_instance_id TEXT NOT NULL,     -- cloud-init instance-id of the current OS disk
    ports TEXT NOT NULL,              -- JSON {guest port: host port}, all on 127.0.0.1
    provisioning_state TEXT NOT NULL, -- Creating|Updating|Succeeded|Failed|Deleting
    power_state TEXT NOT NULL,        -- wanted: running|stopped
    boot_id TEXT,
    stamp TEXT,                       -- JSON image stamp read from the guest
    extensions TEXT,                  -- JSON extension statuses read from the guest
    error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (scale_set, instance_id),
    FOREIGN KEY (scale_set) REFERENCES scale_sets(name) ON DELETE CASCADE
);
-- Every OS-disk swap is journalled here before any step is taken (crash safety).
CREATE TABLE IF NOT EXISTS disk_swaps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    scale_set TEXT NOT NULL COLLATE NOCASE,
    instance_id INTEGER NOT NULL,
    kind TEXT NOT NULL,               -- reimage | upgrade | rollback
    phase TEXT NOT NULL,              -- prepared | swapped | booted | done | aborted
    old_os_disk TEXT NOT NULL, old_seed TEXT NOT NULL, old_ci_instance_id TEXT NOT NULL,
    old_profile TEXT NOT NULL, old_digest TEXT NOT NULL,
    new_os_disk TEXT NOT NULL, new_seed TEXT NOT NULL, new_ci_instance_id TEXT NOT NULL,
    new_profile TEXT NOT NULL, new_digest TEXT NOT NULL,
    owner_pid INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    error TEXT
);
-- Applied profiles, by content: instances.profile and disk_swaps.*_profile hold their ref.
CREATE TABLE IF NOT EXISTS profiles (
    ref TEXT PRIMARY KEY,             -- sha256: of the JSON text
    profile TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS disk_swaps_by_instance ON disk_swaps (scale_set, instance_id, phase);
"""


def connect(path: Path) -> sqlite3.Connection:
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
    conn.executescript(SCHEMA)
    for f in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):  # models may hold protectedSettings
        if f.exists():
            f.chmod(0o600)
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception. Nested uses join the
    outer transaction (several records written as one step)."""
    if conn.in_transaction:
        yield conn
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


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
