"""The API's bounds and small promises (issue 27, defects 8 and 9): guest I/O has its own pool,
so slow instance views never delay a DELETE; idle, half-sent and slow-bodied connections are
closed; connections are capped; aiohttp's own 400s come in ARM's shape; `$skiptoken` and the
other query parameters are validated; the URLs handed out are the listener's, never `Host`'s;
identity-endpoint tokens expire no later than the token that asked for them."""
from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import jwt
import pytest
import requests

from controller.api import context, listener, responses, tokens
from controller.model.armid import SUBSCRIPTION_ID
from controller.ops import commands
from tests.apiserver import serve
from tests.fakedriver import make_scale_set
from tests.test_api_sdk import raw
from tests.test_rolling import model

V = {"api-version": "2024-07-01"}


def tls(api, timeout: float = 20.0) -> ssl.SSLSocket:
    ctx = ssl.create_default_context(cafile=str(api.ca))
    sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", api.port), timeout=timeout),
                           server_hostname="127.0.0.1")
    sock.settimeout(timeout)
    return sock


def answer(sock: ssl.SSLSocket) -> bytes:
    """Everything the server sends until it closes (socket.timeout if it never does)."""
    out = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            return out
        if not chunk:
            return out
        out += chunk


def status_and_json(data: bytes) -> tuple[int, dict]:
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"application/json" in head.lower(), head
    return int(head.split()[1]), json.loads(body)


def get(api, sock: ssl.SSLSocket, path: str = "/subscriptions?api-version=2024-07-01") -> bytes:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {api.token()}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(65536)
    return head


# -- $skiptoken and the other query parameters --------------------------------------------------

@pytest.mark.parametrize("token", ["²", "9" * 5000, "-1", "1e3", " 2", "0x10", ""])
def test_a_bad_skiptoken_is_400_naming_it(api, token):
    r = raw(api, "GET", "virtualMachineScaleSets", params={**V, "$skiptoken": token})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["target"] == "$skiptoken"


QUERIES = [{"$expand": "²"}, {"$expand": "instanceView" * 300}, {"$filter": "x eq 'y'"}, {"monitor": "²"},
           {"monitor": "true"}, {"api-version": "²"}, {"$top": "-1"}, {"$skiptoken": "00"}, {"resource": "\x00"}]
PATHS = ["virtualMachineScaleSets", "virtualMachineScaleSets/web", "virtualMachineScaleSets/web/virtualMachines",
         "virtualMachineScaleSets/web/virtualMachines/0", "virtualMachineScaleSets/web/instanceView",
         "virtualMachineScaleSets/web/osUpgradeHistory", "galleries", "virtualMachineScaleSets/web/rollingUpgrades/latest"]


def test_odd_query_parameters_never_crash_a_route(api, driver):
    make_scale_set(api.lab, model(capacity=1), driver, "1.0.0")
    for path in PATHS:
        for query in QUERIES:
            r = raw(api, "GET", path, params={**V, **query})
            assert r.status_code < 500, (path, query, r.text)
            assert "error" in r.json() or r.status_code == 200
    op = f"{api.endpoint}/subscriptions/{SUBSCRIPTION_ID}/providers/Microsoft.Compute/locations/local/operations/x"
    for query in QUERIES:
        r = requests.get(op, params={**V, **query}, headers={"Authorization": f"Bearer {api.token()}"},
                         verify=str(api.ca), timeout=10)
        want = (400, "InvalidApiVersionParameter") if "api-version" in query else (404, "NotFound")
        assert (r.status_code, r.json()["error"]["code"]) == want


# -- the URLs handed out --------------------------------------------------------------------------

def test_urls_handed_out_are_the_listeners_never_the_host_header(api, monkeypatch):
    own = f"https://127.0.0.1:{api.port}/"
    evil = {"Host": "evil.example"}
    r = raw(api, "PUT", "virtualMachineScaleSets/web", params=V, json=model(capacity=0), headers=dict(evil))
    assert r.status_code == 201, r.text
    assert r.headers["Azure-AsyncOperation"].startswith(own) and "evil" not in r.headers["Azure-AsyncOperation"]
    r = raw(api, "DELETE", "virtualMachineScaleSets/web", params=V, headers=dict(evil))
    assert r.headers["Location"].startswith(own) and r.headers["Azure-AsyncOperation"].startswith(own)
    monkeypatch.setattr(responses, "PAGE_SIZE", 1)
    make = {**model(capacity=0), "name": "a"}
    for name in ("a", "b"):
        raw(api, "PUT", f"virtualMachineScaleSets/{name}", params=V, json={**make, "name": name})
    page = raw(api, "GET", "virtualMachineScaleSets", params=V, headers={"Host": "evil.example:1"}).json()
    assert page["nextLink"].startswith(own) and "$skiptoken=1" in page["nextLink"]
    nxt = requests.get(page["nextLink"], headers={"Authorization": f"Bearer {api.token()}"}, verify=str(api.ca),
                       timeout=10).json()
    assert len(nxt["value"]) == 1 and nxt["value"][0]["name"] != page["value"][0]["name"]


# -- identity-endpoint tokens ---------------------------------------------------------------------

def test_an_identity_token_expires_with_the_token_that_asked_for_it(api):
    short = api.token(ttl=30)
    asked = jwt.decode(short, options={"verify_signature": False})["exp"]
    url = f"{api.endpoint}/identity/{short}/metadata/identity/oauth2/token"
    got = requests.get(url, params={"resource": "https://management.azure.com/"}, verify=str(api.ca), timeout=10)
    assert got.status_code == 200, got.text
    body = got.json()
    claims = tokens.verify(api.lab.paths, body["access_token"])
    assert claims["exp"] <= asked and int(body["expires_on"]) == claims["exp"] and int(body["expires_in"]) <= 30
    again = requests.get(f"{api.endpoint}/identity/{body['access_token']}/metadata/identity/oauth2/token",
                         verify=str(api.ca), timeout=10).json()
    assert tokens.verify(api.lab.paths, again["access_token"])["exp"] <= asked  # never renewed past it
    long = requests.get(f"{api.endpoint}/identity/{api.token(ttl=86400)}/metadata/identity/oauth2/token",
                        verify=str(api.ca), timeout=10).json()
    assert int(long["expires_in"]) == int(tokens.DEFAULT_TTL)  # a longer-lived asker gets the usual hour


def test_mint_never_outlives_not_after(lab):
    now = int(time.time())
    token = tokens.mint(lab, 3600, not_after=now + 5)
    assert tokens.verify(lab, token)["exp"] <= now + 5
    with pytest.raises(tokens.Unauthorized):
        tokens.mint(lab, 3600, not_after=now - 1)


# -- connections ----------------------------------------------------------------------------------

def test_a_half_sent_request_is_closed(api, monkeypatch):
    monkeypatch.setattr(listener, "IDLE_TIMEOUT", 0.5)
    sock = tls(api)
    sock.sendall(b"GET /subscriptions?api-version=2024-07-01 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: ")
    assert answer(sock) == b""  # closed by the server (a timeout here raises socket.timeout)
    idle = tls(api)
    assert answer(idle) == b""


def test_a_slow_body_is_answered_408_and_closed(api, monkeypatch):
    monkeypatch.setattr(listener, "BODY_TIMEOUT", 0.5)
    sock = tls(api)
    path = f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/scaleset-lab/providers/Microsoft.Compute/" \
           "virtualMachineScaleSets/web?api-version=2024-07-01"
    sock.sendall(f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {api.token()}\r\n"
                 "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"loc".encode())
    status, body = status_and_json(answer(sock))
    assert status == 408 and body["error"]["target"] == "body"
    assert api.lab.models.stored_name("web") is None


def test_a_connection_that_never_starts_tls_is_closed(flab, driver, monkeypatch):
    monkeypatch.setattr(listener, "HANDSHAKE_TIMEOUT", 0.5)
    served = serve(flab, driver)
    api = next(served)
    try:
        with socket.create_connection(("127.0.0.1", api.port), timeout=20) as sock:
            try:
                assert sock.recv(1) == b""  # closed (a timeout here raises socket.timeout)
            except ConnectionResetError:
                pass
    finally:
        served.close()


def test_connections_over_the_cap_are_closed(api, monkeypatch):
    monkeypatch.setattr(listener, "MAX_CONNECTIONS", 3)
    kept = [tls(api) for _ in range(3)]
    for sock in kept:
        assert get(api, sock).startswith(b"HTTP/1.1 200")  # served: counted by the server
    over = tls(api)
    assert answer(over) == b""
    over.close()
    assert get(api, kept[0]).startswith(b"HTTP/1.1 200")  # the others are still served
    kept.pop().close()
    for _ in range(100):  # once the server saw it close, there is room again
        try:
            sock = tls(api)
        except OSError:
            time.sleep(0.05)
            continue
        try:
            sock.sendall(f"GET /subscriptions?api-version=2024-07-01 HTTP/1.1\r\nHost: x\r\n"
                         f"Authorization: Bearer {api.token()}\r\nConnection: close\r\n\r\n".encode())
            if answer(sock).startswith(b"HTTP/1.1 200"):
                break
        except OSError:
            pass
        finally:
            sock.close()
        time.sleep(0.05)
    else:
        raise AssertionError("no connection served after one of the capped ones closed")


@pytest.mark.parametrize("request_bytes, says", [
    (b"GET /subscriptions HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", "longer than 8190 bytes"),
    (b"POST /subscriptions HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     "Transfer-Encoding"),
    (b"GARBAGE\r\n\r\n", "request line"),
    (b"GET /subscriptions HTTP/9.9\r\nHost: x\r\n\r\n", "request line"),
    (b"GET /subscriptions HTTP/1.1\r\nHost: x\r\nAuthorization : Bearer hunter2-never-echoed\r\n\r\n", "header"),
], ids=["oversized-header", "cl-and-te", "bad-request-line", "bad-version", "bad-header"])
def test_parser_errors_come_in_arms_shape(api, request_bytes, says):
    sock = tls(api)
    sock.sendall(request_bytes)
    data = answer(sock)
    status, body = status_and_json(data)
    assert status == 400 and set(body["error"]) == {"code", "target", "message"}
    assert body["error"]["code"] == "BadRequest" and body["error"]["target"] == "request"
    assert says in body["error"]["message"]
    assert b"hunter2" not in data and b"aaaa" not in data


# -- guest I/O has its own pool -------------------------------------------------------------------

def test_slow_instance_views_do_not_delay_a_delete(api, driver, monkeypatch):
    make_scale_set(api.lab, model(capacity=1), driver, "1.0.0")
    raw(api, "PUT", "virtualMachineScaleSets/other", params=V, json={**model(capacity=0), "name": "other"})
    release, entered = threading.Event(), threading.Semaphore(0)

    def stuck(lab, inst):  # a booting guest that does not answer SSH
        entered.release()
        release.wait(60)
        return inst
    monkeypatch.setattr(commands, "refresh", stuck)
    n = 24  # more than the guest pool and more than the worker pool
    views = ThreadPoolExecutor(n)
    token = api.token()
    try:
        pending = [views.submit(raw, api, "GET", "virtualMachineScaleSets/web/virtualMachines/0/instanceView",
                                token=token, params=V) for _ in range(n)]
        for _ in range(context.GUEST_THREADS):
            assert entered.acquire(timeout=30)  # the guest pool is full of waiting views
        gone = raw(api, "DELETE", "virtualMachineScaleSets/other", token=token, params=V)
        assert gone.status_code == 202, gone.text
        url = gone.headers["Azure-AsyncOperation"]
        for _ in range(200):
            status = requests.get(url, headers={"Authorization": f"Bearer {token}"}, verify=str(api.ca),
                                  timeout=10).json()["status"]
            if status != "InProgress":
                break
            time.sleep(0.05)
        assert status == "Succeeded" and not release.is_set()  # done while every view still waits
        assert raw(api, "GET", "virtualMachineScaleSets/web", token=token, params=V).status_code == 200
    finally:
        release.set()
        views.shutdown(wait=True)
    assert all(p.result().status_code == 200 for p in pending)
