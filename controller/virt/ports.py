"""Host ports for 127.0.0.1 forwards, leased under a file lock so concurrent labs never collide."""
from __future__ import annotations

import fcntl
import json
import os
import socket
import stat
import tempfile
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from controller.core.errors import LabError
from controller.core.files import atomic_write

PORT_RANGE = (20000, 39999)


def runtime_dir() -> Path:
    """The folder of the user's port registry: `$SCALESET_PORTS_DIR` if set, else
    /tmp/scaleset-lab-<uid> -- one fixed place whatever the environment (TMPDIR, a login
    session's XDG_RUNTIME_DIR), so every lab of the user shares it and no two collide."""
    override = os.environ.get("SCALESET_PORTS_DIR")
    if override:
        folder = Path(override)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        return folder
    return private_dir(Path("/tmp") / f"scaleset-lab-{os.getuid()}")


def private_dir(folder: Path) -> Path:
    """`folder`, created 0700; an existing one must be a real folder of this user (else it is
    refused: someone else could read or plant leases); a looser mode is tightened."""
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        pass
    st = folder.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise LabError(str(folder), f"is not a folder owned by uid {os.getuid()}; remove it and run the "
                                    "command again", "AccessDenied")
    if stat.S_IMODE(st.st_mode) != 0o700:
        folder.chmod(0o700)
    return folder


LEGACY = Path(tempfile.gettempdir()) / f"scaleset-lab-ports-{os.getuid()}.json"  # before: world-readable


def default_registry() -> Path:
    return runtime_dir() / "ports.json"


def _read(registry: Path) -> dict[str, str]:
    """The leases in `registry`: only from a regular file of this user (not a link someone planted)."""
    try:
        fd = os.open(registry, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return {}
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
            return {}
        try:
            leases = json.loads(f.read())
        except (ValueError, OSError):
            return {}
    return leases if isinstance(leases, dict) else {}


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class PortAllocator:
    """Leases are {port: owner}; an owner is "<lab home>#<name>". Leases of labs whose home
    no longer exists are reclaimed."""

    def __init__(self, registry: Path | None = None, port_range: tuple[int, int] = PORT_RANGE) -> None:
        self.registry = registry or default_registry()
        self.legacy = LEGACY if registry is None else None  # leases of labs started before the move
        self.lo, self.hi = port_range

    @contextmanager
    def _locked(self) -> Iterator[dict[str, str]]:
        self.registry.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(f"{self.registry}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "r+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            source = self.registry if self.registry.exists() or self.legacy is None else self.legacy
            leases = _read(source)
            homes = {o.split("#", 1)[0] for o in leases.values()}
            alive = {h for h in homes if Path(h).exists()}
            leases = {p: o for p, o in leases.items() if o.split("#", 1)[0] in alive}
            yield leases
            atomic_write(self.registry, json.dumps(leases, sort_keys=True), 0o600)

    def allocate(self, owner: str, count: int) -> list[int]:
        with self._locked() as leases:
            mine = sorted(int(p) for p, o in leases.items() if o == owner)
            if len(mine) >= count:
                return mine[:count]
            span = self.hi - self.lo + 1
            first = self.lo + (zlib.crc32(owner.encode()) % span)  # spread labs over the range
            for i in range(span):
                if len(mine) >= count:
                    break
                port = self.lo + (first - self.lo + i) % span
                if str(port) not in leases and _free(port):
                    leases[str(port)] = owner
                    mine.append(port)
            if len(mine) < count:
                raise LabError("ports", f"no free port on 127.0.0.1 in {self.lo}-{self.hi}", "InsufficientCapacity")
            return mine

    def release(self, owner: str) -> None:
        with self._locked() as leases:
            for p in [p for p, o in leases.items() if o == owner]:
                del leases[p]

    def leases(self) -> dict[int, str]:
        with self._locked() as leases:
            return {int(p): o for p, o in leases.items()}
