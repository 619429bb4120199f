"""Live updates for the web view as server-sent events: one loop for all viewers.

Each topic (the lab, or one scale set) is rendered on a reader thread when the lab's state
stamp moves (SQLite's data_version plus the operations' version) and at least every REFRESH
seconds (libvirt's power states are not in SQLite); viewers of a topic share one rendering
and get an event only when its JSON changed. A slow viewer gets the newest state, never a
queue. EventSource reconnects by itself, after a controller restart too (the session cookie
is signed, not kept in memory).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from controller.core.errors import LabError

log = logging.getLogger("scaleset.web")
INTERVAL = 0.25  # seconds between two looks at the stamp
REFRESH = 2.0  # seconds: a topic is rendered again at least this often
KEEPALIVE = 15.0  # seconds between two comments on an idle stream
RETRY_MS = 1000  # what EventSource waits before it reconnects


@dataclass
class Topic:
    viewers: set[asyncio.Queue] = field(default_factory=set)
    text: str | None = None
    stamp: object = None
    rendered: float = 0.0


class Feed:
    def __init__(self, render: Callable[[str], object], stamp: Callable[[], object],
                 on_render: Callable[[str], None] | None = None) -> None:
        """`render(topic)` is awaitable (a dict, or LabError); `stamp()` is cheap and moves on change."""
        self.render, self.stamp, self.on_render = render, stamp, on_render
        self.topics: dict[str, Topic] = {}
        self._task: asyncio.Task | None = None
        self.closed = asyncio.Event()

    async def _text(self, topic: str) -> str:
        try:
            return json.dumps(await self.render(topic))  # type: ignore[misc]
        except LabError as exc:
            return json.dumps(exc.to_json())

    async def _loop(self) -> None:
        while self.topics and not self.closed.is_set():
            stamp, now = self.stamp(), time.monotonic()
            for key, topic in list(self.topics.items()):
                if not topic.viewers:
                    del self.topics[key]
                    continue
                if topic.stamp == stamp and now - topic.rendered < REFRESH:
                    continue
                if self.on_render is not None:
                    self.on_render(key)
                try:
                    text = await self._text(key)
                except Exception as exc:  # noqa: BLE001 - one log line; the viewers keep the last state
                    log.error("web feed %s: %s: %s", key, type(exc).__name__, exc)
                    text = topic.text
                topic.stamp, topic.rendered = stamp, now
                if text is not None and text != topic.text:
                    topic.text = text
                    for q in topic.viewers:
                        _offer(q, text)
            await asyncio.sleep(INTERVAL)
        self._task = None

    def _join(self, key: str) -> tuple[Topic, asyncio.Queue]:
        topic = self.topics.setdefault(key, Topic())
        q: asyncio.Queue = asyncio.Queue(maxsize=1)
        topic.viewers.add(q)
        if topic.text is not None:
            _offer(q, topic.text)
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._loop())
        return topic, q

    async def stream(self, request: web.Request, key: str) -> web.StreamResponse:
        """Serve `key` to one EventSource until it goes away or the server stops."""
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
        await resp.prepare(request)
        topic, q = self._join(key)
        if topic.text is None:  # the first viewer of a topic does not wait for the loop
            topic.text = await self._text(key)
            topic.stamp, topic.rendered = self.stamp(), time.monotonic()
            _offer(q, topic.text)
        closed = asyncio.ensure_future(self.closed.wait())
        try:
            await resp.write(f"retry: {RETRY_MS}\n\n".encode())
            while not self.closed.is_set():
                getter = asyncio.ensure_future(q.get())
                done, _ = await asyncio.wait({getter, closed}, timeout=KEEPALIVE, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    if not self.closed.is_set():
                        await resp.write(b": keepalive\n\n")
                    continue
                await resp.write(b"data: " + getter.result().encode() + b"\n\n")
        except ConnectionResetError:  # the viewer went away
            pass
        finally:
            closed.cancel()
            topic.viewers.discard(q)
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await resp.write_eof()
        return resp

    def close(self) -> None:
        """End every stream (the server stops)."""
        self.closed.set()


def _offer(q: asyncio.Queue, text: str) -> None:
    """Newest wins: a viewer that has not read the last state gets this one instead."""
    if q.full():
        q.get_nowait()
    q.put_nowait(text)
