"""Instance disks on libvirt's test driver, whose volumes live in memory and hold no bytes: it has
no upload and no resize, so `streams()` stands in for them (uploaded bytes are kept in `UPLOADS`,
a resize makes the volume again, bigger, with its format and backing), and `FakeDisks` is the
fake VM side's view of the lab's pools (volumes made and listed by their paths)."""
from __future__ import annotations

import os
import posixpath
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import libvirt

from controller.virt import disks
from controller.virt.hypervisor import Hypervisor
from controller.virt.storage import GIB, Backing, Pool, Volume, ensure_pool

UPLOADS: dict[tuple[str, str, str], bytes] = {}  # (uri, pool, volume) -> bytes uploaded


REPO = Path(__file__).resolve().parent.parent
PYTHONPATH = f"{REPO / 'tests' / 'subproc'}{os.pathsep}{REPO}"  # a CLI subprocess of a test: with install()


@contextmanager
def streams():
    """Pool.upload_bytes and Pool.resize work on test:// URIs while this is open."""
    restore = install()
    try:
        yield
    finally:
        restore()


def install() -> Callable[[], None]:
    """Pool.upload_bytes and Pool.resize work on test:// URIs from now on; returns the undo."""
    upload_bytes, resize = Pool.upload_bytes, Pool.resize

    def fake_upload(self: Pool, name: str, data: bytes) -> Volume:
        if not self.uri.startswith("test:"):
            return upload_bytes(self, name, data)
        vol = self._create(name, len(data), "raw")
        UPLOADS[(self.uri, self.name, name)] = data
        return vol

    def fake_resize(self: Pool, name: str, size_gb: int) -> Volume:
        vol = self.volume(name)
        if not self.uri.startswith("test:") or vol is None or size_gb * GIB <= vol.capacity:
            return resize(self, name, size_gb)
        back = Backing(vol.backing() or "", 0, vol.backing_format() or "qcow2") if vol.backing() else None
        self.delete(name)
        return self._create(name, size_gb * GIB, vol.format or "raw", back)

    def restore() -> None:
        Pool.upload_bytes, Pool.resize = upload_bytes, resize  # type: ignore[method-assign]

    Pool.upload_bytes, Pool.resize = fake_upload, fake_resize  # type: ignore[method-assign]
    return restore


class FakeDisks:
    """The test driver's pools, found by a volume path's directory (one connection per process)."""

    _hv: Hypervisor | None = None

    @classmethod
    def pool(cls, path: str) -> Pool:
        if cls._hv is None:
            cls._hv = Hypervisor("test:///default")
        folder = posixpath.dirname(path)
        for raw in cls._hv.conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE):
            pool = Pool(cls._hv, raw)
            if pool.path == folder:
                return pool
        raise AssertionError(f"no pool of the test driver holds {path}")

    @classmethod
    def make(cls, path: str, size_gb: int = 1) -> None:
        """A blank qcow2 volume at `path` unless there is one (nothing allocated: the test driver
        counts allocations against its pool's capacity, and a rollout makes many)."""
        pool = cls.pool(path)
        if pool.volume(posixpath.basename(path)) is None:
            pool._create(posixpath.basename(path), size_gb * GIB, "qcow2", allocation=0)

    @classmethod
    def exists(cls, path: str) -> bool:
        return cls.pool(path).volume(posixpath.basename(path)) is not None

    @classmethod
    def names(cls, path: str, prefix: str = "") -> list[str]:
        """Names of the volumes beside `path` (in its pool) that start with `prefix`."""
        return [v.name for v in cls.pool(path).volumes() if v.name.startswith(prefix)]

    @classmethod
    def delete_of(cls, path: str, domain: str) -> None:
        """Every disk volume of `domain` in the pool of `path`."""
        disks.purge(cls.pool(path), domain)


def disks_of(pool: Pool, domain: str) -> list[str]:
    """The disk volumes of `domain` in `pool`, named without the domain (`os-....qcow2`, `lun0.qcow2`)."""
    return sorted(v.name[len(domain) + 1:] for v in pool.volumes() if disks.is_disk_of(domain, v.name))


KEPT_GB = 5  # make_scale_set's data disks: a size no model here asks for (a disk made again is smaller)


def os_disks(inst) -> list[str]:
    """Paths of the OS disk volumes of the instance in its pool (its old ones too, if left)."""
    return sorted(posixpath.join(posixpath.dirname(inst.os_disk), n)
                  for n in FakeDisks.names(inst.os_disk, f"{inst.domain}-os-"))


def seeds(inst) -> list[str]:
    return sorted(posixpath.join(posixpath.dirname(inst.os_disk), n)
                  for n in FakeDisks.names(inst.os_disk, f"{inst.domain}-seed-"))


def size_gb(path: str) -> int | None:
    """The virtual size of the volume at `path` in GiB (None: there is none)."""
    vol = FakeDisks.pool(path).volume(posixpath.basename(path))
    return vol.capacity // GIB if vol is not None else None


def scratch_pool() -> Iterator[Pool]:
    """A dir pool of a test's own on the test driver (its state is shared by the process), gone after."""
    hv = Hypervisor("test:///default")
    name = f"t-{uuid.uuid4().hex[:8]}"
    pool = ensure_pool(hv, name, f"/pools/{name}")
    yield pool
    for v in pool.volumes():
        pool.delete(v.name)
    raw = hv.conn.storagePoolLookupByName(name)
    raw.destroy()
    raw.undefine()
    hv.close()
