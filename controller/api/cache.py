"""GET answers rendered once per state of the lab. The stamp is SQLite's `data_version` on a
connection of its own (it moves whenever any other connection commits) plus the version of the
operations in memory: a cached answer is served only while neither has moved, and clients asking
for the same resource at once share one rendering."""
from __future__ import annotations

import asyncio
import sqlite3
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from controller.api.operations import Operations

Key = tuple[str, tuple[tuple[str, str], ...]]
Entry = tuple[tuple[int, int], int, bytes, str | None]  # stamp, status, body, ETag


class ResponseCache:
    def __init__(self, db: Path, ops: Operations, size: int = 512) -> None:
        self.db = sqlite3.connect(f"file:{db}?mode=ro", uri=True, check_same_thread=False)
        self.ops, self.size = ops, size
        self.entries: OrderedDict[Key, Entry] = OrderedDict()
        self.pending: dict[Key, tuple[tuple[int, int], asyncio.Future]] = {}

    def stamp(self) -> tuple[int, int]:
        return self.db.execute("PRAGMA data_version").fetchone()[0], self.ops.version

    @staticmethod
    def key(request: web.Request) -> Key:
        return request.path.lower(), tuple(sorted((k.lower(), v) for k, v in request.query.items()))

    async def get(self, request: web.Request, render: Callable[[], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        key, stamp = self.key(request), self.stamp()
        hit = self.entries.get(key)
        if hit is not None and hit[0] == stamp:
            self.entries.move_to_end(key)
            return _response(hit)
        waiting = self.pending.get(key)
        if waiting is not None and waiting[0] == stamp:
            entry = await asyncio.shield(waiting[1])
            if entry is not None:
                return _response(entry)
            return await render()
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self.pending[key] = (stamp, future)
        entry = None
        try:
            response = await render()
            if isinstance(response, web.Response) and response.status == 200 and isinstance(response.body, bytes):
                entry = (stamp, response.status, response.body, response.headers.get("ETag"))
                self.entries[key] = entry
                if len(self.entries) > self.size:
                    self.entries.popitem(last=False)
            return response
        finally:
            future.set_result(entry)  # the others render for themselves when this one did not cache
            if self.pending.get(key, (None, None))[1] is future:
                del self.pending[key]

    def close(self) -> None:
        self.db.close()


def _response(entry: Entry) -> web.Response:
    headers = {"ETag": entry[3]} if entry[3] else None
    return web.Response(status=entry[1], body=entry[2], content_type="application/json", headers=headers)
