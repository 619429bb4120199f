"""The lab's file server for extension `fileUris`: files under $SCALESET_HOME/files, served on
127.0.0.1 only; guests reach it through their user-mode network at 10.0.2.2. Every URL carries
a token (an HMAC of the path and an expiry); an expired or forged token gets 403."""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import shutil
import stat
import time
from pathlib import Path
from typing import Callable
from urllib.parse import quote

from aiohttp import web

from controller.core.errors import ModelError, from_os_error
from controller.core.files import atomic_create, atomic_open
from controller.core.settings import LabPaths
from controller.virt.ports import PortAllocator

_PLAIN = re.compile(r"[^./\x00-\x1f\x7f-\x9f][^/\x00-\x1f\x7f-\x9f]*")
GUEST_HOST = "10.0.2.2"  # the host's 127.0.0.1, as QEMU's user-mode network shows it to guests


def secret(paths: LabPaths) -> bytes:
    key = paths.keys / "fileserver.key"
    if not key.exists():
        paths.keys.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_create(key, secrets.token_bytes(32), 0o600)  # of two racing processes, one key wins
    return key.read_bytes()


def check_name(name: str, field: str = "--name") -> str:
    """A plain file name: 1..255 bytes, no '/', no leading '.', no NUL or control characters."""
    size = len(name.encode("utf-8", "surrogateescape"))
    if not 1 <= size <= 255:
        raise ModelError(field, f"a file name is 1 to 255 bytes long, not {size}")
    if not _PLAIN.fullmatch(name):
        raise ModelError(field, f"{name!r} must be a plain file name: no '/', no leading '.', "
                                "no control characters")
    return name


def served_file(paths: LabPaths, name: str, field: str = "--name") -> Path:
    """files/NAME, which must be a regular file (not a link, not a folder) directly in files/."""
    path = paths.files / check_name(name, field)
    try:
        regular = stat.S_ISREG(path.lstat().st_mode)
    except FileNotFoundError:
        regular = False
    if not regular:
        raise ModelError(field, f"no file '{name}' in {paths.files}", "NotFound")
    return path


def put(paths: LabPaths, src: Path, name: str | None = None) -> str:
    """Copy `src` to files/NAME in whole or not at all (a full disk never leaves a truncated
    file to serve); NAME defaults to the file's name. Returns the name."""
    if not src.is_file():
        raise ModelError("--file", f"{src} is not a file")
    name = check_name(name if name is not None else src.name, "--name" if name is not None else "--file")
    dest = paths.files / name
    paths.files.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        with src.open("rb") as f_in, atomic_open(dest, 0o600) as f_out:
            shutil.copyfileobj(f_in, f_out, 1024 * 1024)
    except OSError as exc:
        raise from_os_error(exc, str(dest if exc.filename != str(src) else src)) from None
    return name


def port(paths: LabPaths) -> int:
    return PortAllocator().allocate(f"{paths.home}#fileserver", 1)[0]


def sign(key: bytes, name: str, expires: int) -> str:
    return hmac.new(key, f"{name}|{expires}".encode(), hashlib.sha256).hexdigest()


def url(paths: LabPaths, name: str, valid_seconds: float, now: float | None = None) -> str:
    """A guest-side URL for files/NAME whose token expires `valid_seconds` from now."""
    served_file(paths, name)
    expires = int((now if now is not None else time.time()) + valid_seconds)
    return (f"http://{GUEST_HOST}:{port(paths)}/files/{quote(name)}?se={expires}"
            f"&sig={sign(secret(paths), name, expires)}")


def app(paths: LabPaths, clock: Callable[[], float] = time.time) -> web.Application:
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
        try:
            path = served_file(paths, name)
        except ModelError:
            return web.Response(status=404, text="no such file\n")
        return web.FileResponse(path)

    application = web.Application()
    application.router.add_get("/files/{name:.+}", get)
    return application


async def serve(paths: LabPaths, clock: Callable[[], float] = time.time) -> web.AppRunner:
    """Start serving on 127.0.0.1 (the caller keeps the loop running, then cleans up the runner)."""
    paths.files.mkdir(parents=True, exist_ok=True, mode=0o700)
    runner = web.AppRunner(app(paths, clock), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port(paths)).start()
    return runner
