"""The controller's view of instance health, from the scale set's one health source:

- `agent`: the ApplicationHealthLinux agent in the guest, read over its 127.0.0.1 forward;
- `probe`: `networkProfile.healthProbe`, probed by the controller itself (the load balancer's
  part in Azure): HTTP 200 or an open TCP port is up, `numberOfProbes` failures take it down;
- `default`: no source: healthy when running and every extension provisioned successfully.

Polls run concurrently with time-outs; an unreachable agent is `Unknown`, never an exception.
A guest on another host is read through its `Route` (an SSH tunnel to that host, checked once
per host and poll): a host that cannot be reached makes its instances `Unknown`, naming it.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace

import aiohttp
import yarl

from agent.health import (
    HEALTHY,
    INITIALIZING,
    UNHEALTHY,
    UNKNOWN,
    HealthState,
    ProbeResult,
)
from controller.core.clock import now_iso
from controller.model.instance import AGENT_PORT, Instance
from controller.model.scaleset import ScaleSet
from controller.state.health import Reading
from controller.virt.reach import Route, direct
from controller.virt.tunnel import SshEndpoint

AGENT_TIMEOUT = 3.0


def source_of(ss: ScaleSet) -> str:
    if ss.health_extension() is not None:
        return "agent"
    return "probe" if ss.properties.virtualMachineProfile.networkProfile.healthProbe else "default"


async def read_agent(session: aiohttp.ClientSession, port: int, timeout: float = AGENT_TIMEOUT) -> Reading:
    url = f"http://127.0.0.1:{port}/health"
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            if resp.status != 200:
                return Reading(UNKNOWN, "agent", f"agent answered HTTP {resp.status}")
            view = await resp.json(content_type=None)
    except TimeoutError:
        return Reading(UNKNOWN, "agent", "agent timed out")
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        return Reading(UNKNOWN, "agent", f"agent unreachable: {type(exc).__name__}")
    state = view.get("state") if isinstance(view, dict) else None
    if state not in (HEALTHY, UNHEALTHY, UNKNOWN, INITIALIZING):
        return Reading(UNKNOWN, "agent", "agent answered garbage")
    last = (view.get("lastProbes") or [{}])[-1]
    since = view.get("since") if isinstance(view.get("since"), str) else None
    return Reading(state, "agent", str(last.get("detail", ""))[:200], since)


def probe_url(host_port: int, request_path: str) -> yarl.URL:
    """http://127.0.0.1:PORT + the model's requestPath, built by parts: no path can change the host or
    port (`@127.0.0.1:9/x` would as text). The model only holds validated paths; this holds anyway."""
    path, _, query = request_path.partition("?")
    url = yarl.URL.build(scheme="http", host="127.0.0.1", port=host_port,
                         path=path if path.startswith("/") else "/" + path, query_string=query, encoded=True)
    if (url.scheme, url.host, url.port, url.user) != ("http", "127.0.0.1", host_port, None):
        raise ValueError(f"requestPath would leave 127.0.0.1:{host_port}")
    return url


async def probe_host(session: aiohttp.ClientSession, protocol: str, host_port: int, guest_port: int,
                     path: str, timeout: float = AGENT_TIMEOUT) -> ProbeResult:
    """The load balancer's probe: up on HTTP 200 (the body is not read) or an open TCP port."""
    now = time.time()
    try:
        if protocol.lower() == "tcp":
            _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", host_port), timeout)
            writer.close()
            return ProbeResult(HEALTHY, f"tcp {guest_port} open", now)
        async with session.get(probe_url(host_port, path), allow_redirects=False,
                               timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            return ProbeResult(HEALTHY if resp.status == 200 else UNHEALTHY, f"HTTP {resp.status}", now)
    except TimeoutError:
        return ProbeResult(UNHEALTHY, "timed out", now)
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        return ProbeResult(UNHEALTHY, f"{type(exc).__name__}", now)


class Monitor:
    """Polls a scale set's instances; keeps the probe hysteresis between polls."""

    def __init__(self, ss: ScaleSet, timeout: float = AGENT_TIMEOUT, clock: Callable[[], float] = time.monotonic) -> None:
        self.ss, self.timeout, self.clock = ss, timeout, clock
        self.source = source_of(ss)
        self._probe_states: dict[int, HealthState] = {}
        self._probed: dict[int, tuple[tuple, float, Reading]] = {}  # id -> (its disk and boot, when, reading)

    async def _probe(self, session: aiohttp.ClientSession, inst: Instance, route: Route) -> Reading:
        """The probe's reading, probed at most every `intervalInSeconds` per boot of an OS disk
        (a new disk or boot is probed at once, with a fresh count of `numberOfProbes`)."""
        p = self.ss.properties.virtualMachineProfile.networkProfile.healthProbe
        assert p is not None
        host_port = inst.ports.get(p.port)
        if host_port is None:
            return Reading(UNKNOWN, "probe", f"no forward for port {p.port}; run update-instances")
        key, now = (inst.os_disk, inst.boot_id), self.clock()
        last = self._probed.get(inst.instance_id)
        if last is not None and last[0] == key and now - last[1] < p.intervalInSeconds:
            return replace(last[2])
        if last is not None and last[0] != key:
            self._probe_states.pop(inst.instance_id, None)
        _, port = route.port(p.port)
        result = await probe_host(session, p.protocol, port, p.port, p.requestPath or "/", self.timeout)
        hs = self._probe_states.setdefault(inst.instance_id, HealthState(p.numberOfProbes, 0, result.at))
        reading = Reading(hs.record(result), "probe", result.detail)
        self._probed[inst.instance_id] = (key, now, reading)
        return replace(reading)

    async def read(self, session: aiohttp.ClientSession, inst: Instance, running: bool,
                   route: Route | None = None) -> Reading:
        """One instance's reading, its ports reached through `route` (default: directly)."""
        try:
            route = route or direct(inst.ports)
            if not running:
                return Reading(UNKNOWN, self.source, "not running")
            if self.source == "agent":
                return await read_agent(session, route.port(AGENT_PORT)[1], self.timeout)
            if self.source == "probe":
                return await self._probe(session, inst, route)
            failed = [s["name"] for s in inst.extensions if s.get("provisioningState") != "Succeeded"]
            if inst.provisioning_state != "Succeeded" or failed:
                return Reading(UNHEALTHY, "default", f"provisioning {inst.provisioning_state}"
                               + (f"; extensions not succeeded: {', '.join(failed)}" if failed else ""))
            return Reading(HEALTHY, "default", "running, extensions succeeded")
        except Exception as exc:  # noqa: BLE001 - one instance's trouble never stops the loop
            return Reading(UNKNOWN, self.source, f"{type(exc).__name__}: {exc}"[:200])

    async def poll(self, instances: list[Instance], running: dict[int, bool],
                   route_of: Callable[[Instance], Route] | None = None) -> dict[int, Reading]:
        """Every instance's reading at once; `route_of` says how to reach each (Lab.route; the
        default source reads no guest port: it needs none)."""
        if route_of is None or self.source == "default":
            route_of = _direct
        routes: dict[int, Route | Exception] = {}
        for i in instances:
            try:
                routes[i.instance_id] = route_of(i)
            except Exception as exc:  # noqa: BLE001 - no way to the instance: Unknown, saying why
                routes[i.instance_id] = exc
        down = await _unreachable([r for r in routes.values() if isinstance(r, Route)])

        async def one(session: aiohttp.ClientSession, i: Instance) -> Reading:
            route = routes[i.instance_id]
            why = route if isinstance(route, Exception) else down.get(route.endpoint)
            if why is not None:
                return Reading(UNKNOWN, self.source, f"unreachable: {why}"[:200])
            return await self.read(session, i, running.get(i.instance_id, False), route)

        async with aiohttp.ClientSession() as session:
            readings = await asyncio.gather(*(one(session, i) for i in instances))
        stamp = now_iso()
        for r in readings:
            r.checked_at = stamp
        return {i.instance_id: r for i, r in zip(instances, readings, strict=True)}


def _direct(inst: Instance) -> Route:
    return direct(inst.ports)


async def _unreachable(routes: list[Route]) -> dict[SshEndpoint | None, Exception]:
    """Each remote host of `routes` checked once, all at once: endpoint -> why it cannot be reached
    (bounded by the tunnel's own timeouts)."""
    first = {r.endpoint: r for r in routes if r.remote}

    async def check(route: Route) -> Exception | None:
        try:
            await asyncio.to_thread(route.check)
        except Exception as exc:  # noqa: BLE001 - TunnelError mostly; any error means unreachable
            return exc
        return None

    errors = await asyncio.gather(*(check(r) for r in first.values()))
    return {ep: exc for ep, exc in zip(first, errors, strict=True) if exc is not None}
