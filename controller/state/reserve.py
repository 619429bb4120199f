"""Space set aside next to the database so that a delete commits on a full disk.

SQLite in WAL mode writes every change, a DELETE too, as new frames of the WAL: on a full
disk nothing commits, not even what would free space. `keep` sets RESERVE_BYTES aside in
`state.db-reserve` (once, where there is room); `freeing` gives it up when a write that frees
space (deleting a scale set) meets a full disk, and tries that write once more.
"""
from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from controller.core.errors import LabError, from_db_error

RESERVE_BYTES = 4 << 20
T = TypeVar("T")


def path_of(db: Path) -> Path:
    return db.with_name(db.name + "-reserve")


def keep(db: Path) -> None:
    """Set the reserve aside unless it is there; on a disk without room, none (and no partial file)."""
    path = path_of(db)
    if path.exists():
        return
    tmp = path.with_name(path.name + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.posix_fallocate(fd, 0, RESERVE_BYTES)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass


def _full(exc: BaseException, db: Path) -> bool:
    if isinstance(exc, sqlite3.Error):
        return from_db_error(exc, db).code == "InsufficientStorage"
    if isinstance(exc, LabError):
        return exc.code == "InsufficientStorage"
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def freeing(db: Path, write: Callable[[], T]) -> T:
    """write(); on a full disk the reserve is given up and write() tried once more. It is set
    aside again afterwards where the write made room."""
    try:
        return write()
    except (sqlite3.Error, OSError, LabError) as exc:
        reserve = path_of(db)
        if not _full(exc, db) or not reserve.exists():
            raise
        reserve.unlink(missing_ok=True)
    out = write()
    keep(db)
    return out
