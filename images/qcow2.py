"""qcow2 files: validation of imports, checksums. Thin wrappers over qemu-img (instance disks are
pool volumes: controller/virt/disks.py).

A published image must be self-contained: no backing file and no external data file (a guest
booted from it would read or write that host file). The header is read first, so qemu-img never
opens a file such an image names."""
from __future__ import annotations

import hashlib
import json
import os
import stat
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

from controller.core import procs
from controller.core.errors import ImageError

QCOW2_MAGIC = b"QFI\xfb"
_EXT_DATA_FILE = 0x44415441  # header extension: the external data file's name
_INCOMPAT_DATA_FILE = 1 << 2
HEADER_READ = 64 * 1024  # bytes of a header read: its extensions end before the first cluster's end


@dataclass(frozen=True)
class DiskInfo:
    virtual_size: int
    actual_size: int


def _qemu_img(*args: str, **kw) -> subprocess.CompletedProcess:
    return procs.run(["qemu-img", *args], capture_output=True, text=True, **kw)


def header_problem(head: bytes) -> str | None:
    """What makes a qcow2 header (its first bytes) unfit to publish: not qcow2, a backing file, an
    external data file; None when there is nothing."""
    if len(head) < 72 or head[:4] != QCOW2_MAGIC:
        return "is not a qcow2 image (no QFI\\xfb magic)"
    version, backing_offset, backing_size, cluster_bits = struct.unpack(">IQII", head[4:24])
    if backing_offset or backing_size:
        return "has a backing file; import a self-contained qcow2"
    if version < 3:
        return None
    if len(head) < 104:
        return "is a truncated qcow2 image (short header)"
    incompatible = struct.unpack(">Q", head[72:80])[0]
    if incompatible & _INCOMPAT_DATA_FILE:
        return "has an external data file (qcow2 data_file); import a self-contained qcow2"
    at = struct.unpack(">I", head[100:104])[0]
    while at + 8 <= len(head):
        kind, length = struct.unpack(">II", head[at:at + 8])
        if kind == 0:
            return None
        if kind == _EXT_DATA_FILE:
            return "has an external data file (qcow2 data_file); import a self-contained qcow2"
        at += 8 + (length + 7) // 8 * 8
    return "is a truncated qcow2 image (header extensions run past its first bytes)"


def read_header(path: Path) -> bytes:
    """The first bytes of a regular file (OSError for anything else: a FIFO is not waited on)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise IsADirectoryError(f"{path} is not a regular file")
        return os.pread(fd, HEADER_READ, 0)
    finally:
        os.close(fd)


def inspect(path: Path, field: str = "file", name: str | None = None) -> DiskInfo:
    """Check that `path` is a whole, self-contained qcow2 and return its sizes; errors name the
    file `name` (default: `path`)."""
    path = Path(path)
    shown = name or str(path)
    try:
        head = read_header(path)
    except OSError:
        raise ImageError(field, f"{shown} does not exist or is not a readable regular file", "FileNotFound") from None
    problem = header_problem(head)
    if problem:
        raise ImageError(field, f"{shown} {problem}", "InvalidImageFormat")
    info = _qemu_img("info", "--output=json", "-f", "qcow2", str(path))
    if info.returncode != 0:
        raise ImageError(field, f"{shown} is not a readable qcow2: {info.stderr.strip()}", "InvalidImageFormat")
    meta = json.loads(info.stdout)
    data = (meta.get("format-specific") or {}).get("data") or {}
    backing = meta.get("backing-filename") or meta.get("full-backing-filename")
    if backing:
        raise ImageError(field, f"{shown} has a backing file ({backing}); import a self-contained qcow2", "InvalidImageFormat")
    if data.get("data-file") or data.get("data_file"):
        raise ImageError(field, f"{shown} has an external data file; import a self-contained qcow2",
                         "InvalidImageFormat")
    check = _qemu_img("check", "--output=json", "-f", "qcow2", str(path))
    report: dict = {}
    if check.stdout.strip():
        try:
            report = json.loads(check.stdout)
        except json.JSONDecodeError:
            report = {}
    if check.returncode not in (0, 3) or report.get("corruptions", 0) or report.get("check-errors", 0):
        reason = (check.stderr.strip() or check.stdout.strip() or "qemu-img check failed").splitlines()[0]
        raise ImageError(field, f"{shown} is damaged or truncated: {reason}", "InvalidImageFormat")
    end = report.get("image-end-offset")
    size = path.stat().st_size
    if end is not None and size < end:
        raise ImageError(field, f"{shown} is truncated: {size} bytes, data ends at {end}", "InvalidImageFormat")
    return DiskInfo(int(meta["virtual-size"]), size)


def sha256_file(path: Path, chunk: int = 4 * 1024 * 1024) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
