"""The agent process: probe the app every interval, serve the view as JSON.

    python3 -m agent.server --settings /etc/scaleset-lab/health.json [--listen 127.0.0.1:8765]

GET /health -> {"state": Initializing|Healthy|Unhealthy|Unknown, "since": ISO time,
                "settings": {...}, "lastProbes": [{"state", "detail", "at"}] (last 5),
                "extensions": [{"name", "provisioningState", "message", ...}] (the runner's statuses),
                "cloudInit": {"errors": [...]} or null, "bootId", "image" (the stamp)}.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import datetime, timezone
from pathlib import Path

import aiohttp
from aiohttp import web

from .health import HealthState
from .probe import probe_once
from .settings import HealthSettings, SettingsError, parse_settings

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
STAMP = Path("/etc/scaleset-lab/image.json")
EXTENSION_STATUS = Path("/var/lib/scaleset-lab/extensions/status")
CLOUD_INIT_RESULT = Path("/run/cloud-init/result.json")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")


def _json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def extension_statuses(folder: Path = EXTENSION_STATUS) -> list[dict]:
    """The runner's status files, without output tails (those stay in the instance view)."""
    out = []
    for f in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        st = _json(f)
        if isinstance(st, dict):
            out.append({k: v for k, v in st.items() if k not in ("stdout", "stderr")})
    return out


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


class Agent:
    def __init__(self, settings: HealthSettings, target_host: str = "127.0.0.1") -> None:
        self.settings = settings
        self.target_host = target_host
        self.health = HealthState(settings.probes, settings.grace_period, time.time())

    async def run_probes(self, stop: asyncio.Event) -> None:
        async with aiohttp.ClientSession() as session:
            while not stop.is_set():
                result = await probe_once(self.settings, session, self.target_host)
                self.health.record(result)
                try:
                    await asyncio.wait_for(stop.wait(), self.settings.interval)
                except asyncio.TimeoutError:
                    pass

    def view(self) -> dict:
        self.health.tick(time.time())
        stamp = _read(STAMP)
        return {
            "state": self.health.state,
            "since": _iso(self.health.since),
            "settings": {"protocol": self.settings.protocol, "port": self.settings.port,
                         "requestPath": self.settings.request_path,
                         "intervalInSeconds": self.settings.interval,
                         "numberOfProbes": self.settings.probes, "gracePeriod": self.settings.grace_period},
            "lastProbes": [{"state": r.state, "detail": r.detail, "at": _iso(r.at)}
                           for r in list(self.health.history)[-5:]],
            "extensions": extension_statuses(),
            "cloudInit": (_json(CLOUD_INIT_RESULT) or {}).get("v1"),
            "bootId": _read(BOOT_ID),
            "image": json.loads(stamp) if stamp else None,
        }

    async def _handle(self, _request: web.Request) -> web.Response:
        return web.json_response(self.view())

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/health", self._handle)
        return app


async def serve(agent: Agent, host: str, port: int, stop: asyncio.Event) -> None:
    runner = web.AppRunner(agent.app())
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    try:
        await agent.run_probes(stop)
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="scaleset-lab Application Health agent")
    ap.add_argument("--settings", type=Path, required=True, help="JSON file with the extension's settings")
    ap.add_argument("--listen", default="127.0.0.1:8765", help="HOST:PORT for the view (default %(default)s)")
    args = ap.parse_args(argv)
    try:
        settings = parse_settings(json.loads(args.settings.read_text()))
    except (OSError, json.JSONDecodeError, SettingsError) as exc:
        print(f"ERROR: {exc}")
        return 2
    host, _, port = args.listen.rpartition(":")
    asyncio.run(serve(Agent(settings), host or "127.0.0.1", int(port), asyncio.Event()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
