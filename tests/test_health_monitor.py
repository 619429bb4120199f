"""The controller's health monitor against real agents, hanging, refusing and garbage ones."""
import asyncio
import copy
import socket
import time

import aiohttp
from aiohttp import web

from agent.server import Agent
from agent.settings import parse_settings
from controller.model.instance import AGENT_PORT, Instance
from controller.model.scaleset import parse
from controller.ops.health import Monitor, probe_host, probe_url, source_of
from controller.state.db import connect
from controller.state.health import HealthStore, Reading
from tests.test_model import BASE

HEALTH_EXT = {"name": "health", "properties": {"publisher": "Microsoft.ManagedServices",
                                               "type": "ApplicationHealthLinux",
                                               "settings": {"protocol": "http", "port": 8080}}}


def model(source: str):
    d = copy.deepcopy(BASE)
    vmp = d["properties"]["virtualMachineProfile"]
    if source != "probe":
        vmp.pop("networkProfile")
    if source == "agent":
        vmp["extensionProfile"] = {"extensions": [HEALTH_EXT]}
    return parse(d)


def inst(i: int, ports: dict, **kw) -> Instance:
    return Instance(scale_set="web", instance_id=i, domain=f"d{i}", computer_name=f"w{i}", update_domain=0,
                    fault_domain=0, profile={}, profile_digest="", os_disk="", seed="", ci_instance_id="",
                    ports=ports, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def start(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port


def test_source_is_the_one_the_model_names():
    assert [source_of(model(s)) for s in ("agent", "probe", "default")] == ["agent", "probe", "default"]


def test_monitor_reads_a_real_agent_and_survives_bad_ones():
    async def scenario():
        state = {"body": {"ApplicationHealthState": "Healthy"}}

        async def app_health(_r):
            return web.json_response(state["body"])

        async def hang(_r):
            await asyncio.sleep(5)
            return web.json_response({})

        async def garbage(_r):
            return web.Response(text="<html>nope</html>")

        app = web.Application()
        app.router.add_get("/", app_health)
        app_runner, app_port = await start(app)
        agent = Agent(parse_settings({"protocol": "http", "port": app_port, "intervalInSeconds": 5}))
        agent_runner, agent_port = await start(agent.app())
        bad = web.Application()
        bad.router.add_get("/hang/health", hang)
        bad_runner, _ = await start(bad)
        hang_app = web.Application()
        hang_app.router.add_get("/health", hang)
        hang_runner, hang_port = await start(hang_app)
        garbage_app = web.Application()
        garbage_app.router.add_get("/health", garbage)
        garbage_runner, garbage_port = await start(garbage_app)
        stop = asyncio.Event()
        probes = asyncio.create_task(agent.run_probes(stop))
        await asyncio.sleep(0.3)  # the first probe
        insts = [inst(0, {AGENT_PORT: agent_port}), inst(1, {AGENT_PORT: hang_port}),
                 inst(2, {AGENT_PORT: free_port()}), inst(3, {AGENT_PORT: garbage_port}),
                 inst(4, {AGENT_PORT: agent_port})]
        mon = Monitor(model("agent"), timeout=1.0)
        t0 = time.monotonic()
        got = await mon.poll(insts, {0: True, 1: True, 2: True, 3: True, 4: False})
        elapsed = time.monotonic() - t0
        stop.set()
        await probes
        for r in (app_runner, agent_runner, bad_runner, hang_runner, garbage_runner):
            await r.cleanup()
        return got, elapsed

    got, elapsed = asyncio.run(scenario())
    assert got[0].state == "Healthy" and got[0].since and "ApplicationHealthState Healthy" in got[0].detail
    assert (got[1].state, got[1].detail) == ("Unknown", "agent timed out")
    assert got[2].state == "Unknown" and "unreachable" in got[2].detail
    assert got[3].state == "Unknown" and got[3].detail in ("agent answered garbage", "agent unreachable: JSONDecodeError")
    assert (got[4].state, got[4].detail) == ("Unknown", "not running")
    assert elapsed < 5  # polled concurrently, each with its own time-out


def test_host_probe_is_binary_on_http_200_with_hysteresis():
    async def scenario():
        status = {"code": 200}

        async def h(_r):
            return web.Response(status=status["code"], text="{\"ApplicationHealthState\": \"Unhealthy\"}")

        app = web.Application()
        app.router.add_get("/health", h)
        runner, port = await start(app)
        d = copy.deepcopy(BASE)
        d["properties"]["virtualMachineProfile"]["networkProfile"]["healthProbe"]["numberOfProbes"] = 2
        now = [0.0]
        mon = Monitor(parse(d), timeout=1.0, clock=lambda: now[0])
        i = inst(0, {80: port})

        async def state(after: float) -> str:
            now[0] += after
            return (await mon.poll([i], {0: True}))[0].state
        seen = [await state(0)]
        status["code"] = 503
        seen += [await state(1), await state(15), await state(14), await state(1)]  # intervalInSeconds 15
        i.boot_id = "another boot"  # a new boot is probed at once, its count starts again
        status["code"] = 200
        seen.append(await state(0))
        await runner.cleanup()
        return seen

    # 200 is up whatever the body (a load balancer does not read it); 2 failures take it down; no
    # probe within intervalInSeconds of the last one
    assert asyncio.run(scenario()) == ["Healthy", "Healthy", "Healthy", "Healthy", "Unhealthy", "Healthy"]


def test_default_source_is_running_and_extensions_succeeded():
    mon = Monitor(model("default"))
    ok = inst(0, {}, provisioning_state="Succeeded", extensions=[{"name": "a", "provisioningState": "Succeeded"}])
    bad = inst(1, {}, provisioning_state="Failed", extensions=[{"name": "a", "provisioningState": "Failed"}])
    got = asyncio.run(mon.poll([ok, bad], {0: True, 1: True}))
    assert got[0].state == "Healthy" and got[1].state == "Unhealthy" and "a" in got[1].detail


def test_since_is_kept_while_the_state_holds(lab):
    store = HealthStore(connect(lab.db))
    store.record("web", {0: Reading("Healthy", "default", checked_at="T1")})
    store.record("web", {0: Reading("Healthy", "default", checked_at="T2")})
    assert store.get("web")[0].since == "T1"
    store.record("web", {0: Reading("Unhealthy", "default", checked_at="T3")})
    assert store.get("web")[0].since == "T3"


def test_a_request_path_cannot_send_the_probe_to_another_port():
    """`@127.0.0.1:OTHER/x` used to make http://127.0.0.1:PORT@127.0.0.1:OTHER/x: a userinfo, and a probe
    of OTHER's healthy app while the instance's own app was down."""
    async def scenario():
        async def ok(_r):
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_get("/x", ok)
        app.router.add_get("/{tail:.*}", ok)
        runner, other = await start(app)
        down = free_port()  # the instance's forward: nothing listens
        async with aiohttp.ClientSession() as session:
            tricked = await probe_host(session, "Http", down, 80, f"@127.0.0.1:{other}/x", timeout=1.0)
            direct = await probe_host(session, "Http", other, 80, f"@127.0.0.1:{down}/x", timeout=1.0)
        await runner.cleanup()
        return tricked, direct

    tricked, direct = asyncio.run(scenario())
    assert tricked.state == "Unhealthy"  # the instance's port was probed, and it is down
    assert direct.state == "Healthy"  # the path stayed a path on the instance's own port
    for path in ("/", "/health?x=1", "@h:1/x", "//evil:1/x", "x"):
        url = probe_url(40000, path)
        assert (url.host, url.port, url.user) == ("127.0.0.1", 40000, None)
