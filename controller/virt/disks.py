"""An instance's disks as volumes of its host's storage pool, one code path for every host (the
local one is the lab's own `dir` pool): the OS disk (a qcow2 overlay), the NoCloud seed, the
data disks. Nothing here opens a file: every call goes through storage.py.

Names are flat (a `dir` pool has no folders) and begin with the domain name:
`<domain>-os-<8 hex>.qcow2`, `<domain>-seed-<12 hex>.iso`, `<domain>-lun<L>.qcow2`. An
instance's `os_disk` and `seed` hold the volume's path as its host sees it (Volume.path), so the
journal and the domain XML keep working with paths; a path outside the pool is never touched.
"""
from __future__ import annotations

import posixpath
import random
import re
import secrets

from controller.core.errors import LabError, ModelError
from controller.model.scaleset import DataDisk
from controller.virt.storage import GIB, Backing, Pool, Volume

OS_DISK_SIZE = "$.properties.virtualMachineProfile.storageProfile.osDisk.diskSizeGB"
_NAMES = random.Random(secrets.randbits(64))  # names need to be unique, not secret: no syscall each
_KINDS = r"-(?:os-[0-9a-f]{8}\.qcow2|seed-[0-9a-f]{12}\.iso|lun[0-9]+\.qcow2)"


def os_disk_name(domain: str) -> str:
    """A new, unique OS disk name (the old disk stays until the instance is settled)."""
    return f"{domain}-os-{_NAMES.getrandbits(32):08x}.qcow2"


def seed_name(domain: str, ci_instance_id: str) -> str:
    return f"{domain}-seed-{ci_instance_id[-12:]}.iso"


def data_disk_name(domain: str, lun: int) -> str:
    return f"{domain}-lun{lun}.qcow2"


def is_disk_of(domain: str, name: str) -> bool:
    """Whether volume `name` is one of the disks this module names for `domain`."""
    return re.fullmatch(re.escape(domain) + _KINDS, name) is not None


def domain_of(name: str) -> str | None:
    """The domain whose disk volume `name` is (None: no disk this module names)."""
    m = re.fullmatch("(.+?)" + _KINDS, name)
    return m.group(1) if m else None


def path_in(pool: Pool, name: str) -> str:
    """The path volume `name` has (or will have) in `pool` on its host."""
    return posixpath.join(pool.path, name)


def _name(pool: Pool, path: str) -> str | None:
    """The volume name of `path` if it is a path of `pool` (None: another pool's, or no path)."""
    folder, name = posixpath.split(path)
    return name if path and folder == pool.path else None


def volume(pool: Pool, path: str) -> Volume | None:
    """The volume at `path` in `pool`, None if there is none."""
    name = _name(pool, path)
    return pool.volume(name) if name else None


def exists(pool: Pool, path: str) -> bool:
    return volume(pool, path) is not None


def delete(pool: Pool, *paths: str) -> None:
    """Delete the volumes at `paths` (missing ones, empty paths and paths outside the pool: skipped)."""
    for p in paths:
        name = _name(pool, p)
        if name:
            pool.delete(name)


def purge(pool: Pool, domain: str) -> list[str]:
    """Delete every disk of `domain` in `pool` (OS disks, seeds, data disks); returns their names."""
    gone = [v.name for v in pool.volumes() if is_disk_of(domain, v.name)]
    for name in gone:
        pool.delete(name)
    return gone


def create_os_disk(pool: Pool, path: str, backing: Volume | Backing, size_gb: int | None = None) -> Volume:
    """A qcow2 overlay on the image version at `path` (kept if it is there): no copy, milliseconds
    whatever the image size; `size_gb` (osDisk.diskSizeGB) makes it bigger than the image (the
    guest grows its root at boot), never smaller."""
    if size_gb is not None and size_gb * GIB < backing.capacity:
        raise ModelError(OS_DISK_SIZE, f"{size_gb} GB is smaller than the image ({backing.capacity / GIB:g} GB)")
    return volume(pool, path) or pool.create_overlay(_required(pool, path), backing, size_gb)


def write_seed(pool: Pool, path: str, iso: bytes) -> Volume:
    """The seed ISO's bytes as the volume at `path` (kept if it is there)."""
    return volume(pool, path) or pool.upload_bytes(_required(pool, path), iso)


def _required(pool: Pool, path: str) -> str:
    name = _name(pool, path)
    if name is None:
        raise LabError(path, f"is not a volume path of pool {pool.name} on {pool.uri} (its volumes are under "
                             f"{pool.path})", "InternalError")
    return name


def data_disk_paths(pool: Pool, domain: str, disks: list[DataDisk]) -> dict[int, str]:
    """LUN -> the data disk's path in `pool`."""
    return {d.lun: path_in(pool, data_disk_name(domain, d.lun)) for d in disks}


def ensure_data_disks(pool: Pool, domain: str, disks: list[DataDisk]) -> None:
    """Create the data disks the profile names and the instance lacks; existing ones are kept."""
    for d in disks:
        if pool.volume(data_disk_name(domain, d.lun)) is None:
            pool.create_blank(data_disk_name(domain, d.lun), d.diskSizeGB)


def grow_data_disks(pool: Pool, domain: str, disks: list[DataDisk]) -> None:
    """Data disks the profile makes bigger grow (never shrink); the guest's filesystem on them is its
    own to grow, as in Azure. Only while the domain is off (qemu holds a lock on its disks)."""
    for d in disks:
        vol = pool.volume(data_disk_name(domain, d.lun))
        if vol is not None and vol.capacity < d.diskSizeGB * GIB:
            pool.resize(vol.name, d.diskSizeGB)
