"""Storage through libvirt's storage API against real daemons (no guest is booted): a second host
over qemu+tcp://127.0.0.1:PORT (tests/secondhost.py) and this machine's libvirtd (qemu:///system,
a temporary dir pool of the test's own). Needs root."""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import time
import uuid

import pytest

from controller.core import signals
from controller.core.errors import HypervisorError, Interrupted, LabError
from controller.virt.hypervisor import Hypervisor
from controller.virt.replica import replicate
from controller.virt.storage import GIB, ensure_pool
from images.qcow2 import sha256_file
from tests.helpers import make_qcow2
from tests.secondhost import running_host, second_host  # noqa: F401 (session fixture)

pytestmark = [pytest.mark.vm, pytest.mark.timeout(300),
              pytest.mark.skipif(os.geteuid() != 0, reason="a second libvirtd and qemu:///system need root")]


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    """A real qcow2 (8 MiB of random data) and its sha256."""
    path = make_qcow2(tmp_path_factory.mktemp("img") / "v1.qcow2", data=os.urandom(8 << 20))
    return path, sha256_file(path)


@pytest.fixture(params=["second-host", "local"])
def host(request, tmp_path):
    """(pool, run) on one host: `run(argv)` runs a command where the pool's files are. The test must
    delete its volumes (checked)."""
    if request.param == "second-host":
        h = request.getfixturevalue("second_host")
        hv = Hypervisor(h.uri)
        pool = ensure_pool(hv, h.pool)
        yield pool, lambda argv: h.ns.run(argv).stdout
        left = [v.name for v in pool.volumes()]
        for name in left:
            pool.delete(name)
        hv.close()
        assert left == [], f"the test left volumes on the second host: {left}"
        return
    try:
        hv = Hypervisor("qemu:///system")
    except HypervisorError as exc:
        pytest.skip(f"{exc} (scripts/setup.sh starts it)")
    name = f"scaleset-test-{uuid.uuid4().hex[:8]}"
    pool = ensure_pool(hv, name, str(tmp_path / "pool"))
    try:
        yield pool, lambda argv: subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    finally:
        raw = hv.conn.storagePoolLookupByName(name)
        left = [v.name() for v in raw.listAllVolumes()]
        raw.destroy()
        raw.undefine()
        hv.close()
    assert left == [], f"the test left volumes in {name}: {left}"


def test_replicate_overlay_blank_seed_users_and_delete(host, image, tmp_path):
    pool, run = host
    src, digest = image
    rep = replicate(pool, "v1.qcow2", src, digest)
    print(f"\n{pool.uri}: replicated {rep.bytes} bytes in {rep.seconds:.2f} s ({rep.mb_per_s:.0f} MB/s upload)")
    assert (rep.state, rep.bytes, rep.uri) == ("Completed", src.stat().st_size, pool.uri), rep.details
    assert pool.sha256("v1.qcow2") == digest  # the far side's bytes, read back
    pool.refresh()
    base = pool.volume("v1.qcow2")
    assert (base.format, base.capacity) == ("qcow2", 8 << 20)  # libvirt probed the uploaded bytes
    assert replicate(pool, "v1.qcow2", src, digest).bytes == 0  # a good copy is kept

    os_disk = pool.create_overlay("web-0-os.qcow2", base, 1)
    assert (os_disk.backing(), os_disk.backing_format(), os_disk.capacity) == (base.path, "qcow2", GIB)
    info = json.loads(run(["qemu-img", "info", "--output=json", os_disk.path]))
    assert info["backing-filename-format"] == "qcow2" and info["backing-filename"] == base.path
    assert info["format"] == "qcow2" and info["virtual-size"] == GIB

    data = pool.create_blank("web-0-lun0.qcow2", 1)
    assert pool.resize("web-0-lun0.qcow2", 2).capacity == 2 * GIB
    info = json.loads(run(["qemu-img", "info", "--output=json", data.path]))
    assert (info["format"], info["virtual-size"]) == ("qcow2", 2 * GIB) and "backing-filename" not in info

    seed = os.urandom(300_000)
    vol = pool.upload_bytes("web-0-seed.iso", seed)
    assert vol.format == "raw" and pool.sha256("web-0-seed.iso") == hashlib.sha256(seed).hexdigest()

    sparse = tmp_path / "sparse.raw"  # 1 MiB of data, a 30 MiB hole, 1 MiB of data
    with sparse.open("wb") as f:
        f.write(os.urandom(1 << 20))
        f.seek(31 << 20)
        f.write(os.urandom(1 << 20))
    vol = pool.upload("sparse.raw", sparse)
    assert pool.sha256("sparse.raw") == sha256_file(sparse) and vol.capacity == 32 << 20
    assert vol.allocation < 8 << 20  # the hole went as a hole

    assert pool.users_of(base) == ["web-0-os.qcow2"] and pool.users_of(data) == []
    for name in ("web-0-os.qcow2", "web-0-lun0.qcow2", "web-0-seed.iso", "sparse.raw", "v1.qcow2"):
        pool.delete(name)
    pool.delete("v1.qcow2")
    assert pool.volumes() == []


class Source(io.RawIOBase):
    """Random bytes; after 3 MiB it calls `then()` (default: fails like a dying disk)."""

    def __init__(self, then=None) -> None:
        self.sent, self.then, self.name = 0, then, "source"

    def read(self, n: int = -1) -> bytes:
        if self.sent >= 3 << 20 and self.then is None:
            raise OSError(5, "Input/output error")
        if self.sent >= 3 << 20:
            self.then()
            self.then = lambda: None
        self.sent += n
        return os.urandom(n)


def test_a_bad_checksum_or_a_broken_upload_leaves_no_volume(host, image):
    pool, _ = host
    src, digest = image
    rep = replicate(pool, "v1.qcow2", src, "0" * 64)
    assert rep.state == "Failed" and f"sha256 on the far side is {digest}, expected {'0' * 64}" in rep.details
    assert pool.volume("v1.qcow2") is None
    with pytest.raises(LabError, match="source: Input/output error"):
        pool._upload("broken.qcow2", Source(), 8 << 20)
    try:
        with pytest.raises(Interrupted):  # Ctrl-C mid-upload
            pool._upload("stopped.qcow2", Source(then=lambda: signals.trigger(signal.SIGINT)), 8 << 20)
    finally:
        signals.reset()
    pool.refresh()
    assert pool.volumes() == []


def test_a_dead_or_hung_host_fails_calls_in_seconds_not_forever(tmp_path, image):
    src, digest = image
    with running_host(tmp_path / "ns") as h:
        pool = ensure_pool(Hypervisor(h.uri), h.pool)
        t0 = time.monotonic()
        with pytest.raises(HypervisorError, match="volume big.qcow2: cannot upload: .*keepalive timeout"):
            pool._upload("big.qcow2", Source(then=lambda: h.ns.signal_daemon(signal.SIGSTOP)), 64 << 20)
        hung = time.monotonic() - t0
        t0 = time.monotonic()
        with pytest.raises(HypervisorError, match="no answer in 3 s"):
            Hypervisor(h.uri, open_timeout=3)  # libvirt's own open to a hung daemon waits forever
        opened = time.monotonic() - t0
        h.ns.signal_daemon(signal.SIGKILL)
        t0 = time.monotonic()
        with pytest.raises(HypervisorError, match=re.escape(f"cannot connect to libvirt at {h.uri}")):
            Hypervisor(h.uri)
        refused = time.monotonic() - t0
        h.ns.start_daemon()
        pool = ensure_pool(Hypervisor(h.uri), h.pool)
        assert [v.name for v in pool.volumes()] == ["big.qcow2"]  # the hung upload's copy: no one could delete it
        rep = replicate(pool, "big.qcow2", src, digest)
        assert rep.state == "Completed" and "replaced a copy whose sha256 was" in rep.details
        h.ns.signal_daemon(signal.SIGKILL)
        t0 = time.monotonic()
        with pytest.raises(HypervisorError, match=re.escape(f"{h.uri}: pool scaleset, volume big.qcow2: cannot")):
            pool.delete("big.qcow2")
        dead = time.monotonic() - t0
        h.ns.start_daemon()
        ensure_pool(Hypervisor(h.uri), h.pool).delete("big.qcow2")
    print(f"\nhung mid-upload: an error after {hung:.1f} s; open to a hung daemon: given up after {opened:.1f} s; "
          f"open to a dead one: {refused:.2f} s; a call on a dead connection: {dead:.2f} s")
    assert 15 < hung < 30 and 3 <= opened < 5 and refused < 2 and dead < 2


def test_a_daemon_that_stalls_past_its_keepalives_costs_the_lab_one_reconnect(tmp_path):
    """libvirt drops a connection whose daemon misses its keepalives for 20 s (seen on a loaded CI
    machine): the lab's own connection is opened again, and a lookup on the dead one is an error,
    never "no such domain"."""
    from controller.core.settings import LabPaths
    from controller.ops.lab import Lab
    with running_host(tmp_path / "ns") as h:
        lab = Lab(LabPaths(tmp_path / "lab").ensure(), h.uri)
        try:
            first = lab.hv
            h.ns.signal_daemon(signal.SIGSTOP)
            t0 = time.monotonic()
            while first.alive() and time.monotonic() - t0 < 60:
                time.sleep(0.5)
            dropped = time.monotonic() - t0
            h.ns.signal_daemon(signal.SIGCONT)
            with pytest.raises(HypervisorError, match=re.escape(f"libvirt at {h.uri}: ")):
                first.lookup("anything")
            second = lab.hv
            assert second is not first and second.alive() and second.lookup("anything") is None
        finally:
            lab.close()
    print(f"\nthe stalled daemon's connection dropped after {dropped:.1f} s")
    assert dropped < 40


def test_the_labs_pool_whose_folder_was_removed_is_built_again(tmp_path):
    """A lab home deleted by hand leaves its pool defined on libvirtd; the next lab at that home
    builds the pool's folder again (stopped or still active) instead of failing."""
    hv = Hypervisor("qemu:///system")
    name, path = f"sslab-test-{uuid.uuid4().hex[:8]}", tmp_path / "home" / "pool"
    try:
        ensure_pool(hv, name, str(path))
        for stopped in (True, False):
            if stopped:
                hv.conn.storagePoolLookupByName(name).destroy()
            shutil.rmtree(path.parent)
            pool = ensure_pool(hv, name, str(path))
            assert path.is_dir() and pool.volumes() == []
        shutil.rmtree(path.parent)
        with pytest.raises(HypervisorError, match="cannot open directory"):
            ensure_pool(hv, name)  # without the lab's path: not ours to build, an error naming why
    finally:
        raw = hv.conn.storagePoolLookupByName(name)
        if raw.isActive():
            raw.destroy()
        raw.undefine()
        hv.close()
