"""ARM's response shapes: JSON bodies, errors, paged lists, long-running-operation headers.
Every URL handed out (nextLink, Azure-AsyncOperation, Location) is the API's own listener's,
https://127.0.0.1:port, never built from the request's Host header."""
from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from yarl import URL

from controller.api.endpoint import HOST
from controller.core.errors import LabError, ModelError

PAGE_SIZE = 100  # items per page of a list; `nextLink` continues
MAX_SKIP_DIGITS = 9  # a $skiptoken is an offset into a list, far below a billion
RETRY_AFTER = "1"  # seconds; Azure's clients read 0 as absent (then they wait 30 s)


def body(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=json.dumps(data), content_type="application/json", headers=headers)


def error(exc: LabError) -> web.Response:
    return body(exc.to_json(), exc.status)


def skip(request: web.Request) -> int:
    """The offset a `$skiptoken` (of a nextLink) names; 0 without one."""
    token = request.query.get("$skiptoken")
    if token is None:
        return 0
    if not (token.isascii() and token.isdigit() and len(token) <= MAX_SKIP_DIGITS):
        raise ModelError("$skiptoken", f"'{token[:20]}{'...' if len(token) > 20 else ''}' is not a token of a "
                                       f"nextLink (an offset of at most {MAX_SKIP_DIGITS} digits)")
    return int(token)


def page(request: web.Request, items: list[Any]) -> web.Response:
    """One page of `items` as `{"value": [...], "nextLink": ...}` ($skiptoken is the offset)."""
    start = skip(request)
    chunk = items[start:start + PAGE_SIZE]
    out: dict[str, Any] = {"value": chunk}
    if start + PAGE_SIZE < len(items):
        rest = request.rel_url.update_query({"$skiptoken": str(start + PAGE_SIZE)})  # path and query only
        out["nextLink"] = str(origin(request).join(rest))
    return body(out)


def origin(request: web.Request) -> URL:
    """https://127.0.0.1:port of the listener that took the request."""
    sock = request.transport.get_extra_info("sockname") if request.transport is not None else None
    port = sock[1] if isinstance(sock, tuple) and len(sock) >= 2 else None
    return URL.build(scheme="https", host=HOST, port=port)
