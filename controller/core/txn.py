"""SQLite transactions as the lab takes them: BEGIN IMMEDIATE, so a writer waits for another
writer up front instead of failing half-way (the connections are in autocommit mode). A
transaction that fails, at COMMIT too, is rolled back: the connection is never left inside it."""
from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from typing import Iterator


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
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # a failed COMMIT (a full disk) may have rolled back already, or not
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:  # the first error is the one to tell
                pass
        raise
