"""One root for every error a user can cause or meet: `LabError`.

Each carries the field (a JSON path, a flag or a file) it is about, the reason, Azure's error
code and the HTTP status the API answers with. The CLI prints `ERROR: (Code) field: reason`.
"""
from __future__ import annotations

import errno
import os
import signal
import sqlite3

# HTTP status per Azure error code; a code not listed is a 400 (bad input).
STATUS = {
    "NotFound": 404, "ResourceNotFound": 404, "ImageVersionNotFound": 404, "GalleryImageNotFound": 404,
    "Conflict": 409, "OperationNotAllowed": 409, "RollingUpgradeInProgress": 409, "ConcurrentUpdate": 409,
    "ImageVersionInUse": 409, "ImageNotFound": 404, "RegionInUse": 409, "HostUnreachable": 409,
    "InsufficientStorage": 507, "AccessDenied": 403, "ReadOnlyStorage": 500, "StateCorrupt": 500,
    "HypervisorError": 502, "InternalError": 500, "OperationPreempted": 409,
    "AuthenticationFailed": 401, "InvalidAuthenticationToken": 401, "ExpiredAuthenticationToken": 401,
    "SubscriptionNotFound": 404, "ResourceGroupNotFound": 404, "InvalidResourceType": 404,
    "MissingApiVersionParameter": 400, "RequestEntityTooLarge": 413, "UnsupportedMediaType": 415,
    "MethodNotAllowed": 405, "Forbidden": 403, "PreconditionFailed": 412,
}


LOW_SPACE = 256 * 1024  # bytes free under which an I/O error of the database is a full disk


class LabError(Exception):
    """`field` names what was wrong (JSON path, flag or file), `code` is Azure's error code."""

    default_code = "InvalidParameter"

    def __init__(self, field: str, reason: str, code: str | None = None) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field, self.reason, self.code = field, reason, code or self.default_code

    @property
    def path(self) -> str:
        return self.field

    @property
    def status(self) -> int:
        return STATUS.get(self.code, 400)

    def to_json(self) -> dict:
        return {"error": {"code": self.code, "target": self.field, "message": str(self)}}


class ModelError(LabError):
    """Invalid model or request: the field is the JSON path or the flag."""


class ImageError(LabError):
    """Bad input to the image pipeline or a failed build step."""


class HypervisorError(LabError):
    """libvirt refused or failed."""

    default_code = "HypervisorError"

    def __init__(self, reason: str, field: str = "libvirt") -> None:
        super().__init__(field, reason)


class Interrupted(LabError):
    """SIGINT or SIGTERM: the command stopped; `scaleset repair` finishes what it left."""

    default_code = "OperationPreempted"

    def __init__(self, signum: int) -> None:
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        super().__init__("", f"interrupted by {name}; run scaleset repair to finish or undo what was under way")
        self.signum = signum


def from_os_error(exc: OSError, what: str | None = None) -> LabError:
    """An OS error as the lab's error, naming the file."""
    name = what or exc.filename or "file"
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return LabError(str(name), f"{reason}: free some space and run the command again", "InsufficientStorage")
    if exc.errno == errno.EROFS:
        return LabError(str(name), f"{reason}: SCALESET_HOME must be writable", "ReadOnlyStorage")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return LabError(str(name), reason, "AccessDenied")
    if exc.errno == errno.ENAMETOOLONG:
        return LabError(str(name), reason, "InvalidParameter")
    return LabError(str(name), reason, "InternalError")


def from_db_error(exc: sqlite3.Error, db_path: object) -> LabError:
    """A SQLite error as the lab's error, naming the database file."""
    text = str(exc)
    if "disk is full" in text or "database or disk is full" in text:
        return LabError(str(db_path), f"{text}: free some space and run the command again", "InsufficientStorage")
    if "readonly" in text or "read-only" in text:
        return LabError(str(db_path), f"{text}: SCALESET_HOME must be writable", "ReadOnlyStorage")
    folder = os.path.dirname(str(db_path))
    try:
        fs = os.statvfs(folder)
        read_only, free = bool(fs.f_flag & os.ST_RDONLY), fs.f_bavail * fs.f_frsize
    except OSError:
        read_only, free = False, None
    if "disk I/O error" in text and free is not None and free < LOW_SPACE:  # SQLite's word for a full disk
        return LabError(str(db_path), f"{text}: {free // 1024} KiB free; free some space and run the command again",
                        "InsufficientStorage")
    if "unable to open" in text:
        if read_only:
            return LabError(str(db_path), f"{text}: the file system is read-only; SCALESET_HOME must be writable",
                            "ReadOnlyStorage")
        return LabError(str(db_path), f"{text}: {folder} must exist and be writable", "AccessDenied")
    if isinstance(exc, sqlite3.IntegrityError):
        return LabError(str(db_path), f"conflicting write: {text}; run the command again", "Conflict")
    if "locked" in text or "busy" in text:
        return LabError(str(db_path), f"{text}: another command holds the database; run it again", "Conflict")
    if isinstance(exc, sqlite3.DatabaseError) and ("not a database" in text or "malformed" in text):
        return LabError(str(db_path), f"{text}: the lab's state is damaged; restore it from a copy or move it "
                                      "away to start afresh", "StateCorrupt")
    return LabError(str(db_path), text, "InternalError")
