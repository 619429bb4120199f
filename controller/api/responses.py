"""ARM's response shapes: JSON bodies, errors, paged lists, long-running-operation headers."""
from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from yarl import URL

from controller.core.errors import LabError

PAGE_SIZE = 100  # items per page of a list; `nextLink` continues
RETRY_AFTER = "1"  # seconds; Azure's clients read 0 as absent (then they wait 30 s)


def body(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=json.dumps(data), content_type="application/json", headers=headers)


def error(exc: LabError) -> web.Response:
    return body(exc.to_json(), exc.status)


def page(request: web.Request, items: list[Any]) -> web.Response:
    """One page of `items` as `{"value": [...], "nextLink": ...}` ($skiptoken is the offset)."""
    token = request.query.get("$skiptoken", "0")
    start = int(token) if token.isdigit() else 0
    chunk = items[start:start + PAGE_SIZE]
    out: dict[str, Any] = {"value": chunk}
    if start + PAGE_SIZE < len(items):
        out["nextLink"] = str(request.url.update_query({"$skiptoken": str(start + PAGE_SIZE)}))
    return body(out)


def origin(request: web.Request) -> URL:
    return request.url.origin()
