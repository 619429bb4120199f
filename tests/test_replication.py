"""Image versions replicated to the hosts of their regions (controller/ops/replication.py) on
libvirt's test driver: hosts are dir pools of their own on test:///default (its state is shared by
the process, so the CLI's and the API's connections see the same volumes). The test driver has no
upload: `upload` makes the copy a blank volume, the rest (pools, volumes, overlays, deletes, hosts
that do not answer) is real. tests/test_vm_replication.py uploads and verifies for real."""
from __future__ import annotations

import json
import threading
import time
import uuid

import pytest
import requests
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import models as m

from controller.cli.main import main
from controller.core.errors import ImageError
from controller.model.armid import DEFAULT_RESOURCE_GROUP as RG
from controller.model.region import Host, Region
from controller.ops import replication
from controller.ops.lab import Lab
from controller.state.instances import InstanceStore
from controller.state.replicas import ReplicaStore
from controller.virt.accel import Accel
from controller.virt.replica import Replica
from controller.virt.replica import replicate as real_replicate
from controller.virt.storage import ensure_pool

P, O, S = "scaleset-lab", "debian", "debian-12"
URI = "test:///default"
DEAD = "qemu+tcp://127.0.0.1:1/system"  # refused at once: a host that does not answer
VOLUME = "scaleset-lab_debian_debian-12_1.0.0.qcow2"


def fake_replicate(pool, name, src, sha256):
    """replicate() where the far side has no upload: a blank volume stands for the copy."""
    if pool.volume(name) is not None:
        return Replica(pool.uri, pool.name, name, "Completed", "already there", 0.0, 0)
    pool.create_blank(name, 1)
    return Replica(pool.uri, pool.name, name, "Completed", "uploaded", 0.01, src.stat().st_size, 0.01)


@pytest.fixture
def rlab(lab, monkeypatch):
    """A lab on test:///default with region `east` of two hosts (dir pools of their own) and
    `west` of a host that does not answer and a good one; the pools go afterwards."""
    monkeypatch.setenv("SCALESET_LIBVIRT_URI", URI)
    monkeypatch.setattr(replication, "replicate", fake_replicate)
    t = Lab(lab, URI, Accel("tcg", "test"), host_timeout=1.0)
    assert t.hv.conn.isAlive()  # held open: the test driver's default state lives while a connection does
    tag = uuid.uuid4().hex[:6]
    names = [f"r{tag}-{n}" for n in ("e1", "e2", "w2")]
    e1, e2, w2 = (Host(URI, n, f"/pools/{n}") for n in names)
    t.regions.add(Region("east", (e1, e2)))
    t.regions.add(Region("west", (Host(DEAD, "dead"), w2)))
    t.pools = names
    yield t
    for raw in t.hv.conn.listAllStoragePools():
        if raw.name() not in names:
            continue
        for v in raw.listAllVolumes():
            v.delete(0)
        raw.destroy()
        raw.undefine()
    t.close()


def publish(lab: Lab, qcow2_file, version: str, regions=("local", "east")):
    return lab.gallery.import_file(P, O, S, version, qcow2_file, list(regions))


def volumes(lab: Lab, pool: str) -> list[str]:
    return [v.name for v in ensure_pool(lab.hv, pool, f"/pools/{pool}").volumes()]


def summary(status: dict) -> dict:
    return {s["region"]: (s["state"], s["progress"]) for s in status["summary"]}


def test_replication_to_a_two_host_region_then_latest_and_status(rlab, qcow2_file):
    iv = publish(rlab, qcow2_file, "1.0.0")
    before = replication.replication_status(rlab, iv)
    assert before["aggregatedState"] == "InProgress"
    assert summary(before) == {"local": ("Completed", 100), "east": ("Replicating", 0)}
    with pytest.raises(ImageError) as err:
        rlab.gallery.resolve(P, O, S, "latest", "east")
    assert err.value.code == "ImageNotFound"
    assert rlab.gallery.resolve(P, O, S, "latest", "local").version == "1.0.0"  # local reads the file

    reps = replication.replicate_version(rlab, iv)
    assert [(r.pool, r.state) for r in reps] == [(rlab.pools[0], "Completed"), (rlab.pools[1], "Completed")]
    assert all(volumes(rlab, p) == [iv.volume_name] for p in rlab.pools[:2])
    assert volumes(rlab, rlab.pools[2]) == []  # west is no target
    rows = ReplicaStore(rlab.db).of(iv)
    assert [(r.region, r.pool, r.state, r.volume) for r in rows] == \
        [("east", p, "Completed", iv.volume_name) for p in rlab.pools[:2]]
    after = replication.replication_status(rlab, iv)
    assert after["aggregatedState"] == "Completed" and summary(after)["east"] == ("Completed", 100)
    assert rlab.gallery.resolve(P, O, S, "latest", "east").version == "1.0.0"


def test_the_labs_own_host_in_a_region_gets_no_copy_of_the_gallery_file(rlab, qcow2_file):
    rlab.regions.add(Region("duo", (rlab.local, Host(URI, rlab.pools[1], f"/pools/{rlab.pools[1]}"))))
    iv = rlab.gallery.import_file(P, O, S, "1.0.0", qcow2_file, ["duo"])
    own, far = replication.replicate_version(rlab, iv)
    assert (own.pool, own.state, own.bytes) == (rlab.local.pool, "Completed", 0) and "own host" in own.details
    assert far.state == "Completed" and far.bytes == iv.size_bytes
    assert rlab.pool_at(None).volume(iv.volume_name) is None  # its overlays back onto the gallery file
    assert rlab.gallery.resolve(P, O, S, "latest", "duo").version == "1.0.0"
    replication.delete_version(rlab, iv)
    assert ReplicaStore(rlab.db).of(iv) == [] and volumes(rlab, rlab.pools[1]) == []


def test_latest_waits_for_replication_and_a_pinned_version_names_the_region(rlab, qcow2_file):
    replication.replicate_version(rlab, publish(rlab, qcow2_file, "1.0.0"))
    new = publish(rlab, qcow2_file, "1.1.0")
    assert rlab.gallery.resolve(P, O, S, "latest", "east").version == "1.0.0"  # 1.1.0 not replicated yet
    assert rlab.gallery.resolve(P, O, S, "latest", "local").version == "1.1.0"
    with pytest.raises(ImageError) as err:
        rlab.gallery.resolve(P, O, S, "1.1.0", "east")
    assert err.value.code == "ImageNotReplicated" and "region 'east'" in err.value.reason
    assert "under way or failed" in err.value.reason
    ReplicaStore(rlab.db).record(new, "east", rlab.regions.configured("east").hosts[0], "Completed")
    assert rlab.gallery.resolve(P, O, S, "latest", "east").version == "1.0.0"  # one host of two is not enough
    replication.replicate_version(rlab, new, ["EAST"])
    assert rlab.gallery.resolve(P, O, S, "latest", "east").version == "1.1.0"
    with pytest.raises(ImageError) as err:
        replication.replicate_version(rlab, new, ["west"])
    assert err.value.field == "--region" and "not a target region" in err.value.reason


def test_a_host_that_does_not_answer_fails_and_the_other_goes_on(rlab, qcow2_file):
    iv = publish(rlab, qcow2_file, "1.0.0", ["west"])
    dead, good = replication.replicate_version(rlab, iv)
    assert (dead.uri, dead.state, good.state) == (DEAD, "Failed", "Completed")
    assert "host not usable" in dead.details and "127.0.0.1:1" in dead.details
    assert volumes(rlab, rlab.pools[2]) == [iv.volume_name]
    status = replication.replication_status(rlab, iv)
    assert status["aggregatedState"] == "Failed" and summary(status) == {"west": ("Failed", 0)}
    assert DEAD in status["summary"][0]["details"]
    with pytest.raises(ImageError) as err:
        rlab.gallery.resolve(P, O, S, "1.0.0", "west")
    assert err.value.code == "ImageNotReplicated"


def test_the_real_replicate_fails_on_the_test_driver_and_says_why(rlab, qcow2_file, monkeypatch):
    monkeypatch.setattr(replication, "replicate", real_replicate)  # no upload here: a real Failed
    iv = publish(rlab, qcow2_file, "1.0.0")
    reps = replication.replicate_version(rlab, iv)
    assert [r.state for r in reps] == ["Failed", "Failed"] and all("cannot upload" in r.details for r in reps)
    assert [r.state for r in ReplicaStore(rlab.db).of(iv)] == ["Failed", "Failed"]
    assert not rlab.gallery.ready(iv, "east")


def test_delete_is_refused_while_in_use_or_a_host_is_unreachable_and_then_removes_every_replica(
        rlab, qcow2_file, monkeypatch):
    iv = publish(rlab, qcow2_file, "1.0.0")
    replication.replicate_version(rlab, iv)
    pool = ensure_pool(rlab.hv, rlab.pools[1])
    pool.create_overlay("disk-of-someone.qcow2", pool.volume(iv.volume_name))
    with pytest.raises(ImageError) as err:
        replication.delete_version(rlab, iv)
    assert err.value.code == "ImageVersionInUse" and "disk-of-someone.qcow2" in err.value.reason
    assert rlab.pools[1] in err.value.reason and "nothing was deleted" in err.value.reason
    assert volumes(rlab, rlab.pools[0]) == [iv.volume_name] and iv.path.exists()
    pool.delete("disk-of-someone.qcow2")

    key = (P, O, S, "1.0.0")
    monkeypatch.setattr(InstanceStore, "images_in_use", lambda self: {key})
    with pytest.raises(ImageError) as err:
        replication.delete_version(rlab, iv)
    assert err.value.code == "ImageVersionInUse" and "in use by instances" in err.value.reason
    monkeypatch.setattr(InstanceStore, "images_in_use", lambda self: set())

    ReplicaStore(rlab.db).record(iv, "west", Host(DEAD, "dead"), "Completed")
    with pytest.raises(ImageError) as err:
        replication.delete_version(rlab, iv)
    assert err.value.code == "HostUnreachable" and DEAD in err.value.reason
    assert "nothing was deleted" in err.value.reason and volumes(rlab, rlab.pools[0]) == [iv.volume_name]
    ReplicaStore(rlab.db).forget(iv, DEAD, "dead")

    replication.delete_version(rlab, iv)
    assert [volumes(rlab, p) for p in rlab.pools[:2]] == [[], []]
    assert ReplicaStore(rlab.db).of(iv) == [] and not iv.path.exists() and rlab.gallery.list() == []


def test_sync_regions_replicates_added_regions_and_removes_dropped_ones(rlab, qcow2_file):
    iv = publish(rlab, qcow2_file, "1.0.0", ["local"])
    assert replication.replicate_version(rlab, iv) == []  # nothing configured to replicate to
    iv = rlab.gallery.update(P, O, S, "1.0.0", target_regions=["local", "east"])
    done = replication.sync_regions(rlab, iv)
    assert [r.state for r in done.replicas] == ["Completed", "Completed"] and done.removed == []
    again = replication.sync_regions(rlab, iv)  # east is ready: nothing to do
    assert again.replicas == [] and again.removed == []
    pool = ensure_pool(rlab.hv, rlab.pools[0])
    pool.create_overlay("user.qcow2", pool.volume(iv.volume_name))
    iv = rlab.gallery.update(P, O, S, "1.0.0", target_regions=["local"])
    done = replication.sync_regions(rlab, iv)
    assert len(done.removed) == 1 and rlab.pools[1] in done.removed[0]
    assert len(done.kept) == 1 and "in use by user.qcow2" in done.kept[0]
    assert volumes(rlab, rlab.pools[1]) == [] and sorted(volumes(rlab, rlab.pools[0])) == \
        sorted([iv.volume_name, "user.qcow2"])
    assert [r.pool for r in ReplicaStore(rlab.db).of(iv)] == [rlab.pools[0]]
    pool.delete("user.qcow2")


def test_dropping_a_region_keeps_the_replica_of_a_host_another_target_region_shares(rlab, qcow2_file):
    e1 = rlab.regions.configured("east").hosts[0]
    rlab.regions.add(Region("north", (e1,)))
    iv = publish(rlab, qcow2_file, "1.0.0", ["east", "north"])
    replication.replicate_version(rlab, iv)
    assert [r.region for r in ReplicaStore(rlab.db).of(iv)] == ["east", "north"]  # e1's row: last for north
    iv = rlab.gallery.update(P, O, S, "1.0.0", target_regions=["east"])
    done = replication.sync_regions(rlab, iv)
    assert done.removed == [] and volumes(rlab, rlab.pools[0]) == [VOLUME] and rlab.gallery.ready(iv, "east")


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_import_replicates_show_expands_replicate_again_and_delete(rlab, capsys, qcow2_file):
    ref = ["--publisher", P, "--offer", O, "--sku", S, "--version", "1.0.0"]
    code, out, err = run(capsys, "image", "import", *ref, "--file", str(qcow2_file), "--target-regions", "local",
                         "east")
    assert code == 0 and json.loads(out)["version"] == "1.0.0"
    lines = [ln for ln in err.splitlines() if ln.startswith("replica ")]
    assert len(lines) == 2 and all(": Completed in " in ln and "MB/s" in ln for ln in lines)
    code, out, _ = run(capsys, "image", "show", *ref, "--expand", "ReplicationStatus")
    assert code == 0 and summary(json.loads(out)["replicationStatus"]) == \
        {"local": ("Completed", 100), "east": ("Completed", 100)}
    code, out, _ = run(capsys, "image", "show", *ref)
    assert "replicationStatus" not in json.loads(out)
    code, out, err = run(capsys, "image", "replicate", *ref, "--region", "east")
    assert code == 0 and json.loads(out)["aggregatedState"] == "Completed"
    assert err.count("already there") == 2 and "MB/s" not in err  # a good copy is not sent again
    code, out, err = run(capsys, "image", "update", *ref, "--target-regions", "local", "west")
    assert code == 1 and "ERROR: (ReplicationFailed)" in err and DEAD in err
    assert err.count("removed the replica on") == 2 and json.loads(out)["version"] == "1.0.0"
    assert [volumes(rlab, p) for p in rlab.pools] == [[], [], [VOLUME]]
    code, _, err = run(capsys, "image", "delete", *ref)
    assert code == 1 and "(HostUnreachable)" in err and "nothing was deleted" in err
    ReplicaStore(rlab.db).forget(rlab.gallery.get(P, O, S, "1.0.0"), DEAD, "dead")
    code, _, err = run(capsys, "image", "delete", *ref)
    assert code == 0 and "deleted" in err and volumes(rlab, rlab.pools[2]) == []


def test_cli_replicate_of_a_version_without_configured_regions_says_so(rlab, capsys, qcow2_file):
    publish(rlab, qcow2_file, "1.0.0", ["local"])
    code, out, err = run(capsys, "image", "replicate", "--publisher", P, "--offer", O, "--sku", S,
                         "--version", "1.0.0")
    assert code == 0 and "nothing to replicate" in err and json.loads(out)["aggregatedState"] == "Completed"


@pytest.fixture
def rapi(rlab, driver, qcow2_file):
    from tests.apiserver import serve
    rlab.gallery.import_file(P, O, S, "1.0.0", qcow2_file)
    yield from serve(rlab, driver)


def update_body(regions: list[str]) -> m.GalleryImageVersionUpdate:
    return m.GalleryImageVersionUpdate(publishing_profile=m.GalleryImageVersionPublishingProfile(
        target_regions=[m.TargetRegion(name=r) for r in regions]))


def test_api_patch_replicates_in_the_operation_and_get_expands_the_status(rapi):
    client = rapi.client()
    plain = client.gallery_image_versions.get(RG, P, S, "1.0.0")
    assert plain.properties.replication_status is None
    done = client.gallery_image_versions.begin_update(RG, P, S, "1.0.0", update_body(["local", "east"])).result()
    assert done.properties.provisioning_state == "Succeeded"
    got = client.gallery_image_versions.get(RG, P, S, "1.0.0", expand="ReplicationStatus").properties
    assert got.replication_status.aggregated_state == "Completed"
    assert [(s.region, s.state, s.progress) for s in got.replication_status.summary] == \
        [("local", "Completed", 100), ("east", "Completed", 100)]
    assert [volumes(rapi.lab, p) for p in rapi.lab.pools[:2]] == [[VOLUME]] * 2

    with pytest.raises(HttpResponseError) as err:
        client.gallery_image_versions.begin_update(RG, P, S, "1.0.0", update_body(["local", "west"])).result()
    assert err.value.error.code == "ReplicationFailed" and DEAD in err.value.error.message
    assert [(d.code, d.target) for d in err.value.error.details] == [("ReplicationFailed", DEAD)]
    assert [volumes(rapi.lab, p) for p in rapi.lab.pools] == [[], [], [VOLUME]]  # east's copies went
    status = client.gallery_image_versions.get(RG, P, S, "1.0.0", expand="ReplicationStatus").properties \
        .replication_status
    assert status.aggregated_state == "Failed" and [s.state for s in status.summary] == ["Completed", "Failed"]


def test_api_put_of_a_new_version_replicates_and_delete_is_refused_then_removes_the_replicas(
        rapi, qcow2_file, monkeypatch):
    client = rapi.client()
    body = m.GalleryImageVersion(location="local", properties=m.GalleryImageVersionProperties(
        publishing_profile=m.GalleryImageVersionPublishingProfile(target_regions=[m.TargetRegion(name="east")]),
        storage_profile=m.GalleryImageVersionStorageProfile(
            os_disk_image=m.GalleryOSDiskImage(source=m.GalleryDiskImageSource(uri=str(qcow2_file))))))
    client.gallery_image_versions.begin_create_or_update(RG, P, S, "2.0.0", body).result()
    two = rapi.lab.gallery.get(P, O, S, "2.0.0")
    assert [volumes(rapi.lab, p) for p in rapi.lab.pools[:2]] == [[two.volume_name]] * 2
    assert rapi.lab.gallery.resolve(P, O, S, "latest", "east").version == "2.0.0"

    monkeypatch.setattr(InstanceStore, "images_in_use", lambda self: {(P, O, S, "2.0.0")})
    with pytest.raises(HttpResponseError) as err:
        client.gallery_image_versions.begin_delete(RG, P, S, "2.0.0").result()
    assert err.value.status_code == 409 and err.value.error.code == "ImageVersionInUse"
    monkeypatch.setattr(InstanceStore, "images_in_use", lambda self: set())
    client.gallery_image_versions.begin_delete(RG, P, S, "2.0.0").result()
    assert [volumes(rapi.lab, p) for p in rapi.lab.pools[:2]] == [[], []]
    assert [iv.version for iv in rapi.lab.gallery.list()] == ["1.0.0"]


def test_api_refuses_a_second_update_or_a_delete_while_one_replicates(rapi, monkeypatch):
    held, go = threading.Event(), threading.Event()

    def slow(*args):
        held.set()
        go.wait(10)
        return fake_replicate(*args)
    monkeypatch.setattr(replication, "replicate", slow)
    client = rapi.client()
    first = client.gallery_image_versions.begin_update(RG, P, S, "1.0.0", update_body(["local", "east"]))
    assert held.wait(10)
    try:
        for call in (lambda: client.gallery_image_versions.begin_update(RG, P, S, "1.0.0", update_body(["local"])),
                     lambda: client.gallery_image_versions.begin_delete(RG, P, S, "1.0.0")):
            with pytest.raises(HttpResponseError) as err:
                call().result()
            assert err.value.status_code == 409 and "being updated" in err.value.error.message
    finally:
        go.set()
    assert first.result().properties.provisioning_state == "Succeeded"
    assert [volumes(rapi.lab, p) for p in rapi.lab.pools[:2]] == [[VOLUME]] * 2


def test_api_put_whose_replication_fails_ends_the_operation_failed(rapi, qcow2_file):
    body = {"location": "local", "properties": {
        "publishingProfile": {"targetRegions": [{"name": "west"}]},
        "storageProfile": {"osDiskImage": {"source": {"uri": str(qcow2_file)}}}}}
    r = requests.put(rapi.url(f"galleries/{P}/images/{S}/versions/3.0.0"), params={"api-version": "2024-03-03"},
                     json=body, verify=str(rapi.ca), timeout=30, headers={"Authorization": f"Bearer {rapi.token()}"})
    assert r.status_code == 201, r.text
    for _ in range(200):
        op = requests.get(r.headers["Azure-AsyncOperation"], verify=str(rapi.ca), timeout=10,
                          headers={"Authorization": f"Bearer {rapi.token()}"}).json()
        if op["status"] != "InProgress":
            break
        time.sleep(0.05)
    assert op["status"] == "Failed" and op["error"]["code"] == "ReplicationFailed"
    assert op["error"]["details"][0]["target"] == DEAD and "host not usable" in op["error"]["details"][0]["message"]


def test_an_automatic_os_upgrade_waits_until_the_version_is_replicated_to_the_sets_region(rlab, qcow2_file):
    from controller.ops.service import Controller
    from tests.fakedriver import FakeDriver, make_scale_set
    from tests.test_rolling import model
    replication.replicate_version(rlab, publish(rlab, qcow2_file, "1.0.0"))
    doc = model(capacity=2)
    doc["location"] = "east"
    d = FakeDriver()
    make_scale_set(rlab, doc, d, "1.0.0")
    ctl = Controller(rlab, d, say=lambda m: None, clock=lambda: 0.0)
    ss = rlab.models.get("web")
    new = publish(rlab, qcow2_file, "2.0.0")
    assert ctl.due_version(ss) is None and "web" not in ctl.waiting  # 2.0.0 is not in east yet
    replication.replicate_version(rlab, new)
    assert ctl.due_version(ss) is None and ctl.waiting["web"][0] == "2.0.0"  # now seen: due after the delay
