"""Read a file out of an image version without booting or mounting it (debugfs on partition 1)."""
from __future__ import annotations

import tempfile
from pathlib import Path

from controller.core import procs
from controller.core.errors import ImageError

from .bootdisk import PART_START, SECTOR


def read_file(image: Path, guest_path: str) -> bytes:
    with tempfile.TemporaryDirectory(prefix="scaleset-inspect-") as tmp:
        raw = Path(tmp) / "disk.raw"
        procs.run(["qemu-img", "convert", "-q", "-O", "raw", str(image), str(raw)], check=True)
        res = procs.run(["debugfs", "-R", f"cat {guest_path}", f"{raw}?offset={PART_START * SECTOR}"],
                             capture_output=True)
    if res.returncode != 0 or b"File not found" in res.stderr:
        raise ImageError("path", f"{guest_path} not found in {image}: {res.stderr.decode(errors='replace').strip()}",
                         "FileNotFound")
    return res.stdout
