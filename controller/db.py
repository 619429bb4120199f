"""The lab's SQLite database: one file under $SCALESET_HOME, the source of truth."""
from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

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
"""


def connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.executescript(SCHEMA)
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
