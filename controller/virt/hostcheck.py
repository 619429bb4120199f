"""Is a region's host usable: does its libvirt answer (within a timeout: a dead host never hangs
the caller), and is its storage pool there and active (or made, as a `dir` pool, at `pool_path`)."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import libvirt

from controller.core import signals
from controller.core.errors import HypervisorError
from controller.model.region import Host
from controller.virt.hypervisor import Hypervisor
from controller.virt.storage import define_dir_pool

TIMEOUT = 10.0  # seconds a host has to answer


@dataclass(frozen=True)
class HostStatus:
    """`answers`: libvirt answered; `pool`: active | inactive | missing | created (None: no answer)."""

    answers: bool
    pool: str | None = None
    reason: str | None = None  # why the host is not usable; None when it is

    def to_json(self) -> dict:
        return {"answers": self.answers, "pool": self.pool, "reason": self.reason}


def _pool_path(pool: libvirt.virStoragePool) -> str | None:
    target = ET.fromstring(pool.XMLDesc(0)).find("target/path")
    return target.text if target is not None else None


def _inspect(host: Host, create: bool) -> HostStatus:
    hv = Hypervisor(host.uri)
    try:
        try:
            pool = hv.conn.storagePoolLookupByName(host.pool)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_POOL:
                raise
            if not (create and host.pool_path):
                return HostStatus(True, "missing", f"has no storage pool '{host.pool}' (make it, or give "
                                                   "--pool-path to have a dir pool made)")
            define_dir_pool(hv, host.pool, host.pool_path)
            return HostStatus(True, "created")
        if not pool.isActive():
            return HostStatus(True, "inactive", f"storage pool '{host.pool}' is not active "
                                                f"(virsh pool-start {host.pool})")
        path = _pool_path(pool)
        if host.pool_path and path != host.pool_path:
            return HostStatus(True, "active", f"storage pool '{host.pool}' is at {path}, not at {host.pool_path}")
        return HostStatus(True, "active")
    finally:
        hv.close()


def probe(host: Host, create: bool = False, timeout: float | None = None) -> HostStatus:
    """The host's status now; with `create`, a missing pool with a `pool_path` is made (a dir pool).
    `timeout`: seconds for all of it (default TIMEOUT)."""
    timeout = TIMEOUT if timeout is None else timeout
    try:
        return signals.interruptible(_inspect, host, create, timeout=timeout)
    except TimeoutError:
        return HostStatus(False, None, f"no answer from libvirt within {timeout:g} s")
    except HypervisorError as exc:
        return HostStatus(False, None, exc.reason)
    except libvirt.libvirtError as exc:
        return HostStatus(True, None, exc.get_error_message() or str(exc))


def probe_all(hosts: Sequence[Host], create: bool = False, timeout: float | None = None) -> list[HostStatus]:
    """probe() of each host, all at once (so n dead hosts cost one timeout, not n)."""
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(hosts)))) as pool:
        return list(pool.map(lambda h: probe(h, create, timeout), hosts))


def check(host: Host, create: bool = False, timeout: float | None = None) -> HostStatus:
    """probe(), raising HypervisorError (field: the host's URI) unless the host is usable."""
    status = probe(host, create, timeout)
    if status.reason is not None:
        raise HypervisorError(status.reason, field=host.uri)
    return status

