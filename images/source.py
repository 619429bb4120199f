"""A qcow2 file a user names for import (the API's PUT of a version, `scaleset image import`),
checked before the request is accepted. One answer for every file that is not a readable qcow2
image of this machine (missing, unreadable, special, in /proc, the lab's own state): which files
exist is not told. A qcow2 with a backing or an external data file, or a damaged one, is named so."""
from __future__ import annotations

from pathlib import Path

from controller.core.errors import ImageError

from . import qcow2

SYSTEM = (Path("/proc"), Path("/sys"), Path("/dev"))


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def refused(field: str, shown: str) -> ImageError:
    return ImageError(field, f"{shown[:200]} is not a readable qcow2 image file (a regular file of this machine, "
                             "outside the lab's home, /proc, /sys and /dev)", "InvalidParameter")


def check_source(path: Path, field: str, home: Path) -> Path:
    """The resolved path of a readable, regular, self-contained qcow2 outside `home` (the lab's
    state) and /proc, /sys, /dev; else ImageError naming `field`."""
    shown = str(path) if str(path).isprintable() else repr(str(path))[1:-1]
    try:
        real = Path(path).resolve(strict=True)
    except (OSError, RuntimeError):  # missing, unreadable folder, a loop of links
        raise refused(field, shown) from None
    try:
        lab = home.resolve()
    except (OSError, RuntimeError):
        lab = home
    if any(_inside(real, top) for top in (lab, *SYSTEM)):
        raise refused(field, shown)
    try:
        head = qcow2.read_header(real)
    except OSError:
        raise refused(field, shown) from None
    if not head.startswith(qcow2.QCOW2_MAGIC):
        raise refused(field, shown)
    qcow2.inspect(real, field, shown)
    return real
