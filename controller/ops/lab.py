"""The lab a command works on: its paths, database, libvirt connections (one per host) and gallery."""
from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property

from controller.core.errors import HypervisorError, ImageError, ModelError
from controller.core.settings import LabPaths, lab_paths, libvirt_uri
from controller.model.instance import Instance
from controller.model.region import Host, Region, local_host
from controller.model.scaleset import ImageReference, ScaleSet
from controller.state.db import connect
from controller.state.instances import InstanceStore
from controller.state.journal import SwapJournal
from controller.state.regions import RegionStore
from controller.state.replicas import ReplicaStore
from controller.state.scalesets import ScaleSetStore
from controller.virt import accel as accel_mod
from controller.virt import disks
from controller.virt.hosts import TIMEOUT, Connections, HostStates
from controller.virt.hypervisor import Hypervisor
from controller.virt.reach import Route, direct, endpoint_for, tunnelled
from controller.virt.storage import GIB, Pool, ensure_pool, find_pool
from controller.virt.tunnel import SshEndpoint, Tunnels
from images.gallery import Gallery, ImageVersion

log = logging.getLogger("scaleset.virt")
IMAGE_REF = "$.properties.virtualMachineProfile.storageProfile.imageReference"


def build_command(ref: ImageReference) -> str:
    """The command that makes the image a reference names (a version for `latest`: 1.0.0)."""
    version = "1.0.0" if ref.version.lower() == "latest" else ref.version
    return (f"scaleset image build --publisher {ref.publisher} --offer {ref.offer or 'OFFER'} --sku {ref.sku} "
            f"--version {version}")


@dataclass
class Lab:
    paths: LabPaths
    uri: str
    _accel: accel_mod.Accel | None = field(default=None, repr=False)
    host_timeout: float = TIMEOUT  # seconds a remote host has to answer before its instances are Unknown
    _endpoints: dict[str, SshEndpoint | None] = field(default_factory=dict, repr=False)
    _endpoints_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _pools: dict[tuple[str | None, str | None], Pool] = field(default_factory=dict, repr=False)
    _pools_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _hv: Hypervisor | None = field(default=None, repr=False)
    _hv_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def open(cls, accel: accel_mod.Accel | None = None) -> Lab:
        return cls(lab_paths().ensure(), libvirt_uri(), accel)

    @cached_property
    def local(self) -> Host:
        """The lab's own libvirt as a region host, with its `dir` pool (computed once)."""
        return local_host(self.paths.home, self.uri)

    @cached_property
    def db(self) -> sqlite3.Connection:
        return connect(self.paths.db)

    @property
    def hv(self) -> Hypervisor:
        """The lab's own libvirt (the `local` region's host), opened on first use. One that died
        (libvirt closed it: the daemon missed its keepalives for 20 s, or restarted) is opened
        again, so one stall of the daemon does not fail the rest of a long command."""
        with self._hv_lock:
            if self._hv is not None and not self._hv.alive():
                dead, self._hv = self._hv, None
                log.warning("the connection to libvirt at %s died; opening it again", self.uri)
                dead.close()
            if self._hv is None:
                self._hv = Hypervisor(self.uri)
            return self._hv

    @cached_property
    def hosts(self) -> Connections:
        """One connection per host URI, opened on first use and reused (the local one is `hv`)."""
        return Connections(lambda: self.hv, self.uri, self.host_timeout)

    def hv_at(self, uri: str | None) -> Hypervisor:
        """The connection to the host at `uri` (None: local); HypervisorError naming a host that
        does not answer within `host_timeout`."""
        return self.hosts.get(uri)

    def hv_of(self, inst: Instance) -> Hypervisor:
        """The connection to the host the instance lives on."""
        return self.hosts.get(inst.host_uri)

    @cached_property
    def tunnels(self) -> Tunnels:
        """SSH connections to other hosts, for their guests' forwards (one per host, reused); a
        host that does not answer fails within `host_timeout` (two tries of half of it)."""
        return Tunnels.for_lab(self.paths, timeout=self.host_timeout / 2)

    def ssh_endpoint(self, uri: str) -> SshEndpoint | None:
        """The SSH server reaching host `uri`'s 127.0.0.1: its region entry's `ssh`, else the
        URI's (qemu+ssh); None when the host shares this machine's loopback. Read once per host,
        on a read-only connection of its own (safe from any thread); HypervisorError if none."""
        with self._endpoints_lock:
            if uri in self._endpoints:
                return self._endpoints[uri]
        conn = sqlite3.connect(f"file:{self.paths.db}?mode=ro", uri=True, timeout=30)
        conn.row_factory = sqlite3.Row
        try:
            hosts = RegionStore(conn, self.local).hosts_at(uri)
        finally:
            conn.close()
        endpoint = endpoint_for(uri, next((h.ssh for h in hosts if h.ssh), None))
        with self._endpoints_lock:
            self._endpoints[uri] = endpoint
        return endpoint

    def here(self, inst: Instance) -> bool:
        """Whether the instance lives on the lab's own libvirt (which shares this machine's files)."""
        return inst.host_uri in (None, self.uri)

    def route(self, inst: Instance) -> Route:
        """How to reach the instance's forwarded guest ports: directly on this machine, or
        through an SSH tunnel to its host (HypervisorError if there is no way)."""
        uri = inst.host_uri
        endpoint = None if uri is None or uri == self.uri else self.ssh_endpoint(uri)
        return direct(inst.ports) if endpoint is None else tunnelled(inst.ports, self.tunnels, endpoint)
    def pool_at(self, uri: str | None, pool: str | None = None, path: str | None = None) -> Pool:
        """The storage pool `pool` the lab keeps instance disks in on host `uri` (None, None: the
        local `dir` pool); missing, it is made at `path` (the local one at <home>/pool), without
        a path it is an error. Looked up once per host connection and pool."""
        local = self.local
        key = (None, None) if uri in (None, self.uri) and pool in (None, local.pool) else (uri, pool)
        if key != (None, None) and pool is None:
            raise HypervisorError(f"no storage pool recorded for host {uri}", field=uri or "")
        hv = self.hv_at(key[0])  # a reopened connection (the host was down) looks the pool up again
        with self._pools_lock:
            found = self._pools.get(key)
        if found is None or found.hv is not hv:
            found = ensure_pool(hv, local.pool, local.pool_path) if key == (None, None) else ensure_pool(hv, pool, path)
            with self._pools_lock:
                self._pools[key] = found
        return found

    def pool_if_any(self, uri: str | None, pool: str | None) -> Pool | None:
        """pool_at, or None if that host has no such pool (nothing of the lab's can be in it)."""
        local = self.local
        if (uri in (None, self.uri) and pool in (None, local.pool)) or (uri, pool) in self._pools:
            return self.pool_at(uri, pool)
        if pool is None or find_pool(self.hv_at(uri), pool) is None:
            return None
        return self.pool_at(uri, pool)

    def pool_dir(self, host: Host | None) -> str:
        """The folder of `host`'s pool (None: the local one) on that host, where its volumes are
        (the pool is made at the host's poolPath if missing)."""
        if host is None:
            return self.pool_at(None).path
        return self.pool_at(host.uri, host.pool, host.pool_path).path

    def pool_of(self, inst: Instance) -> Pool:
        """The pool of the host the instance lives on (its disks are volumes there)."""
        return self.pool_at(inst.host_uri, inst.host_pool)

    def remover(self, inst: Instance) -> Callable[..., None]:
        """Deletes the instance's disks at the paths given (volumes of its host pool). A host that
        does not answer keeps them: the settle is recorded, reconcile's sweep of the journal's dead
        disks deletes them later."""
        def remove(*paths: str) -> None:
            try:
                disks.delete(self.pool_of(inst), *paths)
            except HypervisorError:
                pass
        return remove

    def states(self, insts: Iterable[Instance]) -> HostStates:
        """The domain state of each instance, read from its host (all hosts at once; a host that
        does not answer makes its instances' states `unknown`, with the reason)."""
        return self.hosts.states((i.host_uri, i.domain) for i in insts)

    def host_pools(self, ss: ScaleSet | None, recorded: Iterable[tuple[str | None, str | None]] = ()
                   ) -> list[tuple[str | None, str | None]]:
        """Every (host URI, pool) a set's disks may be in: the local pool (None, None), its region's
        hosts' and `recorded` (its instances' host_uri and host_pool), each once."""
        pairs: list[tuple[str | None, str | None]] = [(None, None)]
        local = self.local.pool
        hosts = self.region_of(ss).hosts if ss is not None else ()
        for uri, pool in [(h.uri, h.pool) for h in hosts] + list(recorded):
            pair = (None, None) if uri is None or (uri, pool) == (self.uri, local) else (uri, pool)
            if pair not in pairs:
                pairs.append(pair)
        return pairs

    @cached_property
    def gallery(self) -> Gallery:
        """The gallery; a version counts in a configured region once it is replicated to its hosts."""
        return Gallery(self.paths, self.db, ReplicaStore(self.db).ready)

    @property
    def accel(self) -> accel_mod.Accel:
        if self._accel is None:
            self._accel = accel_mod.detect()
        return self._accel

    @property
    def models(self) -> ScaleSetStore:
        return ScaleSetStore(self.db)

    @property
    def instances(self) -> InstanceStore:
        return InstanceStore(self.db)

    @property
    def journal(self) -> SwapJournal:
        return SwapJournal(self.db)

    @property
    def regions(self) -> RegionStore:
        """Configured regions; `local` is this lab's libvirt (`uri`) with its own dir pool."""
        return RegionStore(self.db, self.local)

    def region_of(self, ss: ScaleSet) -> Region:
        """The region of the scale set's location (a label on the local host if none is configured)."""
        return self.regions.get(ss.location)

    def resolve_image(self, ss: ScaleSet, verify: bool = False) -> ImageVersion:
        """The image version the model asks for in the scale set's region (ModelError if none)."""
        storage = ss.properties.virtualMachineProfile.storageProfile
        ref, size = storage.imageReference, storage.osDisk.diskSizeGB
        if ref.id is not None:
            self._gallery_image(ref)
        try:
            iv = self.gallery.resolve(ref.publisher, ref.offer, ref.sku, ref.version, ss.location)
            iv = self.gallery.verify(iv) if verify else iv
        except ImageError as exc:
            hint = f" Make it with: {build_command(ref)}" if exc.code == "ImageNotFound" else ""
            raise ModelError(IMAGE_REF, exc.reason + hint, exc.code) from None
        if size is not None and size * GIB < iv.virtual_size_bytes:
            raise ModelError(disks.OS_DISK_SIZE, f"{size} GB is smaller than image {iv.version} "
                                                 f"({iv.virtual_size_bytes / GIB:g} GB)")
        return iv

    def _gallery_image(self, ref: ImageReference) -> None:
        """An imageReference.id's publisher, offer and sku as published, in place: the one offer
        the gallery has for (publisher, sku), as the gallery API maps them."""
        found = {(iv.publisher, iv.offer, iv.sku) for iv in self.gallery.list()
                 if (iv.publisher.lower(), iv.sku.lower()) == (ref.publisher.lower(), ref.sku.lower())}
        if not found:
            raise ModelError(IMAGE_REF + ".id", f"The gallery image '{ref.sku}' of gallery '{ref.publisher}' was not "
                                                f"found. Make it with: {build_command(ref)}", "GalleryImageNotFound")
        if len(found) > 1:
            urns = ", ".join(":".join(t) for t in sorted(found))
            raise ModelError(IMAGE_REF + ".id", f"gallery image '{ref.sku}' stands for more than one offer ({urns}): "
                                                "name the image by publisher, offer and sku", "Conflict")
        ref.publisher, ref.offer, ref.sku = found.pop()

    def image(self, ref: dict, verify: bool = False) -> ImageVersion:
        try:
            iv = self.gallery.get(ref["publisher"], ref["offer"], ref["sku"], ref["version"])
            return self.gallery.verify(iv) if verify else iv
        except ImageError as exc:
            raise ModelError(IMAGE_REF, exc.reason, exc.code) from None

    def close(self) -> None:
        if "tunnels" in self.__dict__:
            self.tunnels.close()
        if "hosts" in self.__dict__:
            self.hosts.close()
        if self._hv is not None:
            self._hv.close()
            self._hv = None
        if "db" in self.__dict__:
            self.db.close()
