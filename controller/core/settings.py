"""Where a lab keeps its state, and which libvirt it talks to."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_URI = "qemu:///system"


@dataclass(frozen=True)
class LabPaths:
    """Every file of a lab lives under `home`."""

    home: Path

    @property
    def db(self) -> Path:
        return self.home / "state.db"

    @property
    def gallery(self) -> Path:
        return self.home / "gallery"

    @property
    def disks(self) -> Path:
        return self.home / "disks"

    @property
    def keys(self) -> Path:
        return self.home / "keys"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def run(self) -> Path:
        return self.home / "run"

    @property
    def cache(self) -> Path:
        """Build cache (package sets by recipe hash); `$SCALESET_CACHE` may share it between labs."""
        override = os.environ.get("SCALESET_CACHE")
        return Path(override) if override else self.home / "cache"

    def ensure(self) -> "LabPaths":
        self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        for d in (self.gallery, self.disks, self.keys, self.logs, self.run, self.cache):
            d.mkdir(parents=True, exist_ok=True)
        self.keys.chmod(0o700)
        return self


def lab_paths() -> LabPaths:
    home = os.environ.get("SCALESET_HOME") or os.path.join(
        os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share"), "scaleset-lab"
    )
    return LabPaths(Path(home).absolute())


def libvirt_uri() -> str:
    return os.environ.get("SCALESET_LIBVIRT_URI") or DEFAULT_URI
