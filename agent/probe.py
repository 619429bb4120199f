"""One probe of the application inside the guest: http, https or tcp, with a time-out."""
from __future__ import annotations

import asyncio
import json
import ssl
import time

import aiohttp

from .health import HEALTHY, UNHEALTHY, UNKNOWN, ProbeResult
from .settings import HealthSettings

_STATES = {"healthy": HEALTHY, "unhealthy": UNHEALTHY}


def classify(status: int, body: bytes) -> tuple[str, str]:
    """2xx with {"ApplicationHealthState": ...} is that state; 2xx without it is Healthy
    (binary mode); anything else, or a state we do not know, is Unknown."""
    if not 200 <= status < 300:
        return UNKNOWN, f"HTTP {status}"
    try:
        doc = json.loads(body) if body.strip() else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        doc = None
    if not isinstance(doc, dict) or "ApplicationHealthState" not in doc:
        if doc is None and body.strip().startswith((b"{", b"[")):
            return UNKNOWN, "malformed JSON body"
        return HEALTHY, f"HTTP {status} (binary mode)"
    value = doc["ApplicationHealthState"]
    state = _STATES.get(value.lower()) if isinstance(value, str) else None
    if state is None:
        return UNKNOWN, f"unknown ApplicationHealthState {value!r}"
    return state, f"HTTP {status}, ApplicationHealthState {value}"


async def probe_once(settings: HealthSettings, session: aiohttp.ClientSession | None,
                     host: str = "127.0.0.1", timeout: float | None = None) -> ProbeResult:
    timeout = timeout if timeout is not None else max(1.0, settings.interval - 1)
    now = time.time()
    try:
        if settings.protocol == "tcp":
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, settings.port), timeout)
            writer.close()
            return ProbeResult(HEALTHY, f"tcp {settings.port} open", now)
        assert session is not None
        url = f"{settings.protocol}://{host}:{settings.port}{settings.request_path}"
        ctx = False if settings.protocol == "https" else None  # self-signed app certs are normal
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout), ssl=ctx,
                               allow_redirects=False) as resp:
            body = await resp.content.read(64 * 1024)
            state, detail = classify(resp.status, body)
            return ProbeResult(state, detail, now)
    except asyncio.TimeoutError:
        return ProbeResult(UNKNOWN, "timed out", now)
    except (aiohttp.ClientError, OSError, ssl.SSLError) as exc:
        return ProbeResult(UNKNOWN, f"{type(exc).__name__}: {exc}"[:200], now)
