"""The HTTPS server: TLS on 127.0.0.1 only, a bearer token on every route, `api-version`
required, bodies capped, every error in ARM's shape (never a traceback)."""
from __future__ import annotations

import logging
import re
import time

from aiohttp import web

from controller.api import (
    gallery_routes,
    identity,
    responses,
    tls,
    tokens,
    vm_routes,
    vmss_routes,
)
from controller.api.context import ApiContext
from controller.api.endpoint import record
from controller.api.router import Router
from controller.core.errors import LabError, ModelError
from controller.model.jsonmap import MAX_JSON_BYTES

log = logging.getLogger("scaleset.api")
MAX_BODY = MAX_JSON_BYTES  # bytes; a larger request body is refused with 413
_HIDE = re.compile(r"(/identity/)[^/]+", re.IGNORECASE)  # the identity endpoint's path carries a token


def _http_error(exc: web.HTTPException) -> LabError:
    codes = {413: ("RequestEntityTooLarge", f"the request body is larger than {MAX_BODY} bytes"),
             415: ("UnsupportedMediaType", "the request body must be JSON")}
    code, reason = codes.get(exc.status, ("BadRequest", exc.reason))
    err = ModelError("body" if exc.status in codes else "request", reason, code)
    return err


def build(ctx: ApiContext) -> web.Application:
    router = Router()
    for module in (vmss_routes, vm_routes, gallery_routes, identity):
        module.register(router, ctx)

    @web.middleware
    async def guard(request: web.Request, handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        try:
            route, params = router.resolve(request.method, request.path)
            if not getattr(route, "open_route", False):
                tokens.verify(ctx.paths, tokens.bearer(request.headers.get("Authorization")))
                if not request.query.get("api-version"):
                    raise ModelError("api-version", "The api-version query parameter (?api-version=) is required "
                                                    "for all requests.", "MissingApiVersionParameter")
            response = await route(request, params)
        except LabError as exc:
            response = responses.error(exc)
        except web.HTTPException as exc:
            response = responses.error(_http_error(exc))
        except Exception as exc:  # noqa: BLE001 - one log line; the client gets ARM's error shape
            log.error("%s %s: %s: %s", request.method, _HIDE.sub(r"\1***", request.path), type(exc).__name__, exc)
            response = responses.error(LabError("", f"internal error ({type(exc).__name__})", "InternalError"))
        status = response.status
        log.debug("%s %s %s %.1f ms", request.method, _HIDE.sub(r"\1***", request.path), status,
                  1000 * (time.perf_counter() - started))
        return response

    app = web.Application(middlewares=[guard], client_max_size=MAX_BODY)

    async def unreachable(request: web.Request) -> web.Response:  # every request is answered by `guard`
        raise ModelError("path", "not found", "InvalidResourceType")

    app.router.add_route("*", "/{tail:.*}", unreachable)
    return app


async def serve(ctx: ApiContext, port: int) -> tuple[web.AppRunner, int]:
    """Listen on https://127.0.0.1:port (0: any free port); returns the runner and the port."""
    context = tls.server_context(tls.ensure_certs(ctx.paths))
    runner = web.AppRunner(build(ctx), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, ssl_context=context, backlog=256)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ModelError("--api-port", f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}",
                         "Conflict") from None
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    record(ctx.paths, bound)
    return runner, bound
