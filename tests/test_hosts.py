"""Instances on the hosts of their region (libvirt's test driver; tests/hostnodes.py)."""
import copy
import posixpath
import threading
import time
from dataclasses import replace

import pytest

from controller.core.errors import ImageError
from controller.ops import commands as ops
from controller.ops import provision, views
from controller.ops.lab import Lab
from controller.virt import disks
from controller.virt.accel import Accel
from controller.virt.hosts import Connections
from controller.virt.hypervisor import Hypervisor, attached_os_disk
from tests.fakepool import disks_of
from tests.hostnodes import BOUND, O, P, S, booted, node, two_host_lab
from tests.test_model import BASE


def model(location: str, capacity: int) -> dict:
    doc = copy.deepcopy(BASE)
    doc["location"], doc["sku"]["capacity"] = location, capacity
    doc["properties"]["upgradePolicy"]["mode"] = "Manual"
    doc["properties"]["virtualMachineProfile"]["storageProfile"]["imageReference"]["version"] = "1.0.0"
    doc["properties"]["virtualMachineProfile"].pop("extensionProfile", None)
    return doc


@pytest.fixture
def hlab(lab, qcow2_file, tmp_path, monkeypatch):
    """A lab whose region `east` has two hosts, and a 4-instance set `web` there."""
    t = two_host_lab(lab, qcow2_file, tmp_path, monkeypatch, model("east", 4))
    yield t
    t.close()


def on(lab: Lab, uri: str | None, domain: str) -> bool:
    return lab.hv_at(uri).lookup(domain) is not None


def test_a_set_in_a_two_host_region_spreads_over_both_hosts_by_fault_domain(hlab):
    h1, h2 = hlab.test_uris
    insts = hlab.instances.list("web")
    assert [i.fault_domain for i in insts] == [0, 1, 0, 1]
    assert [(i.host_uri, i.host_pool) for i in insts] == [(h1, "pool-h1"), (h2, "pool-h2")] * 2
    for inst in insts:
        assert inst.provisioning_state == "Succeeded"
        other = h2 if inst.host_uri == h1 else h1
        assert on(hlab, inst.host_uri, inst.domain) and not on(hlab, other, inst.domain)
        assert not on(hlab, None, inst.domain)  # nothing on the lab's own libvirt
        assert attached_os_disk(hlab.hv_of(inst), inst.domain) == inst.os_disk
    assert hlab.hv_at(h1) is hlab.hv_of(insts[2]) and hlab.hv_at(None) is hlab.hv  # one connection per host
    hs = hlab.states(insts)
    assert hs.states == {i.domain: "running" for i in insts} and hs.unreachable == {}
    view = views.instance_view(hlab.models.get("web"), insts[3], hs.states[insts[3].domain])
    assert view["platformFaultDomain"] == 1 and view["statuses"][1]["code"] == "PowerState/running"


def test_a_remote_instances_disks_are_volumes_of_its_host_pool_over_the_replica(hlab, tmp_path):
    iv = hlab.image(hlab.instances.get("web", 0).image)
    for inst in hlab.instances.list("web"):
        pool = hlab.pool_of(inst)
        assert pool.path == str(tmp_path / inst.host_pool) and posixpath.dirname(inst.os_disk) == pool.path
        assert len(disks_of(pool, inst.domain)) == 4  # OS disk, seed, two data disks
        os_disk = disks.volume(pool, inst.os_disk)
        assert os_disk.backing() == pool.volume(iv.volume_name).path != str(iv.path)  # never a local file
        assert os_disk.backing_format() == "qcow2"
        assert disks_of(hlab.pool_at(None), inst.domain) == []  # nothing in the local pool


def test_an_image_not_replicated_to_the_host_fails_the_instance_naming_the_host(hlab):
    h1 = hlab.test_uris[0]
    iv = hlab.image(hlab.instances.get("web", 0).image)
    hlab.pool_at(h1, "pool-h1").delete(iv.volume_name)
    ss = hlab.models.get("web")
    new = provision.target_of(hlab, ss, hlab.instances.get("web", 0), False, None)
    with pytest.raises(ImageError) as err:
        provision.write_disks(hlab, new, iv)
    assert err.value.code == "ImageNotReplicated" and h1 in err.value.reason and iv.volume_name in err.value.reason
    assert not disks.exists(hlab.pool_of(new), new.os_disk) and not disks.exists(hlab.pool_of(new), new.seed)
    [after] = ops.reimage(hlab, "web", ["0"])
    assert after.provisioning_state == "Failed" and "ImageNotReplicated" not in after.error
    assert "has no replica" in after.error and after.os_disk == hlab.instances.get("web", 0).os_disk


def test_reimage_and_stop_act_on_the_instances_host(hlab):
    h2 = hlab.test_uris[1]
    [after] = ops.reimage(hlab, "web", ["1"])
    assert attached_os_disk(hlab.hv_at(h2), after.domain) == after.os_disk
    ops.power(hlab, "web", ["3"], "stop")
    assert hlab.hv_at(h2).lookup(hlab.instances.get("web", 3).domain).state() == "stopped"


def test_delete_removes_the_domains_from_every_host(hlab):
    domains = [i.domain for i in hlab.instances.list("web")]
    assert sorted(ops.delete(hlab, "web")) == sorted(domains)
    for uri, pool in zip(hlab.test_uris, ("pool-h1", "pool-h2"), strict=True):
        assert hlab.hv_at(uri).lab_domains(str(hlab.paths.home)) == []
        assert [v.name for v in hlab.pool_at(uri, pool).volumes() if v.name.startswith("sslab-")] == []


def test_reconcile_looks_at_every_host_of_the_region(hlab):
    h2 = hlab.test_uris[1]
    one, three = hlab.instances.get("web", 1), hlab.instances.get("web", 3)
    hlab.hv_at(h2).lookup(one.domain).undefine()  # lost on its host
    hlab.instances.delete("web", 3)  # a domain on the second host without its row
    done = ops._run(provision.reconcile(hlab, hlab.models.get("web")))
    assert f"domain {three.domain}: no instance record; removed" in done
    assert "instance 1: domain missing; defined again" in done
    assert on(hlab, h2, one.domain) and not on(hlab, hlab.test_uris[0], one.domain)
    assert not on(hlab, h2, three.domain)


def test_a_host_that_never_answers_makes_its_instances_unknown_within_the_bound(hlab, silent_host):
    hlab.db.execute("UPDATE instances SET host_uri=? WHERE instance_id IN (1, 3)", (silent_host,))
    hlab.db.commit()
    insts, ss = hlab.instances.list("web"), hlab.models.get("web")
    t0 = time.monotonic()
    hs = hlab.states(insts)
    assert time.monotonic() - t0 < BOUND + 1.5
    assert [hs.states[i.domain] for i in insts] == ["running", "unknown", "running", "unknown"]
    reason = hs.unreachable[insts[1].domain]
    assert silent_host in reason and "does not answer" in reason
    view = views.instance_view(ss, insts[1], hs.states[insts[1].domain], None, hs.unreachable.get(insts[1].domain))
    power = view["statuses"][1]
    assert (power["code"], power["level"], power["message"]) == ("PowerState/unknown", "Warning", reason)
    assert views.instance_view(ss, insts[0], hs.states[insts[0].domain])["statuses"][1]["code"] == \
        "PowerState/running"

    t0 = time.monotonic()
    readings = ops.poll_health(hlab, ss, insts=insts)  # the dead host costs one bound, not one per instance
    assert time.monotonic() - t0 < BOUND + 1.5
    assert readings[1].state == readings[3].state == "Unknown" and silent_host in readings[1].detail
    assert readings[0].state != "Unknown" and silent_host not in readings[0].detail  # polled as before
    assert ops.refresh(hlab, insts[1]) is insts[1]  # the last known view stays; nothing raised
    agg = views.aggregate_view(ss, insts, hs.states)["virtualMachine"]["statusesSummary"]
    assert {"code": "PowerState/unknown", "count": 2} in agg


def test_a_dead_host_costs_one_connect_and_a_dead_connection_is_reopened(tmp_path, silent_host):
    conns = Connections(lambda: pytest.fail("no local use"), "test:///default", timeout=0.5)
    for _ in range(3):
        with pytest.raises(Exception) as err:
            conns.get(silent_host)
        assert "no answer from libvirt within 0.5 s" in str(err.value)
    pending = [t for t in threading.enumerate() if t.name == "scaleset-libvirt-connect"]
    assert len(pending) == 1  # one pending connect for the host, not one per call
    uri = node(tmp_path, "h3")
    first = conns.get(uri)
    assert conns.get(uri) is first
    first.conn.close()  # the connection died (keepalive, a closed socket)
    second = conns.get(uri)
    assert second is not first and second.conn.isAlive() == 1
    conns.close()


def test_a_local_set_stays_on_the_local_host(lab, qcow2_file, monkeypatch):
    t = Lab(lab, "test:///default", Accel("tcg", "test"))
    t.gallery.import_file(P, O, S, "1.0.0", qcow2_file)
    monkeypatch.setattr(provision, "wait_booted", booted)
    ops.create(t, model("local", 6))
    insts = t.instances.list("web")
    assert [(i.fault_domain, i.host_uri, i.host_pool) for i in insts] == [(n % 5, None, None) for n in range(6)]
    assert all(isinstance(t.hv_of(i), Hypervisor) and t.hv_of(i) is t.hv for i in insts)
    assert t.hosts.states((None, i.domain) for i in insts).states == {i.domain: "running" for i in insts}
    ops.delete(t, "web")
    t.close()


def test_dropping_old_disks_on_a_host_that_stopped_answering_leaves_them_to_the_sweep(hlab, silent_host):
    """The settle is recorded already; reconcile deletes the journal's dead disks when the host is back."""
    gone = replace(hlab.instances.get("web", 0), host_uri=silent_host, host_pool="p")
    t0 = time.monotonic()
    hlab.remover(gone)(gone.os_disk, gone.seed)  # no error, within the host bound
    assert time.monotonic() - t0 < BOUND + 2
