"""Host ports for 127.0.0.1 forwards, leased under a file lock so concurrent labs never collide."""
from __future__ import annotations

import fcntl
import json
import os
import socket
import tempfile
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

PORT_RANGE = (20000, 39999)


def default_registry() -> Path:
    base = os.environ.get("SCALESET_PORTS_DIR") or tempfile.gettempdir()
    return Path(base) / f"scaleset-lab-ports-{os.getuid()}.json"


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
        self.lo, self.hi = port_range

    @contextmanager
    def _locked(self) -> Iterator[dict[str, str]]:
        self.registry.parent.mkdir(parents=True, exist_ok=True)
        with open(str(self.registry) + ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                leases = json.loads(self.registry.read_text()) if self.registry.exists() else {}
            except (json.JSONDecodeError, OSError):
                leases = {}
            homes = {o.split("#", 1)[0] for o in leases.values()}
            alive = {h for h in homes if Path(h).exists()}
            leases = {p: o for p, o in leases.items() if o.split("#", 1)[0] in alive}
            yield leases
            tmp = self.registry.with_suffix(".tmp")
            tmp.write_text(json.dumps(leases, sort_keys=True))
            os.replace(tmp, self.registry)

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
                raise RuntimeError(f"no free port in {self.lo}-{self.hi}")
            return mine

    def release(self, owner: str) -> None:
        with self._locked() as leases:
            for p in [p for p, o in leases.items() if o == owner]:
                del leases[p]

    def leases(self) -> dict[int, str]:
        with self._locked() as leases:
            return {int(p): o for p, o in leases.items()}
