"""Small real files for tests."""
import subprocess
from pathlib import Path


def make_qcow2(path: Path, size: str = "64M", data: bytes | None = None) -> Path:
    """A small real qcow2 (optionally with some data written into it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if data is None:
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), size], check=True)
    else:
        raw = path.with_suffix(".raw")
        raw.write_bytes(data)
        subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(path)], check=True)
        raw.unlink()
    return path
