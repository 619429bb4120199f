"""Files the lab writes for others to read: whole or not at all.

A temporary file in the same directory, fsync, then os.replace: a reader (a guest's web
fetch, another command, QEMU) sees the old file or the new one, never a part, whatever
fails half-way (a full disk, a signal, a kill). The temporary file is removed on failure.
"""
from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

TMP_PREFIX = ".scaleset-tmp-"  # short: the final name may already use all of NAME_MAX


def _tmp_name(path: Path) -> Path:
    return path.with_name(f"{TMP_PREFIX}{secrets.token_hex(6)}")


def _sync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def _staged(path: Path, mode: int) -> Iterator[tuple[BinaryIO, Path]]:
    """A new temporary file next to `path` (mode `mode`, umask ignored), synced on success,
    removed on any failure."""
    tmp = _tmp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            fd = -1
            yield f, tmp
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        if fd >= 0:
            os.close(fd)
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_open(path: Path, mode: int = 0o600) -> Iterator[BinaryIO]:
    """Write `path` through the yielded binary file; it replaces `path` only if the block ends
    without an exception."""
    path = Path(path)
    with _staged(path, mode) as (f, tmp):
        yield f
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _sync_dir(path.parent)


def atomic_write(path: Path, data: bytes | str, mode: int = 0o600) -> Path:
    """Replace `path` with `data` atomically (mode `mode`)."""
    with atomic_open(path, mode) as f:
        f.write(data.encode() if isinstance(data, str) else data)
    return Path(path)


def atomic_create(path: Path, data: bytes | str, mode: int = 0o600) -> bool:
    """Create `path` with `data` unless it exists (then leave it and return False): of two
    processes racing, exactly one creates it, and it is never seen half-written."""
    path = Path(path)
    with _staged(path, mode) as (f, tmp):
        f.write(data.encode() if isinstance(data, str) else data)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    _sync_dir(path.parent)
    return True
