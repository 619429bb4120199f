"""The load generator of bench/api_load.py, run in a process of its own (its CPU is not the
server's GIL): N clients, each one keep-alive HTTPS connection to 127.0.0.1 (TLS verified
against the lab's CA, a bearer token), GET the given URLs in turn for a number of seconds.

Only aiohttp and the standard library: the process imports nothing of the lab.
"""
from __future__ import annotations

import asyncio
import ssl
import time
from typing import Any

import aiohttp

MAX_PER_CLIENT = 100_000  # requests per client at most, whatever the duration
TIMEOUT = 30.0  # seconds per request at most
FAILED = 0  # the status recorded for a request that got no HTTP answer (timeout, reset)


def run(urls: list[str], token: str, ca: str, clients: int, seconds: float, ready: Any, conn: Any) -> None:
    """Entry point of the process: sets `ready` once every client is connected, runs the load for
    `seconds`, sends a dict of samples and CPU through `conn`."""
    try:
        conn.send(asyncio.run(_load(urls, token, ca, clients, seconds, ready)))
    except Exception as exc:  # noqa: BLE001 - the parent reports it as one line
        conn.send({"error": f"{type(exc).__name__}: {exc}"[:300]})
    finally:
        conn.close()


async def _load(urls: list[str], token: str, ca: str, clients: int, seconds: float, ready: Any) -> dict:
    context = ssl.create_default_context(cafile=ca)  # hostname 127.0.0.1 checked against the SAN
    headers = {"Authorization": f"Bearer {token}"}
    sessions = [aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1, ssl=context), headers=headers,
                                      timeout=aiohttp.ClientTimeout(total=TIMEOUT)) for _ in range(clients)]
    try:
        warm = await asyncio.gather(*(_get(s, urls[0]) for s in sessions))  # connect and handshake first
        bad = [status for status, _ in warm if status != 200]
        if bad:
            return {"error": f"{len(bad)} of {clients} warm-up requests failed (statuses {sorted(set(bad))})"}
        ready.set()
        start = time.monotonic()
        cpu0 = time.process_time()
        samples = await asyncio.gather(*(_client(i, s, urls, start + seconds) for i, s in enumerate(sessions)))
        end = time.monotonic()
        return {"start": start, "end": end, "cpu": time.process_time() - cpu0,
                "samples": [x for per_client in samples for x in per_client]}
    finally:
        await asyncio.gather(*(s.close() for s in sessions))


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[int, float]:
    t0 = time.monotonic()
    try:
        async with session.get(url) as resp:
            await resp.read()
            status = resp.status
    except (TimeoutError, aiohttp.ClientError):
        status = FAILED
    return status, time.monotonic() - t0


async def _client(index: int, session: aiohttp.ClientSession, urls: list[str],
                  deadline: float) -> list[tuple[int, float, float, int]]:
    """(route, start, latency s, status) of each request; the routes alternate, clients start
    on different ones so that both are in flight at any moment."""
    out: list[tuple[int, float, float, int]] = []
    route = index % len(urls)
    while len(out) < MAX_PER_CLIENT:
        t0 = time.monotonic()
        if t0 >= deadline:
            break
        status, latency = await _get(session, urls[route])
        out.append((route, t0, latency, status))
        route = (route + 1) % len(urls)
    return out
