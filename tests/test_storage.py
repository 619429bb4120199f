"""Storage through libvirt's storage API on the test driver (in-memory pools and volumes; it has
no upload, download or resize: those calls are the error path here, tests/test_vm_storage.py does
them for real), the sparse stream sender, and the replication logic."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import libvirt
import pytest

from controller.core.errors import HypervisorError, LabError
from controller.virt import storage
from controller.virt.hypervisor import Hypervisor
from controller.virt.replica import replicate
from controller.virt.storage import GIB, Pool, ensure_pool
from tests.fakepool import scratch_pool

URI = "test:///default"
pytestmark = pytest.mark.bare_test_driver  # the test driver refuses uploads and resizes here


@pytest.fixture
def pool():
    yield from scratch_pool()


def test_ensure_pool_defines_a_started_autostarted_dir_pool_at_the_path(pool):
    raw = pool.hv.conn.storagePoolLookupByName(pool.name)
    assert raw.isActive() and raw.autostart()
    assert f"<path>/pools/{pool.name}</path>" in raw.XMLDesc(0) and "type='dir'" in raw.XMLDesc(0)
    again = ensure_pool(pool.hv, pool.name)  # present: found by name, no path needed
    assert again.name == pool.name and again.volumes() == []


def test_missing_pool_without_a_path_names_pool_host_and_how_to_create_it():
    hv = Hypervisor(URI)
    with pytest.raises(HypervisorError) as err:
        ensure_pool(hv, "nowhere")
    text = str(err.value)
    assert err.value.field == URI and "no storage pool nowhere on test:///default" in text
    assert "virsh -c test:///default pool-define-as nowhere dir --target" in text
    assert "nowhere" not in [p.name() for p in hv.conn.listAllStoragePools()]


def test_overlay_records_its_backing_as_qcow2_and_takes_the_larger_size(pool):
    base = pool.create_blank("base.qcow2", 2)
    assert (base.format, base.capacity, base.backing()) == ("qcow2", 2 * GIB, None)
    small = pool.create_overlay("small.qcow2", base, None)
    big = pool.create_overlay("big.qcow2", base, 5)
    assert small.capacity == 2 * GIB and big.capacity == 5 * GIB
    for o in (small, big):
        assert (o.format, o.backing(), o.backing_format()) == ("qcow2", base.path, "qcow2")
    got = pool.volume("big.qcow2")  # as libvirt has it, looked up again
    assert got.backing() == base.path and got.backing_format() == "qcow2"
    assert "<backingStore>" in got.xml() and pool.volume("absent") is None


def test_overlay_over_a_raw_volume_is_refused(pool):
    raw = pool._create("seed.iso", 1024, "raw")
    with pytest.raises(HypervisorError, match=r"pool t-\w+, volume seed.iso: an overlay needs a qcow2"):
        pool.create_overlay("os.qcow2", raw, 1)
    assert pool.volume("os.qcow2") is None


def test_users_of_lists_the_overlays_of_that_volume_only(pool):
    v1, v2 = pool.create_blank("v1.qcow2", 1), pool.create_blank("v2.qcow2", 1)
    for name in ("a-os.qcow2", "b-os.qcow2"):
        pool.create_overlay(name, v1, 1)
    pool.create_overlay("c-os.qcow2", v2, 1)
    assert pool.users_of(v1) == ["a-os.qcow2", "b-os.qcow2"] and pool.users_of(v2) == ["c-os.qcow2"]
    pool.delete("c-os.qcow2")
    pool.delete("c-os.qcow2")  # missing is fine
    assert pool.users_of(v2) == [] and [v.name for v in pool.volumes()] == ["a-os.qcow2", "b-os.qcow2",
                                                                            "v1.qcow2", "v2.qcow2"]


def test_libvirt_errors_name_host_pool_and_volume_and_a_failed_upload_leaves_nothing(pool, tmp_path):
    src = tmp_path / "disk.qcow2"
    src.write_bytes(b"QFI\xfb" + bytes(1000))
    with pytest.raises(HypervisorError) as err:
        pool.upload("img.qcow2", src)  # the test driver has no virStorageVolUpload
    assert err.value.field == URI and f"pool {pool.name}, volume img.qcow2: cannot upload" in str(err.value)
    with pytest.raises(HypervisorError, match="volume seed.iso: cannot upload"):
        pool.upload_bytes("seed.iso", b"seed")
    assert pool.volumes() == []
    pool.create_blank("d.qcow2", 1)
    with pytest.raises(HypervisorError, match="volume d.qcow2: cannot create the volume: .*exists"):
        pool.create_blank("d.qcow2", 1)
    with pytest.raises(HypervisorError, match="volume d.qcow2: cannot download"):
        pool.sha256("d.qcow2")
    with pytest.raises(HypervisorError, match="volume gone: no such volume"):
        pool.sha256("gone")


def test_resize_grows_only(pool):
    pool.create_blank("d.qcow2", 2)
    assert pool.resize("d.qcow2", 2).capacity == 2 * GIB  # same size: nothing to do
    with pytest.raises(HypervisorError, match="cannot shrink from 2147483648 to 1073741824 bytes"):
        pool.resize("d.qcow2", 1)
    with pytest.raises(HypervisorError, match="cannot resize to 3 GiB"):  # no virStorageVolResize here
        pool.resize("d.qcow2", 3)


def test_upload_of_a_missing_file_names_it_and_creates_nothing(pool, tmp_path):
    with pytest.raises(LabError, match="nothing.qcow2"):
        pool.upload("x.qcow2", tmp_path / "nothing.qcow2")
    assert pool.volumes() == []


class Recorder:
    """A virStream that keeps what was sent: data as bytes, holes as their lengths."""

    def __init__(self) -> None:
        self.parts: list[bytes | int] = []

    def send(self, data: bytes) -> int:
        n = min(len(data), 100_000)  # a short send, as a stream may do
        self.parts.append(bytes(data[:n]))
        return n

    def sendHole(self, length: int, flags: int = 0) -> None:  # libvirt's name
        self.parts.append(length)


def test_send_sends_a_sparse_files_holes_as_holes_and_every_byte_once(tmp_path):
    f = tmp_path / "sparse"
    mib = 1024 * 1024
    with f.open("wb") as out:
        out.seek(4 * mib)
        out.write(os.urandom(3 * mib))
        out.truncate(12 * mib)  # a hole at the end too
    rec = Recorder()
    with f.open("rb") as src:
        storage._send(rec, src, f.stat().st_size)
    data = b"".join(p if isinstance(p, bytes) else bytes(p) for p in rec.parts)
    assert data == f.read_bytes()
    holes = [p for p in rec.parts if isinstance(p, int)]
    assert sum(holes) >= 8 * mib  # the file system reports the holes (4 MiB before, 5 MiB after)
    rec = Recorder()
    storage._send(rec, storage.io.BytesIO(b"abc" * 100_000), 300_000)  # bytes: no holes
    assert b"".join(rec.parts) == b"abc" * 100_000


class MemoryPool(Pool):
    """A pool whose far side is a dict (the test driver has no upload): the replication logic only."""

    def __init__(self, corrupt: bool = False, fmt: str = "qcow2") -> None:
        self.uri, self.name, self.data, self.corrupt, self.fmt = "mem://", "p", {}, corrupt, fmt
        self.uploads = 0

    def volume(self, name):
        return type("V", (), {"format": self.fmt, "name": name})() if name in self.data else None

    def upload(self, name, src: Path):
        if name in self.data:
            raise HypervisorError(f"pool p, volume {name}: exists", field=self.uri)
        self.uploads += 1
        self.data[name] = src.read_bytes() + (b"!" if self.corrupt else b"")
        return self.volume(name)

    def sha256(self, name):
        return hashlib.sha256(self.data[name]).hexdigest()

    def delete(self, name):
        self.data.pop(name, None)


@pytest.fixture
def image(tmp_path):
    src = tmp_path / "v1.qcow2"
    src.write_bytes(os.urandom(4096))
    return src, hashlib.sha256(src.read_bytes()).hexdigest()


def test_replicate_uploads_then_verifies_and_skips_a_good_copy(image):
    src, digest = image
    pool = MemoryPool()
    first = replicate(pool, "v1.qcow2", src, digest)
    assert (first.state, first.bytes, pool.uploads) == ("Completed", 4096, 1)
    assert "sha256 verified on the far side" in first.details and first.mb_per_s > 0
    again = replicate(pool, "v1.qcow2", src, digest)
    assert (again.state, again.bytes, pool.uploads, again.mb_per_s) == ("Completed", 0, 1, 0.0)
    assert again.details.startswith("already there")


def test_replicate_replaces_a_copy_with_another_checksum(image):
    src, digest = image
    pool = MemoryPool()
    pool.data["v1.qcow2"] = b"partial"
    rep = replicate(pool, "v1.qcow2", src, digest)
    assert rep.state == "Completed" and pool.data["v1.qcow2"] == src.read_bytes()
    assert hashlib.sha256(b"partial").hexdigest() in rep.details


def test_replicate_mismatch_is_failed_and_deletes_the_copy(image):
    src, digest = image
    pool = MemoryPool(corrupt=True)
    rep = replicate(pool, "v1.qcow2", src, digest)
    assert rep.state == "Failed" and f"expected {digest}" in rep.details and pool.data == {}


def test_replicate_failures_are_failed_with_the_reason(image, tmp_path):
    src, digest = image
    rep = replicate(MemoryPool(fmt="raw"), "v1.qcow2", src, digest)
    assert rep.state == "Failed" and "as raw, not qcow2" in rep.details
    hv = Hypervisor(URI)
    p = ensure_pool(hv, "default-pool")  # the test driver: upload unsupported
    rep = replicate(p, "v1.qcow2", tmp_path / "missing.qcow2", digest)
    assert rep.state == "Failed" and "missing.qcow2: No such file" in rep.details
    rep = replicate(p, "v1.qcow2", src, digest)
    assert (rep.state, rep.uri, rep.pool) == ("Failed", URI, "default-pool")
    assert "cannot upload" in rep.details and p.volume("v1.qcow2") is None


class _Busy(libvirt.libvirtError):
    """libvirt's answer to a refresh while another volume of the pool is being uploaded."""

    def __init__(self) -> None:
        Exception.__init__(self, "busy")

    def get_error_message(self) -> str:
        return "internal error: pool 'p' has asynchronous jobs running."


def test_a_refresh_waits_for_the_pools_other_upload_then_says_why(pool, monkeypatch):
    calls = []

    class Raw:
        def refresh(self, flags):
            calls.append(flags)
            if len(calls) < 3:
                raise _Busy()

    monkeypatch.setattr(pool, "_pool", Raw())
    pool.refresh()
    assert len(calls) == 3
    monkeypatch.setattr(storage, "REFRESH_WAIT", 0.0)
    calls.clear()
    with pytest.raises(HypervisorError, match=f"pool {pool.name}: cannot refresh: .*asynchronous jobs running"):
        pool.refresh()
