"""The health agent's logic, on the host: state machine, settings, probes against a fake app."""
import asyncio
import socket

import aiohttp
import pytest
from aiohttp import web

from agent.health import (
    HEALTHY,
    INITIALIZING,
    UNHEALTHY,
    UNKNOWN,
    HealthState,
    ProbeResult,
)
from agent.probe import classify, probe_once
from agent.settings import SettingsError, parse_settings


def r(state, at):
    return ProbeResult(state, "", at)


def test_initializing_until_n_equal_results_then_hysteresis():
    h = HealthState(probes=3, grace_period=100, started_at=0)
    assert h.record(r(HEALTHY, 5)) == INITIALIZING
    assert h.record(r(UNKNOWN, 10)) == INITIALIZING
    assert h.record(r(HEALTHY, 15)) == INITIALIZING
    assert h.record(r(HEALTHY, 20)) == INITIALIZING
    assert h.record(r(HEALTHY, 25)) == HEALTHY and h.since == 25
    # two bad results are not enough with numberOfProbes=3
    assert h.record(r(UNHEALTHY, 30)) == HEALTHY
    assert h.record(r(UNHEALTHY, 35)) == HEALTHY
    assert h.record(r(UNHEALTHY, 40)) == UNHEALTHY and h.since == 40
    assert h.record(r(HEALTHY, 45)) == UNHEALTHY


def test_grace_period_ends_initialization_with_the_last_result():
    h = HealthState(probes=3, grace_period=12, started_at=0)
    h.record(r(HEALTHY, 5))
    h.record(r(UNKNOWN, 10))
    assert h.state == INITIALIZING
    assert h.tick(13) == UNKNOWN


def test_one_probe_changes_state_immediately():
    h = HealthState(probes=1, grace_period=5, started_at=0)
    assert h.record(r(UNHEALTHY, 1)) == UNHEALTHY
    assert h.record(r(HEALTHY, 2)) == HEALTHY


@pytest.mark.parametrize("status, body, want", [
    (200, b'{"ApplicationHealthState": "Healthy"}', HEALTHY),
    (200, b'{"ApplicationHealthState": "unhealthy"}', UNHEALTHY),
    (200, b'{"ApplicationHealthState": "Sleepy"}', UNKNOWN),
    (200, b'{"ApplicationHealthState": ', UNKNOWN),
    (200, b"ok", HEALTHY),  # binary mode
    (204, b"", HEALTHY),
    (500, b'{"ApplicationHealthState": "Healthy"}', UNKNOWN),
    (404, b"", UNKNOWN),
])
def test_classify(status, body, want):
    assert classify(status, body)[0] == want


@pytest.mark.parametrize("settings, field", [
    ({"protocol": "udp"}, "protocol"),
    ({"protocol": "tcp"}, "port"),
    ({"protocol": "tcp", "port": 80, "requestPath": "/"}, "requestPath"),
    ({"protocol": "http", "requestPath": "health"}, "requestPath"),
    ({"protocol": "http", "intervalInSeconds": 4}, "intervalInSeconds"),
    ({"protocol": "http", "numberOfProbes": 25}, "numberOfProbes"),
    ({"protocol": "http", "gracePeriod": 14401}, "gracePeriod"),
    ({"protocol": "http", "port": "80"}, "port"),
    ({"protocol": "http", "colour": 1}, "colour"),
])
def test_bad_settings_name_the_field(settings, field):
    with pytest.raises(SettingsError) as err:
        parse_settings(settings)
    assert err.value.field == field


def test_settings_defaults_are_azures():
    s = parse_settings({"protocol": "http", "numberOfProbes": 3, "intervalInSeconds": 10})
    assert (s.port, s.request_path, s.interval, s.probes, s.grace_period) == (80, "/", 10, 3, 30)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _with_app(handler, fn):
    app = web.Application()
    app.router.add_get("/health", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = _free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        return await fn(port)
    finally:
        await runner.cleanup()


def test_probes_against_a_local_app():
    mode = {"body": {"ApplicationHealthState": "Healthy"}, "status": 200, "sleep": 0}

    async def handler(request):
        await asyncio.sleep(mode["sleep"])
        return web.json_response(mode["body"], status=mode["status"])

    async def run(port):
        s = parse_settings({"protocol": "http", "port": port, "requestPath": "/health"})
        tcp = parse_settings({"protocol": "tcp", "port": port})
        out = []
        async with aiohttp.ClientSession() as session:
            out.append((await probe_once(s, session)).state)
            mode["body"] = {"ApplicationHealthState": "Unhealthy"}
            out.append((await probe_once(s, session)).state)
            mode["status"] = 503
            out.append((await probe_once(s, session)).state)
            mode.update(status=200, sleep=2)
            out.append((await probe_once(s, session, timeout=0.5)).state)
            out.append((await probe_once(tcp, None)).state)
        return out

    assert asyncio.run(_with_app(handler, run)) == [HEALTHY, UNHEALTHY, UNKNOWN, UNKNOWN, HEALTHY]


def test_refused_connection_is_unknown():
    port = _free_port()

    async def run():
        async with aiohttp.ClientSession() as session:
            http = await probe_once(parse_settings({"protocol": "http", "port": port}), session)
            tcp = await probe_once(parse_settings({"protocol": "tcp", "port": port}), None)
        return http.state, tcp.state

    assert asyncio.run(run()) == (UNKNOWN, UNKNOWN)


def test_agent_serves_its_view_and_follows_the_app():
    from agent.server import Agent, serve

    mode = {"state": "Healthy"}

    async def handler(request):
        return web.json_response({"ApplicationHealthState": mode["state"]})

    async def run(app_port):
        settings = parse_settings({"protocol": "http", "port": app_port, "requestPath": "/health",
                                   "intervalInSeconds": 5, "numberOfProbes": 1})
        settings = settings.__class__(**{**settings.__dict__, "interval": 0.05})  # fast loop for the test
        agent, stop, view_port = Agent(settings), asyncio.Event(), _free_port()
        task = asyncio.create_task(serve(agent, "127.0.0.1", view_port, stop))
        seen = []
        async with aiohttp.ClientSession() as session:
            for want in ("Healthy", "Unhealthy"):
                mode["state"] = want
                for _ in range(100):
                    await asyncio.sleep(0.05)
                    try:
                        async with session.get(f"http://127.0.0.1:{view_port}/health") as resp:
                            view = await resp.json()
                    except aiohttp.ClientError:
                        continue
                    if view["state"] == want:
                        seen.append(view)
                        break
        stop.set()
        await task
        return seen

    seen = asyncio.run(_with_app(handler, run))
    assert [v["state"] for v in seen] == ["Healthy", "Unhealthy"]
    assert seen[1]["lastProbes"][-1]["state"] == "Unhealthy" and seen[1]["since"]
    assert seen[0]["settings"]["requestPath"] == "/health"
