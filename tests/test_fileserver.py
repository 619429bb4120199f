"""The file server for extension fileUris: tokens with an expiry, loopback only, no traversal."""
import asyncio
from urllib.parse import urlsplit

import aiohttp
import pytest

from controller.core.errors import ModelError
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


def test_server_serves_only_plain_names_of_regular_files(lab):
    """Even with a valid signature: no path below files/, no link out of it."""
    (lab.files / "sub").mkdir()
    (lab.files / "sub" / "x.sh").write_text("echo nested\n")
    (lab.files / "link").symlink_to(lab.db)
    key = fileserver.secret(lab)
    for name in ("sub/x.sh", "link", "../state.db"):
        signed = f"http://{fileserver.GUEST_HOST}:{fileserver.port(lab)}/files/{name}?se=2000" \
                 f"&sig={fileserver.sign(key, name, 2000)}"
        assert fetch(lab, signed, clock=lambda: 1000)[0] == 404, name


def test_url_refuses_what_is_not_a_plain_existing_file(lab):
    (lab.files / "payload.sh").write_text("echo\n")
    for name in ("../state.db", "a/../../x", "nope.sh", "..", ".payload.sh"):
        with pytest.raises(ModelError) as exc:
            fileserver.url(lab, name, 60)
        assert exc.value.field == "--name"
    assert "/files/payload.sh?" in fileserver.url(lab, "payload.sh", 60)
