"""The API's listening socket and its connections, bounded: a connection with no whole request
within IDLE_TIMEOUT (idle, or sending half a request) is closed, a TLS handshake has
HANDSHAKE_TIMEOUT, at most MAX_CONNECTIONS are served at once (more are closed at once), and
what aiohttp's parser refuses (oversized headers, Content-Length with Transfer-Encoding, a bad
request line) is answered in ARM's error shape. (Bodies get BODY_TIMEOUT in app.py's guard.)"""
from __future__ import annotations

import asyncio
import logging
import ssl
from http import HTTPStatus

from aiohttp import web
from aiohttp.http_exceptions import BadStatusLine, InvalidHeader, InvalidURLError, LineTooLong
from aiohttp.web_protocol import RequestHandler

from controller.api import responses
from controller.api.endpoint import HOST
from controller.core.errors import LabError

log = logging.getLogger("scaleset.api")
IDLE_TIMEOUT = 15.0  # seconds without a whole request (from the connection or the last answer)
BODY_TIMEOUT = 30.0  # seconds for a request's body, once its headers arrived
HANDSHAKE_TIMEOUT = 10.0  # seconds for a TLS handshake
LINGER = 2.0  # seconds an answered connection may still send the rest of a body it was refused
MAX_CONNECTIONS = 256  # open connections at once; one more is closed as soon as it is made
MAX_FIELD = 8190  # bytes of the request line and of each header (aiohttp's default)

_PARSER = ((LineTooLong, f"the request line or a header is longer than {MAX_FIELD} bytes"),
           (BadStatusLine, "the request line is not HTTP/1.1's (method, path, version)"),
           (InvalidURLError, "the request's URL is malformed"),
           (InvalidHeader, "a request header is malformed"))


def _reason(exc: BaseException | None, message: str | None) -> str:
    """What was wrong, never an echo of the request's bytes (they may hold a token)."""
    for kind, reason in _PARSER:
        if isinstance(exc, kind):
            return reason
    first = (getattr(exc, "message", None) or message or "").split("\n", 1)[0].rstrip(": ")
    if not first or not first.isprintable() or len(first) > 160 or any(s in first for s in ('"', "\\", "b'")):
        return "the request is malformed"  # the parser's reason is fixed text; anything else may quote the request
    return first


class ArmHandler(RequestHandler):
    """aiohttp's connection handler with the lab's bounds and ARM's error shape."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        manager = self._manager
        if manager is not None and len(manager.connections) > MAX_CONNECTIONS:
            log.warning("more than %d connections: one closed", MAX_CONNECTIONS)
            self.force_close()
            transport.abort()  # at once, without waiting for the client's TLS close: it counts no longer

    def handle_error(self, request, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if request.writer.output_size > 0:  # the answer is under way: only closing is left
            raise ConnectionError("the response was sent already")
        if status >= 500:
            log.error("%s %s: %s", request.method, request.path, type(exc).__name__ if exc else "error")
            err = LabError("", "internal error", "InternalError")
        else:
            log.debug("refused by the HTTP parser: %s", type(exc).__name__ if exc else status)
            err = LabError("request", _reason(exc, message), HTTPStatus(status).phrase.replace(" ", ""))
        resp = responses.body(err.to_json(), status)
        resp.force_close()
        return resp


class Listener(web.BaseSite):
    """https://127.0.0.1:port served by ArmHandler connections (a runner's site)."""

    def __init__(self, runner: web.BaseRunner, port: int, context: ssl.SSLContext, backlog: int = 256) -> None:
        super().__init__(runner, ssl_context=context, backlog=backlog)
        self._port = port

    @property
    def name(self) -> str:
        return f"https://{HOST}:{self._port}"

    def port(self) -> int:
        assert self._server is not None and self._server.sockets
        return self._server.sockets[0].getsockname()[1]

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()

        def connection() -> ArmHandler:
            return ArmHandler(server, loop=loop, keepalive_timeout=IDLE_TIMEOUT, access_log=None,
                              max_line_size=MAX_FIELD, max_field_size=MAX_FIELD, lingering_time=LINGER)
        self._server = await loop.create_server(connection, HOST, self._port, ssl=self._ssl_context,
                                                backlog=self._backlog, ssl_handshake_timeout=HANDSHAKE_TIMEOUT)
