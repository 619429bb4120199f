"""VM tier, issue 16 end to end: region `duo` is this machine's libvirtd (fault domain 0) and a
second libvirtd (tests/secondhost.py, qemu+tcp on 127.0.0.1; fault domain 1). Both versions are
replicated to it for real; four guests are spread over the two hosts by fault domain; a rolling
upgrade runs across them in batches of one. After the first batch the second daemon is killed:
its instances go Unknown, the upgrade stops by threshold with Azure's code and the lab keeps
answering. The daemon comes back (its guests ran on), `repair` and a new upgrade finish.
Prints the controller's CPU per batch, by the host of its instance. Needs root."""
from __future__ import annotations

import contextlib
import os
import signal

import pytest

from controller.core.errors import ModelError
from controller.model.region import Host, Region
from controller.ops import commands as ops
from controller.ops import replication
from controller.ops import upgrade_plan as plan
from controller.ops.lab import Lab
from controller.virt.hypervisor import Hypervisor, attached_os_disk
from tests.helpers import cli_json as cli
from tests.secondhost import second_host  # noqa: F401 (session fixture)
from tests.vmfixtures import BatchCpu, O, P, S, app_model, upgrade

pytestmark = [
    pytest.mark.vm,
    pytest.mark.timeout(2400),  # four guests booted, then upgraded one at a time, under TCG
    pytest.mark.skipif(os.geteuid() != 0, reason="image builds and a second libvirtd need root"),
]
NAME, COUNT = "duo", 4
V1, V2 = "1.0.0", "1.1.0"  # tests/vmfixtures.py: v1, v2


def marker(i: int) -> str:
    return f"scaleset-lab duo marker of instance {i}"


def retarget(lab: Lab, version: str, regions: list[str]) -> None:
    """Set the version's target regions and replicate (or drop replicas) to match."""
    iv = lab.gallery.update(P, O, S, version, target_regions=regions)
    sync = replication.sync_regions(lab, iv)
    assert all(r.state == "Completed" for r in sync.replicas), [r.details for r in sync.replicas]
    assert not sync.kept, sync.kept


@pytest.fixture(scope="module")
def duo(vm_lab, v1, v2, request):
    far = request.getfixturevalue("second_host")
    lab = Lab.open()
    lab.regions.add(Region(NAME, (lab.local, Host(far.uri, far.pool))))
    targets = {v: lab.gallery.get(P, O, S, v).target_regions for v in (V1, V2)}
    try:
        retarget(lab, V1, [*targets[V1], NAME])  # 1.1.0 comes to `duo` later: `latest` there is 1.0.0
        ops.create(lab, {**app_model(NAME, COUNT, "duo", "latest", {"mode": "Manual", "rollingUpgradePolicy": {
            "maxBatchInstancePercent": 25, "maxUnhealthyInstancePercent": 25}}, {"healthWaitTimeout": "PT4M"}),
            "location": NAME})
        lab.far = far
        yield lab
    finally:
        if far.ns.run(["virsh", "-q", "list"], check=False).returncode != 0:
            far.ns.start_daemon()  # a test that failed while it was down
        try:
            with contextlib.suppress(ModelError):  # not made (a failed create)
                ops.delete(lab, NAME)
        finally:
            for v, regions in targets.items():
                retarget(lab, v, regions)
            lab.regions.remove(NAME)
            lab.close()


def sh(lab: Lab, i: int, script: str) -> str:
    res = ops.run_command(lab, NAME, str(i), script)
    assert res.exit_status == 0, res.stderr
    return res.stdout


def far_disk(lab: Lab, inst) -> str:
    """The OS disk volume's XML on the second host, as that host's libvirtd reports it."""
    return lab.far.ns.run(["virsh", "vol-dumpxml", "--pool", lab.far.pool, os.path.basename(inst.os_disk)]).stdout


def test_four_guests_spread_over_two_hosts_by_fault_domain(duo):
    insts = duo.instances.list(NAME)
    assert [i.provisioning_state for i in insts] == ["Succeeded"] * COUNT, [i.error for i in insts]
    assert [(i.fault_domain, i.host_uri) for i in insts] == [(0, duo.uri), (1, duo.far.uri)] * 2
    far = Hypervisor(duo.far.uri)  # a connection of the test's own: what the second daemon runs
    try:
        assert sorted(d.name() for d in far.conn.listAllDomains()) == sorted(i.domain for i in insts[1::2])
        for inst in insts:
            assert attached_os_disk(duo.hv_of(inst), inst.domain) == inst.os_disk
    finally:
        far.close()
    for inst in insts[1::2]:  # overlays on the replica, with its format given (not raw)
        xml = far_disk(duo, inst)
        assert f"<path>/var/lib/libvirt/images/{duo.gallery.get(P, O, S, V1).volume_name}</path>" in xml
        assert "<format type='qcow2'/>" in xml.split("<backingStore>")[1]
    for inst in insts:
        sh(duo, inst.instance_id, f"printf '{marker(inst.instance_id)}' | "
                                  "dd of=/dev/disk/by-id/virtio-lun-0 conv=fsync status=none")
        assert sh(duo, inst.instance_id, "cat /etc/scaleset-demo 2>/dev/null; echo v1").split() == ["v1"]


def test_the_second_host_dies_mid_upgrade_then_repair_and_a_new_upgrade_finish(duo, capsys):
    far = duo.far
    retarget(duo, V2, [*duo.gallery.get(P, O, S, V2).target_regions, NAME])  # now `latest` in duo is 1.1.0
    first = BatchCpu(after_first=lambda: far.ns.signal_daemon(signal.SIGKILL))
    up = upgrade(duo, NAME, first)
    assert up.status == "Faulted" and up.error_code == plan.DURING == \
        "MaxUnhealthyInstancePercentExceededInRollingUpgrade", up.error_message
    assert "2 of 4 instances are unhealthy (instances 1, 3)" in up.error_message
    assert [i.image["version"] for i in duo.instances.list(NAME)] == [V2, V1, V1, V1]

    listed, took = cli(capsys, "list-instances", "-n", NAME)  # the lab answers, within its bound per host
    assert took < 2 * duo.host_timeout, took
    assert [r["lab"]["health"] for r in listed] == ["Healthy", "Unknown"] * 2
    views, took = cli(capsys, "get-instance-view", "-n", NAME, "--instance-id", "*")
    assert took < 3 * duo.host_timeout, took
    power = [v["statuses"][1] for v in views]
    assert [p["code"] for p in power] == ["PowerState/running", "PowerState/unknown"] * 2
    assert far.uri in power[1]["message"]

    far.ns.start_daemon()  # libvirtd again; the guests it ran are still running
    repaired, _ = cli(capsys, "repair", "-n", NAME)
    assert not any(far.uri in line for line in repaired["repaired"]), repaired
    second = BatchCpu()
    up = upgrade(duo, NAME, second)
    print("\nfirst upgrade:", first.events, "\nsecond upgrade:", second.events)  # (capsys took earlier output)
    assert up.status == "Completed", up.error_message
    cpu = first.per_batch() + second.per_batch()  # batches: instance 0 (this host), 1 (far), 2 (this), 3 (far)
    print(f"controller CPU per batch (s), instances on 2 hosts: this host {cpu[0::2]}, second host {cpu[1::2]}")
    for inst in duo.instances.list(NAME):
        assert inst.provisioning_state == "Succeeded" and inst.stamp["version"] == V2
        assert attached_os_disk(duo.hv_of(inst), inst.domain) == inst.os_disk
        out = sh(duo, inst.instance_id, f"head -c {len(marker(inst.instance_id))} /dev/disk/by-id/virtio-lun-0; "
                                        "echo; cat /etc/scaleset-demo")
        assert out.splitlines() == [marker(inst.instance_id), "version two"]  # data kept, OS replaced
    for inst in duo.instances.list(NAME)[1::2]:
        assert duo.gallery.get(P, O, S, V2).volume_name in far_disk(duo, inst)
