"""The file server for extension fileUris: tokens with an expiry, loopback only, no traversal."""
import asyncio
from urllib.parse import urlsplit

import aiohttp

from controller.ops import fileserver


def fetch(lab, url, clock):
    """GET a guest-side URL against the server on 127.0.0.1 (what 10.0.2.2 is for a guest)."""
    async def go():
        runner = await fileserver.serve(lab, clock=clock)
        try:
            parts = urlsplit(url)
            assert parts.hostname == fileserver.GUEST_HOST
            local = f"http://127.0.0.1:{parts.port}{parts.path}?{parts.query}"
            async with aiohttp.ClientSession() as s, s.get(local) as resp:
                return resp.status, await resp.text()
        finally:
            await runner.cleanup()
    return asyncio.run(go())


def test_token_is_checked_and_expires(lab):
    (lab.home / "files").mkdir(exist_ok=True)
    (lab.home / "files" / "payload.sh").write_text("echo payload\n")
    url = fileserver.url(lab, "payload.sh", 60, now=1000)
    assert fetch(lab, url, clock=lambda: 1030) == (200, "echo payload\n")
    assert fetch(lab, url, clock=lambda: 1061) == (403, "token expired\n")
    assert fetch(lab, url.replace("sig=", "sig=0"), clock=lambda: 1030)[0] == 403
    forged = url.replace("payload.sh", "..%2Fkeys%2Fid_ed25519")
    assert fetch(lab, forged, clock=lambda: 1030)[0] == 403  # the signature names the file


def test_server_listens_on_loopback_only(lab):
    async def go():
        runner = await fileserver.serve(lab)
        try:
            return [s.name for s in runner.sites]
        finally:
            await runner.cleanup()
    names = asyncio.run(go())
    assert names == [f"http://127.0.0.1:{fileserver.port(lab)}"]
