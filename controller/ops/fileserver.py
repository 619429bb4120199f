"""The lab's file server for extension `fileUris`: files under $SCALESET_HOME/files, served on
127.0.0.1 only; guests reach it through their user-mode network at 10.0.2.2. Every URL carries
a token (an HMAC of the path and an expiry); an expired or forged token gets 403."""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from typing import Callable
from urllib.parse import quote

from aiohttp import web

from controller.core.settings import LabPaths
from controller.core.errors import ModelError
from controller.virt.ports import PortAllocator

GUEST_HOST = "10.0.2.2"  # the host's 127.0.0.1, as QEMU's user-mode network shows it to guests


def secret(paths: LabPaths) -> bytes:
    key = paths.keys / "fileserver.key"
    if not key.exists():
        paths.keys.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
    return key.read_bytes()


def port(paths: LabPaths) -> int:
    return PortAllocator().allocate(f"{paths.home}#fileserver", 1)[0]


def sign(key: bytes, name: str, expires: int) -> str:
    return hmac.new(key, f"{name}|{expires}".encode(), hashlib.sha256).hexdigest()


def url(paths: LabPaths, name: str, valid_seconds: float, now: float | None = None) -> str:
    """A guest-side URL for files/NAME whose token expires `valid_seconds` from now."""
    if not (paths.home / "files" / name).is_file():
        raise ModelError("--file", f"no file '{name}' in {paths.home / 'files'}")
    expires = int((now if now is not None else time.time()) + valid_seconds)
    return (f"http://{GUEST_HOST}:{port(paths)}/files/{quote(name)}?se={expires}"
            f"&sig={sign(secret(paths), name, expires)}")


def app(paths: LabPaths, clock: Callable[[], float] = time.time) -> web.Application:
    root = (paths.home / "files").resolve()
    key = secret(paths)

    async def get(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        try:
            expires = int(request.query.get("se", ""))
        except ValueError:
            return web.Response(status=403, text="missing token\n")
        if not hmac.compare_digest(sign(key, name, expires), request.query.get("sig", "")):
            return web.Response(status=403, text="bad token\n")
        if clock() > expires:
            return web.Response(status=403, text="token expired\n")
        path = (root / name).resolve()
        if root not in path.parents or not path.is_file():
            return web.Response(status=404, text="no such file\n")
        return web.FileResponse(path)

    application = web.Application()
    application.router.add_get("/files/{name:.+}", get)
    return application


async def serve(paths: LabPaths, clock: Callable[[], float] = time.time) -> web.AppRunner:
    """Start serving on 127.0.0.1 (the caller keeps the loop running, then cleans up the runner)."""
    (paths.home / "files").mkdir(parents=True, exist_ok=True)
    runner = web.AppRunner(app(paths, clock), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port(paths)).start()
    return runner
