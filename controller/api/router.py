"""ARM paths to handlers: literal segments match case-insensitively (ARM's rule), `{x}`
segments capture. A known path with another method is a 405; an unknown one a 404."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from controller.core.errors import ModelError

Handler = Callable[[web.Request, dict[str, str]], Awaitable[web.StreamResponse]]


def cacheable(when: Callable[[web.Request], bool] = lambda _r: True) -> Callable[[Handler], Handler]:
    """Mark a GET handler whose answer depends only on SQLite and the operations (not on libvirt
    or a guest): app.py serves it from the ResponseCache while the lab has not changed."""
    def mark(handler: Handler) -> Handler:
        handler.cacheable = when  # type: ignore[attr-defined]
        return handler
    return mark


@dataclass(frozen=True)
class Route:
    method: str
    parts: tuple[str, ...]
    handler: Handler

    def match(self, segments: list[str]) -> dict[str, str] | None:
        found = {}
        for want, got in zip(self.parts, segments, strict=True):
            if want.startswith("{"):
                if not got:
                    return None
                found[want[1:-1]] = got
            elif want != got.lower():
                return None
        return found


class Router:
    def __init__(self) -> None:
        self.routes: dict[int, list[Route]] = {}  # by segment count

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        parts = tuple(p if p.startswith("{") else p.lower() for p in pattern.strip("/").split("/"))
        self.routes.setdefault(len(parts), []).append(Route(method, parts, handler))

    def resolve(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        segments = path.strip("/").split("/")
        allowed = []
        for route in self.routes.get(len(segments), ()):
            params = route.match(segments)
            if params is None:
                continue
            if route.method == method or (method == "HEAD" and route.method == "GET"):
                return route.handler, params
            allowed.append(route.method)
        if allowed:
            raise ModelError("method", f"{method} is not allowed here (allowed: {', '.join(sorted(set(allowed)))})",
                             "MethodNotAllowed")
        raise ModelError("path", f"no resource type matches '{path[:200]}'", "InvalidResourceType")
