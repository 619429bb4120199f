"""Rolling upgrades across the hosts of a region (issue 16): the lab's own LibvirtDriver on two
test-driver hosts (tests/hostnodes.py; the boot wait is stubbed, health is the default source:
running with its extensions provisioned). The second host stops answering mid-upgrade: its
connection dies (as libvirt's keepalive leaves it) and a new connect reaches a port that never
answers; then it comes back with its domains as they were."""
import asyncio
import copy
import posixpath
import time
import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest

from controller.ops import upgrade_plan as plan
from controller.ops.lab import Lab
from controller.ops.rolling import Orchestrator, start_upgrade
from controller.ops.rolling_driver import LibvirtDriver
from controller.state.upgrades import UpgradeStore
from controller.virt import hosts, vm
from controller.virt.hypervisor import attached_os_disk
from tests.fakepool import disks_of
from tests.helpers import cli_json as cli
from tests.helpers import mark_replicated
from tests.hostnodes import BOUND, O, P, S, Silent, booted, two_host_lab
from tests.test_model import BASE

SLACK = 1.0  # seconds on top of the bound for a loaded machine


def model() -> dict:
    doc = copy.deepcopy(BASE)
    doc["location"], doc["sku"]["capacity"] = "east", 4
    vmp = doc["properties"]["virtualMachineProfile"]
    vmp.pop("networkProfile")  # the default health source: no guest answers a probe here
    vmp["storageProfile"].pop("dataDisks")
    doc["properties"]["upgradePolicy"] = {"mode": "Manual", "rollingUpgradePolicy": {
        "maxBatchInstancePercent": 25, "maxUnhealthyInstancePercent": 25}}  # batches of one; two of four is too many
    return doc


class Outage:
    """Host `uri` of `lab` stops answering (down) and comes back (up) with its state."""

    def __init__(self, lab: Lab, uri: str, silent: Silent, monkeypatch) -> None:
        self.uri, self.silent, self.down_now = uri, silent, False
        self.kept = lab.hv_at(uri)  # the test driver's state lives in this one connection
        real_open, real_alive = hosts.Hypervisor, hosts._alive

        def open_(u: str, *a, **kw):
            if u != uri:
                return real_open(u, *a, **kw)
            return real_open(silent.uri, *a, **kw) if self.down_now else self.kept

        monkeypatch.setattr(hosts, "Hypervisor", open_)
        monkeypatch.setattr(hosts, "_alive", lambda hv: not (self.down_now and hv is self.kept) and real_alive(hv))
        monkeypatch.setattr(self.kept, "close", lambda: None)  # the host's domains outlive the outage

    def down(self) -> None:
        self.down_now = True

    def up(self) -> None:
        self.down_now = False
        self.silent.hang_up()  # the connect left pending on the silent port ends


def disk_name(inst) -> str:
    """The instance's OS disk volume as tests.fakepool.disks_of names it (without the domain)."""
    return posixpath.basename(inst.os_disk)[len(inst.domain) + 1:]


@pytest.fixture
def rlab(lab, qcow2_file, tmp_path, monkeypatch):
    t = two_host_lab(lab, qcow2_file, tmp_path, monkeypatch, model())
    mark_replicated(t, t.gallery.import_file(P, O, S, "2.0.0", qcow2_file, ["east"]))
    monkeypatch.setattr(Lab, "open", classmethod(lambda cls, accel=None: t))  # the CLI works on this lab
    monkeypatch.setattr(vm, "wait", lambda hv, paths, inst, started, timeout=0, **kw: booted(t, inst, started))
    t.calls = calls = []  # (host URI, seconds) of every call that went to a remote host
    real_get = hosts.Connections.get

    def get(self, uri):
        t0 = time.monotonic()
        try:
            return real_get(self, uri)
        finally:
            calls.append((uri, time.monotonic() - t0))

    monkeypatch.setattr(hosts.Connections, "get", get)
    yield t
    t.close()


@pytest.fixture
def silent():
    host = Silent()
    yield host
    host.close()


def upgrade(lab: Lab, on_event=lambda msg: None, started_by: str = "User"):
    up = start_upgrade(lab, lab.models.get("web"), started_by)
    asyncio.run(Orchestrator(lab, LibvirtDriver(lab), poll_interval=0, on_event=on_event).run(up))
    return UpgradeStore(lab.db).get(up.id)


def on_own_host(lab: Lab, inst) -> bool:
    """The instance's domain is on its host, and only there, booted from its recorded OS disk."""
    others = [u for u in [None, *lab.test_uris] if u != inst.host_uri]
    return attached_os_disk(lab.hv_at(inst.host_uri), inst.domain) == inst.os_disk and \
        all(lab.hv_at(u).lookup(inst.domain) is None for u in others)


def versions(lab: Lab) -> list[str]:
    return [i.image["version"] for i in lab.instances.list("web")]


def test_an_upgrade_goes_in_batches_over_both_hosts(rlab):
    h1, h2 = rlab.test_uris
    before = {i.instance_id: (i.host_uri, i.os_disk) for i in rlab.instances.list("web")}
    assert [h for h, _ in before.values()] == [h1, h2, h1, h2]
    events: list[str] = []
    up = upgrade(rlab, events.append)
    assert {u for u, _ in rlab.calls} == {h1, h2}  # never the lab's own libvirt
    assert up.status == "Completed" and up.batches_done == 4
    assert [e for e in events if e.startswith("batch")] == [f"batch {n + 1}: instances [{n}] -> 2.0.0" for n in range(4)]
    assert versions(rlab) == ["2.0.0"] * 4
    for inst in rlab.instances.list("web"):
        assert inst.provisioning_state == "Succeeded" and inst.host_uri == before[inst.instance_id][0]
        assert inst.os_disk != before[inst.instance_id][1] and on_own_host(rlab, inst)


def test_a_host_that_stops_answering_mid_upgrade_stops_it_by_threshold_and_repair_finishes(
        rlab, silent, monkeypatch, capsys):
    h2 = rlab.test_uris[1]
    outage = Outage(rlab, h2, silent, monkeypatch)

    def event(msg: str) -> None:  # the second host goes once the first batch (instance 0, on h1) is done
        if msg.startswith("instance 0: Succeeded"):
            outage.down()

    t0 = time.monotonic()
    up = upgrade(rlab, event)
    assert time.monotonic() - t0 < 2 * BOUND + 3 * SLACK
    assert up.status == "Faulted" and up.error_code == plan.DURING == \
        "MaxUnhealthyInstancePercentExceededInRollingUpgrade"
    assert "2 of 4 instances are unhealthy (instances 1, 3)" in up.error_message
    assert versions(rlab) == ["2.0.0", "1.0.0", "1.0.0", "1.0.0"]  # the second batch was not started

    rlab.calls.clear()  # the lab still answers, each host call within the bound
    view, took = cli(capsys, "rolling-upgrade", "get-latest", "-n", "web")
    assert took < SLACK and view["runningStatus"]["code"] == "Faulted"
    assert view["error"]["code"] == plan.DURING
    listed, took = cli(capsys, "list-instances", "-n", "web")
    assert took < BOUND + SLACK
    assert [r["lab"]["health"] for r in listed] == ["Healthy", "Unknown"] * 2
    assert [r["storageProfile"]["imageReference"]["exactVersion"] for r in listed] == ["2.0.0"] + ["1.0.0"] * 3
    agg, took = cli(capsys, "get-instance-view", "-n", "web")
    assert took < BOUND + SLACK
    assert {"code": "PowerState/unknown", "count": 2} in agg["virtualMachine"]["statusesSummary"]
    views, took = cli(capsys, "get-instance-view", "-n", "web", "--instance-id", "*")
    assert took < 2 * BOUND + SLACK  # its states and its health: the dead host is waited for once each
    power = [v["statuses"][1] for v in views]
    assert [p["code"] for p in power] == ["PowerState/running", "PowerState/unknown"] * 2
    assert h2 in power[1]["message"] and "does not answer" in power[1]["message"]
    assert [v["vmHealth"]["status"]["code"] for v in views] == ["HealthState/healthy", "HealthState/unknown"] * 2
    repaired, took = cli(capsys, "repair", "-n", "web")
    assert took < BOUND + SLACK and any(h2 in line and "not checked" in line for line in repaired["repaired"])
    assert rlab.calls and max(s for _, s in rlab.calls) < BOUND + SLACK
    assert {u for u, s in rlab.calls if s >= BOUND} <= {h2}  # only the dead host costs its bound

    outage.up()
    repaired, _ = cli(capsys, "repair", "-n", "web")
    assert not any(h2 in line for line in repaired["repaired"])
    up = upgrade(rlab)
    assert up.status == "Completed" and versions(rlab) == ["2.0.0"] * 4
    for inst in rlab.instances.list("web"):
        assert inst.provisioning_state == "Succeeded" and on_own_host(rlab, inst)


@pytest.mark.parametrize("started_by", ["User", "Platform"])  # Platform: with automatic rollback
def test_a_host_that_stops_answering_during_its_batch_fails_that_instance_and_repair_finishes(
        rlab, silent, monkeypatch, capsys, started_by):
    h2 = rlab.test_uris[1]
    outage = Outage(rlab, h2, silent, monkeypatch)
    old = rlab.instances.get("web", 1)

    def event(msg: str) -> None:  # batch 2 is instance 1, on h2: the host goes as it starts
        if msg.startswith("batch 2:"):
            outage.down()

    t0 = time.monotonic()
    up = upgrade(rlab, event, started_by)
    assert time.monotonic() - t0 < 3 * (BOUND + SLACK)
    assert up.status == "Faulted" and up.error_code == plan.UPGRADED
    assert "1 of 2 upgraded instances" in up.error_message
    one = rlab.instances.get("web", 1)
    assert one.provisioning_state == "Failed" and h2 in one.error
    assert (one.os_disk, one.image["version"]) == (old.os_disk, "1.0.0")  # what its host still boots
    assert max(s for _, s in rlab.calls) < BOUND + SLACK

    outage.up()  # repair asks the host which disk it boots: the old one, so the swap is undone
    repaired, _ = cli(capsys, "repair", "-n", "web")
    assert "instance 1: unfinished rolling undone" in repaired["repaired"]
    assert disk_name(old) in disks_of(rlab.pool_of(one), one.domain)  # its old disk was kept
    assert rlab.instances.get("web", 1).provisioning_state == "Succeeded"
    up = upgrade(rlab)
    assert up.status == "Completed" and versions(rlab) == ["2.0.0"] * 4
    for inst in rlab.instances.list("web"):
        assert inst.provisioning_state == "Succeeded" and on_own_host(rlab, inst)
        assert [n for n in disks_of(rlab.pool_of(inst), inst.domain) if n.startswith("os-")] == [disk_name(inst)]


def test_a_guest_on_another_host_has_no_path_of_this_machine_but_its_disks(rlab, tmp_path):
    """Its console is a pty (the console log is a file here), and qemu runs as that host's libvirt
    makes it, not as the lab's owner here; a guest on the lab's own host keeps both."""
    for inst in rlab.instances.list("web"):
        root = ET.fromstring(rlab.hv_at(inst.host_uri).lookup(inst.domain).xml())
        assert [s.get("type") for s in root.iter("serial")] == ["pty"] and root.find("seclabel") is None
        assert str(rlab.paths.home) not in ET.tostring(root.find("devices"), encoding="unicode")
    here = vm.domain_xml(rlab.paths, replace(rlab.instances.get("web", 0), host_uri=None), {}, rlab.accel)
    root = ET.fromstring(here)
    assert [s.get("type") for s in root.iter("serial")] == ["file"] and root.find("seclabel") is not None
