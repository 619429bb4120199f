"""Storage through libvirt's storage API, the same on every host: pools, volumes, uploads.

Nothing here opens a path of the host the pool is on: bytes go up with `virStorageVolUpload`
and come back with `virStorageVolDownload` over a `virStream` (sparse: holes are sent as holes),
disks are made with the pool's `createXML`. Every libvirt error is a `HypervisorError` naming
the host, the pool and the volume. A host that stops answering fails a call (an upload too) after
about 20 s through the connection's keepalive (hypervisor.py); a dead one at once.

    pool = ensure_pool(hv, "scaleset", "/var/lib/scaleset/pool")
    image = pool.upload("debian-12-1.0.0.qcow2", Path("disk.qcow2"))
    os_disk = pool.create_overlay("web-0-os.qcow2", image, size_gb=8)
"""
from __future__ import annotations

import errno
import hashlib
import io
import os
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from xml.sax.saxutils import escape

import libvirt

from controller.core import signals
from controller.core.errors import HypervisorError, LabError, from_os_error
from controller.virt.hypervisor import Hypervisor

GIB = 1024 ** 3
REFRESH_WAIT = 120.0  # seconds a refresh waits for the pool's other uploads (an image's takes a while)
CHUNK = 256 * 1024  # bytes per stream send / receive: libvirt's stream packet (1 and 4 MiB were no faster)
_ZEROS = bytes(CHUNK)


def _message(exc: libvirt.libvirtError) -> str:
    return exc.get_error_message() or str(exc)


@contextmanager
def _errors(uri: str, pool: str, volume: str | None, action: str) -> Iterator[None]:
    """libvirt's errors as a HypervisorError naming host, pool and volume."""
    try:
        yield
    except libvirt.libvirtError as exc:
        where = f"pool {pool}" + (f", volume {volume}" if volume else "")
        raise HypervisorError(f"{where}: cannot {action}: {_message(exc)}", field=uri) from exc


class Volume:
    """One volume as libvirt described it when looked up (a snapshot of its XML)."""

    def __init__(self, pool: Pool, vol: libvirt.virStorageVol) -> None:
        self.pool, self._vol = pool, vol
        with _errors(pool.uri, pool.name, None, "describe a volume"):
            self.name = vol.name()
            self._xml = ET.fromstring(vol.XMLDesc(0))

    def __repr__(self) -> str:
        return f"Volume({self.pool.uri} {self.pool.name}/{self.name})"

    def xml(self) -> str:
        return ET.tostring(self._xml, encoding="unicode")

    @property
    def path(self) -> str:
        """The file on its host (meaningful to that host's libvirt and QEMU only)."""
        return self._xml.findtext("target/path") or ""

    @property
    def capacity(self) -> int:
        """Virtual size in bytes."""
        return int(self._xml.findtext("capacity") or 0)

    @property
    def allocation(self) -> int:
        return int(self._xml.findtext("allocation") or 0)

    @property
    def format(self) -> str | None:
        el = self._xml.find("target/format")
        return el.get("type") if el is not None else None

    def backing(self) -> str | None:
        """The backing file's path, None without one."""
        return self._xml.findtext("backingStore/path") or None

    def backing_format(self) -> str | None:
        el = self._xml.find("backingStore/format")
        return el.get("type") if el is not None else None


@dataclass(frozen=True)
class Backing:
    """A qcow2 an overlay can back onto that is no volume of the pool (a file on the pool's host)."""
    path: str
    capacity: int  # virtual size in bytes
    format: str = "qcow2"


class Pool:
    """A storage pool on one host (active). Volume names are file names in a `dir` pool."""

    def __init__(self, hv: Hypervisor, pool: libvirt.virStoragePool) -> None:
        self.hv, self._pool = hv, pool
        self.uri, self.name = hv.uri, pool.name()
        with self._errors(None, "describe the pool"):  # its directory on its host (a volume: path/name)
            self.path = ET.fromstring(pool.XMLDesc(0)).findtext("target/path") or ""

    def __repr__(self) -> str:
        return f"Pool({self.uri} {self.name})"

    def _errors(self, volume: str | None, action: str):
        return _errors(self.uri, self.name, volume, action)

    def refresh(self) -> None:
        """Re-read the pool; while another upload to it runs libvirt refuses, so this waits (up to
        REFRESH_WAIT seconds) for that upload to end."""
        deadline = time.monotonic() + REFRESH_WAIT
        while True:
            try:
                self._pool.refresh(0)
                return
            except libvirt.libvirtError as exc:
                if "asynchronous jobs" not in _message(exc) or time.monotonic() > deadline:
                    raise HypervisorError(f"pool {self.name}: cannot refresh: {_message(exc)}", field=self.uri) from exc
            signals.check()
            time.sleep(0.1)

    def _lookup(self, name: str) -> libvirt.virStorageVol | None:
        try:
            return self._pool.storageVolLookupByName(name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
                return None
            raise HypervisorError(f"pool {self.name}, volume {name}: cannot look it up: {_message(exc)}",
                                  field=self.uri) from exc

    def volume(self, name: str) -> Volume | None:
        vol = self._lookup(name)
        return Volume(self, vol) if vol is not None else None

    def _require(self, name: str) -> libvirt.virStorageVol:
        vol = self._lookup(name)
        if vol is None:
            raise HypervisorError(f"pool {self.name}, volume {name}: no such volume", field=self.uri)
        return vol

    def volumes(self) -> list[Volume]:
        with self._errors(None, "list the volumes"):
            return sorted((Volume(self, v) for v in self._pool.listAllVolumes(0)), key=lambda v: v.name)

    def _create(self, name: str, capacity: int, fmt: str, backing: Volume | Backing | None = None,
                allocation: int | None = None) -> Volume:
        xml = (f"<volume><name>{escape(name)}</name><capacity unit='bytes'>{capacity}</capacity>"
               + (f"<allocation unit='bytes'>{allocation}</allocation>" if allocation is not None else "")
               + f"<target><format type='{fmt}'/>" + ("<compat>1.1</compat>" if fmt == "qcow2" else "")
               + "</target>"
               + (f"<backingStore><path>{escape(backing.path)}</path><format type='{backing.format}'/>"
                  "</backingStore>" if backing is not None else "")
               + "</volume>")
        with self._errors(name, "create the volume"):
            return Volume(self, self._pool.createXML(xml, 0))

    def create_overlay(self, name: str, backing: Volume | Backing, size_gb: int | None = None) -> Volume:
        """A qcow2 over `backing` (a qcow2 volume of this pool, or a file of its host), its backing
        format recorded as qcow2; virtual size: the larger of the backing's and `size_gb` GiB."""
        if backing.format != "qcow2":
            raise HypervisorError(f"pool {self.name}, volume {backing.name}: an overlay needs a qcow2 backing "
                                  f"volume, libvirt reports {backing.format or 'no format'}", field=self.uri)
        capacity = max(backing.capacity, (size_gb or 0) * GIB)
        return self._create(name, capacity, "qcow2", backing)

    def create_blank(self, name: str, size_gb: int) -> Volume:
        """An empty qcow2 data disk of `size_gb` GiB."""
        return self._create(name, size_gb * GIB, "qcow2")

    def upload(self, name: str, src: Path) -> Volume:
        """A new volume with the bytes of the local file `src` (sent over a stream, holes as holes);
        a qcow2 file comes out as a qcow2 volume. A failed or interrupted upload leaves no volume."""
        try:
            f = open(src, "rb")  # noqa: SIM115 (closed below; only opening is an OS error of the file)
        except OSError as exc:
            raise from_os_error(exc, str(src)) from exc
        with f:
            return self._upload(name, f, os.fstat(f.fileno()).st_size)

    def upload_bytes(self, name: str, data: bytes) -> Volume:
        """A new raw volume holding `data` (a NoCloud seed ISO; raw, so not probed: no pool refresh)."""
        return self._upload(name, io.BytesIO(data), len(data), probe=False)

    def _upload(self, name: str, f: BinaryIO, size: int, probe: bool = True) -> Volume:
        # Made raw, probed again after the upload (`probe`): a qcow2's bytes make a qcow2 volume.
        vol = self._create(name, size, "raw", allocation=0)._vol
        stream = None
        try:
            with self._errors(name, "upload"):
                stream = self.hv.conn.newStream(0)
                vol.upload(stream, 0, size, libvirt.VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM)
                _send(stream, f, size)
                stream.finish()
                stream = None
            if probe:
                self.refresh()
            return Volume(self, self._require(name))
        except BaseException:
            if stream is not None:
                try:
                    stream.abort()
                except libvirt.libvirtError:
                    pass
            try:
                vol.delete(0)
            except libvirt.libvirtError:
                pass  # a dead host: replicate() finds the bad copy by its checksum next time
            raise

    def sha256(self, name: str) -> str:
        """The sha256 of the volume's bytes as its host reads them (downloaded, holes as zeros)."""
        vol = self._require(name)
        h = hashlib.sha256()
        with self._errors(name, "download"):
            stream = self.hv.conn.newStream(0)
            try:
                vol.download(stream, 0, 0, libvirt.VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM)
                while True:
                    signals.check()
                    got = stream.recvFlags(CHUNK, libvirt.VIR_STREAM_RECV_STOP_AT_HOLE)
                    if got == -3:
                        hole = stream.recvHole(0)
                        while hole > 0:
                            h.update(_ZEROS[:min(hole, CHUNK)])
                            hole -= CHUNK
                        continue
                    if not isinstance(got, bytes):
                        raise HypervisorError(f"pool {self.name}, volume {name}: download stream said {got}",
                                              field=self.uri)
                    if not got:
                        break
                    h.update(got)
                stream.finish()
            except BaseException:
                try:
                    stream.abort()
                except libvirt.libvirtError:
                    pass
                raise
        return h.hexdigest()

    def resize(self, name: str, size_gb: int) -> Volume:
        """Grow the volume to `size_gb` GiB (equal: nothing to do; smaller is refused)."""
        vol = self._require(name)
        current = Volume(self, vol)
        want = size_gb * GIB
        if want < current.capacity:
            raise HypervisorError(f"pool {self.name}, volume {name}: cannot shrink from {current.capacity} "
                                  f"to {want} bytes; disks only grow", field=self.uri)
        if want > current.capacity:
            with self._errors(name, f"resize to {size_gb} GiB"):
                vol.resize(want, 0)
        return Volume(self, vol)

    def delete(self, name: str) -> None:
        """Delete the volume; a missing one is fine."""
        vol = self._lookup(name)
        if vol is None:
            return
        try:
            vol.delete(0)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_VOL:
                raise HypervisorError(f"pool {self.name}, volume {name}: cannot delete: {_message(exc)}",
                                      field=self.uri) from exc

    def users_of(self, volume: Volume) -> list[str]:
        """Names of this pool's volumes whose backing file is `volume` (refresh first)."""
        self.refresh()
        return [v.name for v in self.volumes() if v.backing() == volume.path]


def _send(stream: libvirt.virStream, f: BinaryIO, size: int) -> None:
    """Send `size` bytes of `f` down the stream, a file's holes (SEEK_HOLE) as holes."""
    fd = f.fileno() if isinstance(f, io.BufferedReader) else None
    offset = 0
    while offset < size:
        end, data = size, True
        if fd is not None:
            end, data = _section(fd, offset, size)
        if not data:
            stream.sendHole(end - offset, 0)
            offset = end
            continue
        if fd is not None:
            f.seek(offset)
        while offset < end:
            signals.check()
            try:
                buf = f.read(min(CHUNK, end - offset))
            except OSError as exc:
                raise from_os_error(exc, getattr(f, "name", "the file")) from exc
            if not buf:
                raise LabError(str(getattr(f, "name", "the file")), "shrank while it was sent", "InternalError")
            sent = 0
            while sent < len(buf):
                sent += stream.send(buf[sent:])
            offset += len(buf)


def _section(fd: int, offset: int, size: int) -> tuple[int, bool]:
    """(end, is data) of the section of the file starting at `offset`."""
    try:
        data = os.lseek(fd, offset, os.SEEK_DATA)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # only a hole up to the end
            return size, False
        return size, True  # no SEEK_DATA on this file system: all data
    if data > offset:
        return min(data, size), False
    return min(os.lseek(fd, offset, os.SEEK_HOLE), size), True


def find_pool(hv: Hypervisor, name: str) -> Pool | None:
    """The pool `name` on this host (started and refreshed), None if the host has no such pool."""
    try:
        hv.conn.storagePoolLookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_POOL:
            return None
        raise HypervisorError(f"pool {name}: cannot look it up: {_message(exc)}", field=hv.uri) from exc
    return ensure_pool(hv, name)


_ENSURING = threading.Lock()  # one look-up-or-make at a time: threads of one process (a deployment's
# parallel creates, each with a Lab of its own) would otherwise define the same pool twice


def ensure_pool(hv: Hypervisor, name: str, path: str | None = None) -> Pool:
    """The pool `name` on this host, active and refreshed. Missing with a `path`: a `dir` pool at
    that path on that host (defined, built, started, autostarted); missing without one: an error."""
    with _ENSURING:
        return _ensure_pool(hv, name, path)


def _ensure_pool(hv: Hypervisor, name: str, path: str | None) -> Pool:
    try:
        pool = hv.conn.storagePoolLookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_POOL:
            raise HypervisorError(f"pool {name}: cannot look it up: {_message(exc)}", field=hv.uri) from exc
        if path is None:
            raise HypervisorError(
                f"no storage pool {name} on {hv.uri}: give a path to make a dir pool there, or create it on that "
                f"host: virsh -c {hv.uri} pool-define-as {name} dir --target DIR, then pool-build, pool-start "
                f"and pool-autostart {name}", field=hv.uri) from exc
        with _errors(hv.uri, name, None, f"define a dir pool at {path}"):
            pool = define_dir_pool(hv, name, path)
    try:
        with _errors(hv.uri, name, None, "start"):
            if not pool.isActive():
                pool.create(0)
            pool.refresh(0)
    except HypervisorError:
        if path is None:
            raise
        with _errors(hv.uri, name, None, f"build its folder {path} again and start"):
            _rebuild(pool)  # the lab's own pool whose folder was removed (a lab home deleted by hand)
    return Pool(hv, pool)


def _rebuild(pool: libvirt.virStoragePool) -> None:
    """Stop the pool, build it (a dir pool: its folder made again, what is there kept), start it."""
    if pool.isActive():
        pool.destroy()
    _build(pool)
    pool.create(0)
    pool.refresh(0)


def _build(pool: libvirt.virStoragePool) -> None:
    """Build the pool (a dir pool: its folder); a driver without build (test://) has nothing to build."""
    try:
        pool.build(0)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_SUPPORT:
            raise


def define_dir_pool(hv: Hypervisor, name: str, path: str) -> libvirt.virStoragePool:
    """A new `dir` pool at `path`: defined, built (a driver without build, test://, has nothing to
    build), started, autostarted; undefined again when a step fails (libvirt's error is raised)."""
    xml = f"<pool type='dir'><name>{escape(name)}</name><target><path>{escape(path)}</path></target></pool>"
    pool = hv.conn.storagePoolDefineXML(xml, 0)
    try:
        _build(pool)
        pool.create(0)
        pool.setAutostart(1)
    except libvirt.libvirtError:
        _undefine(pool)
        raise
    return pool


def _undefine(pool: libvirt.virStoragePool) -> None:
    try:
        if pool.isActive():
            pool.destroy()
        pool.undefine()
    except libvirt.libvirtError:
        pass
