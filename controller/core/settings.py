"""Where a lab keeps its state, and which libvirt it talks to."""
from __future__ import annotations

import os
import stat
import sys
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

    @property
    def files(self) -> Path:
        """Files served to guests for extension fileUris."""
        return self.home / "files"

    def ensure(self) -> "LabPaths":
        """Create the lab's folders, private to its owner (0700): OS disks, keys, the state and
        console logs are nobody else's to read. A looser folder is tightened, with one line said."""
        self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        for d in (self.home, self.gallery, self.disks, self.keys, self.logs, self.run, self.files):
            d.mkdir(exist_ok=True, mode=0o700)
            private(d)
        self.cache.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self


def private(folder: Path) -> None:
    """chmod 0700 unless it already is (then nothing is written: a read-only home still works)."""
    mode = stat.S_IMODE(folder.stat().st_mode)
    if mode != 0o700:
        folder.chmod(0o700)
        print(f"scaleset: {folder} was mode {mode:04o}; now 0700 (private to its owner)", file=sys.stderr)


def lab_paths() -> LabPaths:
    home = os.environ.get("SCALESET_HOME") or os.path.join(
        os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share"), "scaleset-lab"
    )
    return LabPaths(Path(home).absolute())


def libvirt_uri() -> str:
    return os.environ.get("SCALESET_LIBVIRT_URI") or DEFAULT_URI
