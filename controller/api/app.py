"""The HTTPS server: TLS on 127.0.0.1 only (connections bounded: listener.py), a bearer token
on every route, `api-version` required, bodies capped and timed, every error in ARM's shape
(never a traceback; a full or read-only disk as the CLI says it)."""
from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence

from aiohttp import web

from controller.api import (
    deployment_routes,
    gallery_routes,
    identity,
    image_routes,
    listener,
    responses,
    tls,
    tokens,
    vm_routes,
    vmss_routes,
)
from controller.api.cache import ResponseCache
from controller.api.context import ApiContext
from controller.api.endpoint import record
from controller.api.router import Router
from controller.core.errors import LabError, ModelError, from_db_error, from_os_error
from controller.model.jsonmap import MAX_JSON_BYTES

log = logging.getLogger("scaleset.api")
MAX_BODY = MAX_JSON_BYTES  # bytes; a larger request body is refused with 413
_API_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}(-[a-z0-9]{1,20})?", re.ASCII | re.IGNORECASE)
_HIDE = re.compile(r"(/identity/)[^/]+", re.IGNORECASE)  # the identity endpoint's path carries a token


def _http_error(exc: web.HTTPException) -> LabError:
    codes = {413: ("RequestEntityTooLarge", f"the request body is larger than {MAX_BODY} bytes"),
             415: ("UnsupportedMediaType", "the request body must be JSON")}
    code, reason = codes.get(exc.status, ("BadRequest", exc.reason))
    return ModelError("body" if exc.status in codes else "request", reason, code)


class BodyTimeout(LabError):
    """A body that did not arrive in time: 408, and the connection is closed."""

    status = 408  # type: ignore[assignment]


async def _read_body(request: web.Request) -> None:
    """The body, read once within BODY_TIMEOUT (bodies.read then takes it from memory)."""
    try:
        await asyncio.wait_for(request.read(), listener.BODY_TIMEOUT)
    except asyncio.TimeoutError:
        raise BodyTimeout("body", f"the request body did not arrive within {listener.BODY_TIMEOUT:g} s",
                          "RequestTimeout") from None


Register = Callable[[Router, ApiContext], None]


def build(ctx: ApiContext, extra: Sequence[Register] = ()) -> web.Application:
    """The app: ARM's routes, plus `extra` route sets (the web view) on the same server."""
    router = Router()
    for register in (vmss_routes.register, vm_routes.register, gallery_routes.register, image_routes.register,
                     deployment_routes.register, identity.register, *extra):
        register(router, ctx)

    @web.middleware
    async def guard(request: web.Request, handler) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            route, params = router.resolve(request.method, request.path)
            if not getattr(route, "open_route", False):
                tokens.verify(ctx.paths, tokens.bearer(request.headers.get("Authorization")))
                version = request.query.get("api-version")
                if not version:
                    raise ModelError("api-version", "The api-version query parameter (?api-version=) is required "
                                                    "for all requests.", "MissingApiVersionParameter")
                if not _API_VERSION.fullmatch(version):
                    raise ModelError("api-version", f"The api-version '{version[:40]!r}' is invalid: it must be a date "
                                                    "as YYYY-MM-DD, optionally with a suffix such as -preview.",
                                     "InvalidApiVersionParameter")
            if request.can_read_body:
                await _read_body(request)
            when = getattr(route, "cacheable", None)
            if request.method == "GET" and when is not None and when(request) and ctx.cache is not None:
                response = await ctx.cache.get(request, lambda: route(request, params))
            else:
                response = await route(request, params)
        except LabError as exc:
            response = responses.error(exc)
            if isinstance(exc, BodyTimeout):
                response.force_close()
        except web.HTTPException as exc:
            response = responses.error(_http_error(exc))
        except sqlite3.Error as exc:  # a full or read-only disk says so, as in the CLI
            response = responses.error(from_db_error(exc, ctx.paths.db))
        except OSError as exc:
            response = responses.error(from_os_error(exc, str(exc.filename or ctx.paths.home)))
        except Exception as exc:  # noqa: BLE001 - one log line; the client gets ARM's error shape
            log.error("%s %s: %s: %s", request.method, _HIDE.sub(r"\1***", request.path), type(exc).__name__, exc)
            response = responses.error(LabError("", f"internal error ({type(exc).__name__})", "InternalError"))
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s %s %.1f ms", request.method, _HIDE.sub(r"\1***", request.path), response.status,
                      1000 * (time.perf_counter() - started))
        return response

    app = web.Application(middlewares=[guard], client_max_size=MAX_BODY)

    async def shutdown(_app: web.Application) -> None:
        for stop in ctx.on_shutdown:
            stop()
    app.on_shutdown.append(shutdown)

    async def unreachable(request: web.Request) -> web.Response:  # every request is answered by `guard`
        raise ModelError("path", "not found", "InvalidResourceType")

    app.router.add_route("*", "/{tail:.*}", unreachable)
    return app


async def serve(ctx: ApiContext, port: int, extra: Sequence[Register] = ()) -> tuple[web.AppRunner, int]:
    """Listen on https://127.0.0.1:port (0: any free port); returns the runner and the port."""
    context = tls.server_context(tls.ensure_certs(ctx.paths))
    ctx.cache = ResponseCache(ctx.paths.db, ctx.ops)
    runner = web.AppRunner(build(ctx, extra), access_log=None, handle_signals=False, shutdown_timeout=5)
    await runner.setup()
    site = listener.Listener(runner, port, context)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ModelError("--api-port", f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}",
                         "Conflict") from None
    bound = site.port()
    record(ctx.paths, bound)
    return runner, bound


class ApiThread:
    """The API in a thread and event loop of its own: the controller's loop (and the rolling
    upgrades it drives) never waits in the queue of requests."""

    def __init__(self, ctx: ApiContext, port: int, extra: Sequence[Register] = ()) -> None:
        self.ctx, self.port, self.extra = ctx, port, extra
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="api", daemon=True)

    def start(self) -> int:
        """Serve; the port it listens on (LabError when it cannot)."""
        self.thread.start()
        self.ready.wait()
        if self.error is not None:
            raise self.error
        return self.port

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            runner, self.port = self.loop.run_until_complete(serve(self.ctx, self.port, self.extra))
        except BaseException as exc:  # noqa: BLE001 - handed to start()
            self.error = exc
            self.ready.set()
            return
        self.ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(runner.cleanup())
        self.loop.close()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
        self.ctx.close()
