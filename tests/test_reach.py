"""Reaching guests on another host: a real sshd on 127.0.0.1 (tests/sshd.py) stands for that
host, small servers on 127.0.0.1 stand for its guests' forwarded ports. A remote instance's
health and SSH go through the host's tunnel; a local one is reached directly, no tunnel opened."""
from __future__ import annotations

import asyncio
import getpass
import json
import time
from pathlib import Path

import paramiko
import pytest

from controller.core.errors import HypervisorError, ModelError
from controller.model.instance import AGENT_PORT, SSH_PORT, Instance
from controller.model.region import Host, Region
from controller.ops import commands as ops
from controller.ops.health import Monitor
from controller.ops.lab import Lab
from controller.virt import vm
from controller.virt.hosts import HostStates
from controller.virt.reach import Route, direct, endpoint_for
from controller.virt.ssh import ensure_keypair
from controller.virt.tunnel import SshEndpoint, TunnelError
from tests.sshd import Sshd, free_port
from tests.test_health_monitor import model
from tests.test_tunnel import Handler, Server, _my_listeners, my_sockets, needs_sshd

BOUND = 2.0  # the lab's host_timeout here: a dead host fails within it (two tries of half)


class Agent(Server):
    """A guest's health agent on 127.0.0.1; `peers` says who opened each connection to it:
    "self" (this process: a direct connect) or "other" (sshd's side of a tunnel)."""

    def __init__(self) -> None:
        self.peers: list[str] = []
        super().__init__(handler=AgentHandler)


class AgentHandler(Handler):
    def body(self) -> bytes:
        self.server.peers.append("self" if _own_socket(self.client_address[1]) else "other")  # type: ignore[attr-defined]
        return json.dumps({"state": "Healthy", "lastProbes": [{"detail": "up"}]}).encode()


def _own_socket(local_port: int) -> bool:
    """Whether this process holds the 127.0.0.1 TCP socket whose local port is `local_port`."""
    mine = my_sockets()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        if int(f[1].split(":")[1], 16) == local_port:
            return f[9] in mine
    raise AssertionError(f"no socket with local port {local_port}")


@pytest.fixture
def agent():
    server = Agent()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def rlab(lab, tmp_path):
    """A lab (test:///default) with region `east` whose host h1 is tunnelled to through `sshd`."""
    _, public = ensure_keypair(lab.keys)
    with Sshd(tmp_path / "sshd", public) as sshd:
        t = Lab(lab, "test:///default", host_timeout=BOUND)
        t.regions.add(Region("east", (Host("test:///h1.xml", "pool-h1", ssh=f"root@127.0.0.1:{sshd.port}"),
                                      Host("qemu+tcp://10.9.9.9/system", "pool-h2"))))
        t.sshd = sshd
        yield t
        t.close()
    assert sshd.pids() == []


def instance(i: int, ports: dict, host_uri: str | None) -> Instance:
    return Instance(scale_set="web", instance_id=i, domain=f"d{i}", computer_name=f"w{i}", update_domain=0,
                    fault_domain=0, profile={"vm": {"osProfile": {"adminUsername": "root"}}}, profile_digest="",
                    os_disk="", seed="", ci_instance_id="", ports=ports, host_uri=host_uri)


def states(readings: dict) -> set[str]:
    return {r.state for r in readings.values()}


def poll(lab: Lab, insts: list[Instance], source: str = "agent") -> dict:
    return asyncio.run(Monitor(model(source), timeout=1.0).poll(insts, dict.fromkeys(range(10), True), lab.route))


@pytest.mark.parametrize("uri, ssh, want", [
    ("qemu+ssh://lab@h1:2222/system", None, SshEndpoint("lab", "h1", 2222)),
    ("qemu+tcp://h1/system", "root@h1.example.org:2200", SshEndpoint("root", "h1.example.org", 2200)),
    ("qemu:///system", None, None),
    ("test:///default", None, None),
    ("qemu+tcp://127.0.0.1:16510/system", None, None),  # a second daemon on this machine's loopback
])
def test_the_ssh_way_to_a_host_comes_from_its_region_entry_or_its_uri(uri, ssh, want):
    assert endpoint_for(uri, ssh) == want


def test_a_host_without_an_ssh_way_or_a_bad_one_is_refused_by_name():
    with pytest.raises(HypervisorError, match="no SSH way to the guests of qemu\\+tcp://h9/system") as err:
        endpoint_for("qemu+tcp://h9/system", None)
    assert err.value.field == "qemu+tcp://h9/system" and err.value.status == 502
    with pytest.raises(ModelError, match="port 'x'"):
        endpoint_for("qemu+tcp://h9/system", "root@h9:x")
    assert endpoint_for("qemu+tcp://h9/system", "h9").user == getpass.getuser()


def test_a_direct_route_is_this_machines_loopback_and_a_missing_forward_says_so():
    route = direct({SSH_PORT: 2201, AGENT_PORT: 2202})
    assert (route.remote, route.port(AGENT_PORT), route.connector()) == (False, ("127.0.0.1", 2202), None)
    route.check()  # nothing to check
    with pytest.raises(HypervisorError, match="no forward for guest port 8080; run update-instances"):
        route.port(8080)
    with pytest.raises(ValueError):
        Route({}, SshEndpoint("root", "h1"))


@needs_sshd
def test_a_remote_instances_health_is_read_through_the_hosts_tunnel(rlab, agent):
    before = _my_listeners()
    remote = instance(0, {AGENT_PORT: agent.port}, "test:///h1.xml")
    route = rlab.route(remote)
    assert route.remote and route.endpoint == SshEndpoint("root", "127.0.0.1", rlab.sshd.port)
    got = poll(rlab, [remote, instance(1, {AGENT_PORT: agent.port}, "test:///h1.xml")])
    assert [(r.state, r.detail) for r in got.values()] == [("Healthy", "up")] * 2
    assert agent.peers == ["other", "other"]  # sshd's side of the tunnel connected, not this process
    assert rlab.sshd.accepted() == 1  # one SSH connection for the host, reused
    host, port = route.port(AGENT_PORT)
    assert (host, port != agent.port) == ("127.0.0.1", True) and route.port(AGENT_PORT) == (host, port)
    mine = _my_listeners() - before
    assert {p for _, p in mine} == {port} and {a for a, _ in mine} == {"127.0.0.1"}


@needs_sshd
def test_a_local_instance_is_reached_directly_and_opens_no_tunnel(rlab, agent):
    insts = [instance(0, {AGENT_PORT: agent.port}, None), instance(1, {AGENT_PORT: agent.port}, "test:///default")]
    assert [rlab.route(i) for i in insts] == [direct({AGENT_PORT: agent.port})] * 2
    got = poll(rlab, insts)
    assert [r.state for r in got.values()] == ["Healthy"] * 2 and agent.peers == ["self", "self"]
    assert "tunnels" not in rlab.__dict__ and rlab.sshd.accepted() == 0


@needs_sshd
def test_a_remote_guests_ssh_goes_through_the_tunnel(rlab, tmp_path):
    _, public = ensure_keypair(rlab.paths.keys)
    with Sshd(tmp_path / "guest", public) as guest:  # the guest's SSH forward on h1's 127.0.0.1
        inst = instance(0, {SSH_PORT: guest.port}, "test:///h1.xml")
        client = vm.ssh(rlab.paths, inst, None, rlab.route(inst))
        client.wait(time.monotonic() + 20)
        try:
            assert isinstance(client._client.get_transport().sock, paramiko.Channel)
            assert client.run("echo through").stdout == "through\n"
        finally:
            client.close()
        assert rlab.sshd.accepted() == 1 and guest.accepted() == 1
        local = instance(1, {SSH_PORT: guest.port}, None)
        direct_client = vm.ssh(rlab.paths, local, None, rlab.route(local))
        assert (direct_client.sock, direct_client.host, direct_client.port) == (None, "127.0.0.1", guest.port)


@needs_sshd
def test_a_dead_host_makes_its_instances_unknown_within_the_bound(rlab, agent):
    insts = [instance(i, {AGENT_PORT: agent.port, SSH_PORT: agent.port}, "test:///h1.xml") for i in range(3)]
    assert [r.state for r in poll(rlab, insts).values()] == ["Healthy"] * 3
    rlab.sshd.pause()  # the host hangs with the connection open: the agent's read times out
    try:
        start = time.monotonic()
        got = poll(rlab, insts)
        took = time.monotonic() - start
    finally:
        rlab.sshd.resume()
    assert {r.state for r in got.values()} == {"Unknown"} and took < BOUND + 2, (got, took)
    deadline = time.monotonic() + 3 * BOUND  # the host answers again: the tunnel comes back by itself
    while states(got := poll(rlab, insts)) != {"Healthy"} and time.monotonic() < deadline:
        time.sleep(0.2)
    assert {r.state for r in got.values()} == {"Healthy"}, got
    ep = str(SshEndpoint("root", "127.0.0.1", rlab.sshd.port))
    rlab.sshd.stop()  # the host is gone
    rlab.tunnels.close()  # as its dropped connection would be: the next poll connects afresh
    start = time.monotonic()
    got = poll(rlab, insts)
    took = time.monotonic() - start
    assert {r.state for r in got.values()} == {"Unknown"}, got
    assert all(f"unreachable: {ep}: cannot connect" in r.detail for r in got.values()), got
    assert took < BOUND + 2  # checked once per host, not once per instance
    start = time.monotonic()
    with pytest.raises(TunnelError, match="cannot connect"):
        vm.ssh(rlab.paths, insts[0], None, rlab.route(insts[0])).wait(time.monotonic() + 30)
    assert time.monotonic() - start < BOUND + 2  # a down host is not retried like a booting guest
    assert set(agent.peers) == {"other"} and len(agent.peers) >= 6


@needs_sshd
def test_a_host_with_no_ssh_way_gives_unknown_naming_it(rlab, agent):
    got = poll(rlab, [instance(0, {AGENT_PORT: agent.port}, "qemu+tcp://10.9.9.9/system")])
    assert got[0].state == "Unknown" and "no SSH way to the guests of qemu+tcp://10.9.9.9/system" in got[0].detail
    assert agent.peers == []
    assert poll(rlab, [instance(0, {}, "qemu+tcp://10.9.9.9/system")], "default")[0].state == "Unhealthy"


@needs_sshd
def test_the_boot_wait_of_a_remote_guest_reads_no_console_log(rlab, monkeypatch):
    seen = []

    def wait_ready(hv, name, log, client, *args, **kwargs):
        seen.append((log, client.sock))
        raise TimeoutError("stop")

    monkeypatch.setattr(vm, "wait_ready", wait_ready)
    for inst in (instance(0, {SSH_PORT: free_port()}, None), instance(1, {SSH_PORT: free_port()}, "test:///h1.xml")):
        with pytest.raises(TimeoutError):
            vm.wait(None, rlab.paths, inst, time.monotonic(), 1, rlab.route(inst))
    (local_log, local_sock), (remote_log, remote_sock) = seen
    assert local_log == vm.console_log(rlab.paths, instance(0, {}, None)) and local_sock is None
    assert remote_log is None and callable(remote_sock)


@needs_sshd
def test_hosts_at_finds_every_region_entry_of_a_uri(rlab):
    rlab.regions.add(Region("west", (Host("test:///h1.xml", "other-pool"),)))
    assert [(h.pool, h.ssh) for h in rlab.regions.hosts_at("test:///h1.xml")] == [
        ("pool-h1", f"root@127.0.0.1:{rlab.sshd.port}"), ("other-pool", None)]
    assert rlab.regions.hosts_at("test:///nowhere.xml") == []


@needs_sshd
def test_the_health_command_path_reads_remote_and_local_instances_each_their_way(rlab, agent, monkeypatch):
    insts = [instance(0, {AGENT_PORT: agent.port}, None), instance(1, {AGENT_PORT: agent.port}, "test:///h1.xml")]
    monkeypatch.setattr(rlab, "states", lambda _: HostStates({"d0": "running", "d1": "running"}, {}))
    got = ops.poll_health(rlab, model("agent"), insts=insts)
    assert [got[i].state for i in (0, 1)] == ["Healthy", "Healthy"]
    assert sorted(agent.peers) == ["other", "self"] and rlab.sshd.accepted() == 1
