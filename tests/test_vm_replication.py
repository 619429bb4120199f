"""An image version replicated for real to a region made of a second libvirtd (qemu+tcp on
127.0.0.1, tests/secondhost.py): uploaded through the storage API, its sha256 read back on the far
side, status Completed, not sent twice, and deleted with the version. Needs root."""
from __future__ import annotations

import os

import pytest

from controller.model.region import Host, Region
from controller.ops import replication
from controller.ops.lab import Lab
from controller.state.replicas import ReplicaStore
from controller.virt.accel import Accel
from controller.virt.hypervisor import Hypervisor
from controller.virt.storage import ensure_pool
from tests.helpers import make_qcow2
from tests.secondhost import second_host  # noqa: F401 (session fixture)

pytestmark = [pytest.mark.vm, pytest.mark.timeout(120),
              pytest.mark.skipif(os.geteuid() != 0, reason="a second libvirtd needs root")]
P, O, S = "scaleset-lab", "debian", "debian-12"
VOLUME = "scaleset-lab_debian_debian-12_1.0.0.qcow2"


def test_a_version_is_replicated_to_the_far_host_verified_and_deleted_with_it(lab, request, tmp_path):
    far_host = request.getfixturevalue("second_host")
    t = Lab(lab, "test:///default", Accel("tcg", "test"))
    far = Hypervisor(far_host.uri)  # a connection of the test's own, to look at the far side
    try:
        t.regions.add(Region("far", (Host(far_host.uri, far_host.pool),)))
        disk = make_qcow2(tmp_path / "v.qcow2", data=os.urandom(4 << 20))
        iv = t.gallery.import_file(P, O, S, "1.0.0", disk, ["local", "far"])
        assert t.gallery.resolve(P, O, S, "latest", "local").version == "1.0.0"
        assert not t.gallery.ready(iv, "far")

        [rep] = replication.replicate_version(t, iv)
        assert (rep.state, rep.uri, rep.bytes) == ("Completed", far_host.uri, iv.size_bytes), rep.details
        assert "sha256 verified on the far side" in rep.details
        pool = ensure_pool(far, far_host.pool)
        assert pool.sha256(iv.volume_name) == iv.sha256  # the far side's bytes, read back independently
        status = replication.replication_status(t, iv)
        assert status["aggregatedState"] == "Completed"
        assert [(s["region"], s["state"]) for s in status["summary"]] == [("local", "Completed"), ("far", "Completed")]
        assert t.gallery.resolve(P, O, S, "latest", "far").version == "1.0.0"
        [again] = replication.replicate_version(t, iv)
        assert (again.state, again.bytes) == ("Completed", 0)  # a verified copy is not sent again

        replication.delete_version(t, iv)
        pool.refresh()
        assert pool.volume(iv.volume_name) is None and ReplicaStore(t.db).of(iv) == []
        assert t.gallery.list() == [] and not iv.path.exists()
    finally:
        ensure_pool(far, far_host.pool).delete(VOLUME)  # a failed test leaves nothing behind either
        far.close()
        t.close()
