"""qcow2 files: validation of imports, checksums. Thin wrappers over qemu-img (instance disks are
pool volumes: controller/virt/disks.py)."""
from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from controller.core.errors import ImageError

QCOW2_MAGIC = b"QFI\xfb"


@dataclass(frozen=True)
class DiskInfo:
    virtual_size: int
    actual_size: int


def _qemu_img(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["qemu-img", *args], capture_output=True, text=True)


def inspect(path: Path, field: str = "file") -> DiskInfo:
    """Check that `path` is a whole, self-contained qcow2 and return its sizes."""
    if not path.is_file():
        raise ImageError(field, f"{path} does not exist or is not a regular file", "FileNotFound")
    with path.open("rb") as f:
        magic = f.read(4)
    if magic != QCOW2_MAGIC:
        raise ImageError(field, f"{path} is not a qcow2 image (no QFI\\xfb magic)", "InvalidImageFormat")
    info = _qemu_img("info", "--output=json", "-f", "qcow2", str(path))
    if info.returncode != 0:
        raise ImageError(field, f"{path} is not a readable qcow2: {info.stderr.strip()}", "InvalidImageFormat")
    meta = json.loads(info.stdout)
    backing = meta.get("backing-filename") or meta.get("full-backing-filename")
    if backing:
        raise ImageError(field, f"{path} has a backing file ({backing}); import a self-contained qcow2", "InvalidImageFormat")
    check = _qemu_img("check", "--output=json", "-f", "qcow2", str(path))
    report: dict = {}
    if check.stdout.strip():
        try:
            report = json.loads(check.stdout)
        except json.JSONDecodeError:
            report = {}
    if check.returncode not in (0, 3) or report.get("corruptions", 0) or report.get("check-errors", 0):
        reason = (check.stderr.strip() or check.stdout.strip() or "qemu-img check failed").splitlines()[0]
        raise ImageError(field, f"{path} is damaged or truncated: {reason}", "InvalidImageFormat")
    end = report.get("image-end-offset")
    size = path.stat().st_size
    if end is not None and size < end:
        raise ImageError(field, f"{path} is truncated: {size} bytes, data ends at {end}", "InvalidImageFormat")
    return DiskInfo(int(meta["virtual-size"]), size)


def sha256_file(path: Path, chunk: int = 4 * 1024 * 1024) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
