"""The hostile-input corpus (tests/api_hostile_corpus.py) against the served API on the fake
driver: every case answers at once with its 4xx in ARM's error shape (never 2xx, never 5xx,
never a traceback) and leaves the lab as it was; plus what no single request shows: no
file-existence oracle, no `Host` in the URLs handed out, no token renewed past its asker,
parser-level errors in ARM's shape."""
from __future__ import annotations

import copy
import json
import os
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests

from controller.api import gallery_routes, responses, tokens
from controller.core.errors import ImageError, ModelError
from controller.core.settings import LabPaths
from controller.ops import commands
from controller.ops.lab import Lab
from controller.virt.accel import Accel
from tests import api_hostile_corpus as corpus
from tests.api_hostile_corpus import CASES, FOUR, NOBODY, SETS, UNREADABLE, VERS, WEB, Case, Model
from tests.apiserver import Served, serve
from tests.fakedriver import FakeDriver, make_scale_set
from tests.fakepool import streams
from tests.helpers import make_qcow2
from tests.test_rolling import model

P, O, S = "scaleset-lab", "debian", "debian-12"
CAPACITY = 2


def web_model(name: str = "web", capacity: Any = CAPACITY) -> dict:
    """The corpus's scale set: Manual (nothing happens unless asked), two instances."""
    doc = copy.deepcopy(model(capacity=CAPACITY))
    doc["name"], doc["location"] = name, "local"
    doc["properties"]["upgradePolicy"] = {"mode": "Manual"}
    doc["sku"] = {"name": "Lab_2vCPU_512MiB", "capacity": capacity}
    return doc


@dataclass
class Env:
    api: Served
    driver: FakeDriver
    files: Path
    home: Path
    planned: list  # capacities that reached the planner unvalidated (the guard below refused them)

    def fill(self, value: Any) -> Any:
        if isinstance(value, str):
            return value.replace("{tmp}", str(self.files)).replace("{home}", str(self.home))
        if isinstance(value, dict):
            return {k: self.fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.fill(v) for v in value]
        return value


def _guard(planned: list):
    """plan_capacity refusing what Azure never accepts: today's code plans 1e400 instances (the
    controller grows without bound); the guard keeps this machine alive and records the case."""
    original = commands.plan_capacity

    def guarded(existing, capacity, protected=()):
        if not isinstance(capacity, int) or isinstance(capacity, bool) or not 0 <= capacity <= 1000:
            planned.append(repr(capacity)[:40])
            raise ModelError("sku.capacity", f"(test guard) {capacity!r:.40} reached the planner", "TestGuard")
        return original(existing, capacity, protected)
    return guarded


def _no_build(planned: list):
    """No image build (mmdebstrap, minutes) from a wrongly accepted request: recorded, refused."""
    def build(*args, **kw):
        planned.append("an image build")
        raise ImageError("build", "(test guard) an image build was started", "TestGuard")
    return build


def make_files(files: Path, home: Path) -> None:
    good = make_qcow2(files / "good.qcow2", data=os.urandom(64 * 1024))
    (files / "notes.txt").write_text("not an image\n")
    (files / "raw.img").write_bytes(b"\0" * 65536)
    (files / "host-secret.bin").write_bytes(b"secret" * 1000)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(good),
                    str(files / "backed.qcow2")], check=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", f"data_file={files / 'host-secret.bin'}",
                    str(files / "datafile.qcow2"), "64M"], check=True)
    (files / "shadow-link").symlink_to("/etc/shadow")


def lab_served(tmp: Path):
    """A lab with image 1.0.0 and `web` (two instances), its API served; yields an Env."""
    with pytest.MonkeyPatch.context() as mp, streams():
        mp.setenv("SCALESET_HOME", str(tmp / "lab"))
        mp.setenv("SCALESET_PORTS_DIR", str(tmp))
        mp.delenv("SCALESET_CACHE", raising=False)
        paths = LabPaths(tmp / "lab").ensure()
        lab = Lab(paths, "test:///default", Accel("tcg", "test"))
        make_files(tmp / "files", paths.home)
        lab.gallery.import_file(P, O, S, "1.0.0", tmp / "files" / "good.qcow2")
        driver = FakeDriver()
        make_scale_set(lab, web_model(), driver, "1.0.0")
        planned: list = []
        mp.setattr(commands, "plan_capacity", _guard(planned))
        mp.setattr(gallery_routes, "build", _no_build(planned))
        gen = serve(lab, driver)
        try:
            yield Env(next(gen), driver, tmp / "files", paths.home, planned)
        finally:
            gen.close()
            lab.close()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    yield from lab_served(tmp_path_factory.mktemp("hostile"))


@pytest.fixture(scope="module")
def http():
    with requests.Session() as s:
        yield s


def auth_header(api: Served, kind: str) -> dict[str, str]:
    claims = jwt.decode(api.token(), options={"verify_signature": False})
    return {"ok": {"Authorization": f"Bearer {api.token()}"}, "none": {},
            "garbage": {"Authorization": "Bearer garbage.garbage.garbage"},
            "expired": {"Authorization": "Bearer " + jwt.encode({**claims, "exp": int(time.time()) - 600},
                                                                tokens.lab_key(api.lab.paths), "HS256")},
            "wrongkey": {"Authorization": "Bearer " + jwt.encode(claims, b"k" * 32, "HS256")},
            "basic": {"Authorization": "Basic dXNlcjpwYXNz"}}[kind]


def encode(env: Env, body: Any) -> bytes | None:
    if body is NOBODY:
        return None
    if isinstance(body, bytes):
        return body
    if isinstance(body, Model):
        doc = web_model("web" if body.target == "web" else "fresh", "@CAP@")
        text = json.dumps(doc)
        cap = body.capacity if isinstance(body.capacity, bytes) else json.dumps(body.capacity).encode()
        return text.encode().replace(b'"@CAP@"', cap)
    return json.dumps(env.fill(body)).encode()


def send(env: Env, http: requests.Session, case: Case) -> requests.Response:
    headers = {**auth_header(env.api, case.auth), **case.headers}
    data = encode(env, case.body)
    if data is not None:
        headers.setdefault("Content-Type", "application/json")
    query = {"api-version": corpus.V} if case.query is None else case.query
    return http.request(case.method, env.api.endpoint + env.fill(case.path), params=query, data=data, headers=headers,
                        verify=str(env.api.ca), timeout=30)


def snapshot(lab: Lab) -> dict:
    """What no refused request may change: every model with its generation, the instances, the gallery."""
    sets = {}
    for ss in lab.models.list():
        doc, generation = lab.models.read(ss.name)
        sets[ss.name] = (doc.to_json(), generation, sorted((i.instance_id, i.provisioning_state, i.image["version"],
                                                            i.scale_in_protected) for i in lab.instances.list(ss.name)))
    return {"sets": sets, "gallery": sorted(json.dumps(iv.to_json(), sort_keys=True) for iv in lab.gallery.list())}


def settle(env: Env, http: requests.Session, r: requests.Response) -> None:
    """Wait (20 s at most) for an operation a wrongly accepted request started."""
    url = r.headers.get("Azure-AsyncOperation")
    if not url or not url.startswith(env.api.endpoint):
        return
    for _ in range(400):
        got = http.get(url, headers=auth_header(env.api, "ok"), verify=str(env.api.ca), timeout=10)
        if got.status_code != 200 or got.json().get("status") != "InProgress":
            return
        time.sleep(0.05)


def put_back(env: Env, http: requests.Session, before: dict) -> None:
    """Undo what a wrongly accepted case did, so that the next cases start from the same lab."""
    lab, ok = env.api.lab, auth_header(env.api, "ok")
    v = {"api-version": corpus.V}
    for name in set(snapshot(lab)["sets"]) - set(before["sets"]):
        settle(env, http, http.delete(env.api.endpoint + f"{SETS}/{name}", params=v, headers=ok,
                                      verify=str(env.api.ca)))
    for doc in lab.gallery.list():
        if json.dumps(doc.to_json(), sort_keys=True) not in before["gallery"] and doc.version != "1.0.0":
            http.delete(env.api.endpoint + f"{VERS}/{doc.version}", params=v, headers=ok, verify=str(env.api.ca))
    if "web" not in snapshot(lab)["sets"]:
        r = http.put(env.api.endpoint + WEB, params=v, headers=ok, verify=str(env.api.ca), json=web_model())
        settle(env, http, r)
    lab.models.replace(before["sets"]["web"][0])
    if len(snapshot(lab)["sets"]["web"][2]) != CAPACITY:
        settle(env, http, http.patch(env.api.endpoint + WEB, params=v, headers=ok, verify=str(env.api.ca),
                                     json={"sku": {"capacity": CAPACITY}}))


def check_status(case: Case, status: int) -> None:
    assert not 200 <= status < 300, f"{case.id}: accepted ({status}); bad input must be refused at once"
    assert status < 500, f"{case.id}: {status}: a server error for bad input"
    if case.status == FOUR:
        assert 400 <= status < 500, f"{case.id}: {status}"
    else:
        want = case.status if isinstance(case.status, tuple) else (case.status,)
        assert status in want, f"{case.id}: {status}, want {want}"


def arm_error(r: requests.Response) -> dict:
    """The body as ARM's error shape: JSON {"error": {"code", "message"}}, no traceback."""
    assert "Traceback" not in r.text and 'File "' not in r.text
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.text[:200]
    err = r.json()["error"]
    assert isinstance(err.get("code"), str) and err["code"] and isinstance(err.get("message"), str), err
    return err


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_request_is_refused_at_once_and_changes_nothing(env, http, case):
    before = snapshot(env.api.lab)
    env.planned.clear()
    r = send(env, http, case)
    settle(env, http, r)
    after = snapshot(env.api.lab)
    planned = list(env.planned)
    if after != before:
        put_back(env, http, before)
    try:
        check_status(case, r.status_code)
        err = arm_error(r)
        if case.code is not None:
            want = case.code if isinstance(case.code, tuple) else (case.code,)
            assert err["code"] in want, f"{case.id}: {err}"
        if case.target is not None:
            assert case.target in (err.get("target") or ""), f"{case.id}: {err}"
    finally:
        assert not planned, f"{case.id}: {planned} started before the input was validated"
        assert after == before, f"{case.id}: the lab changed"


def test_the_corpus_covers_every_route_with_enough_requests(env):
    from controller.api import app
    from controller.api.context import ApiContext
    from controller.api.router import Router
    from controller.web import routes as web_routes
    seen: list[tuple[str, tuple[str, ...]]] = []
    router = Router()
    router.add = lambda method, pattern, handler: seen.append((method, pattern))  # type: ignore[method-assign]
    ctx = ApiContext.of(env.api.lab, None)
    for register in (app.vmss_routes.register, app.vm_routes.register, app.gallery_routes.register,
                     app.identity.register, web_routes.register):
        register(router, ctx)
    hit = set()
    for case in CASES:
        path = case.path.strip("/").split("/")
        for method, pattern in seen:
            parts = pattern.strip("/").split("/")
            if len(parts) == len(path) and all(a.startswith("{") or a.lower() == b.lower()
                                               for a, b in zip(parts, path)):
                hit.add((method, pattern))
    json_routes = {(m, p) for m, p in seen if p and (not p.startswith("lab") or p.startswith("lab/api"))}
    missing = {(m, p) for m, p in json_routes if not any(h[1] == p for h in hit)}
    assert not missing, f"routes with no hostile case: {sorted(missing)}"
    assert len(CASES) >= 200


def _source(env: Env, http: requests.Session, uri: str, version: str) -> tuple:
    case = Case("oracle", "PUT", f"{VERS}/{version}",
                {"properties": {"storageProfile": {"osDiskImage": {"source": {"uri": uri}}}}})
    r = send(env, http, case)
    settle(env, http, r)
    filled = env.fill(uri)
    body = r.json() if r.headers.get("Content-Type", "").startswith("application/json") else {}
    err = body.get("error") or {}
    return r.status_code, err.get("code"), (err.get("message") or "").replace(filled, "<uri>"), err.get("target")


def test_a_missing_and_an_unreadable_gallery_source_get_the_same_answer(env, http):
    """No file-existence oracle: the API reads files as the controller's user (root here)."""
    before = snapshot(env.api.lab)
    answers = {name: _source(env, http, uri, f"5.0.{n}") for n, (name, uri) in enumerate(UNREADABLE.items())}
    if snapshot(env.api.lab) != before:
        put_back(env, http, before)
    assert all(400 <= a[0] < 500 for a in answers.values()), answers
    assert len(set(answers.values())) == 1, answers


def test_host_header_never_appears_in_the_urls_handed_out(env, http, monkeypatch):
    ok, v = auth_header(env.api, "ok"), {"api-version": corpus.V}
    evil = {**ok, "Host": "evil.example"}
    ca = str(env.api.ca)
    settle(env, http, http.put(env.api.endpoint + SETS + "/gone", params=v, headers=ok, verify=ca,
                               json=web_model("gone", 0)))
    monkeypatch.setattr(responses, "PAGE_SIZE", 1)
    listed = http.get(env.api.endpoint + SETS, params={**v, "$skiptoken": "0", "x": "1"}, headers=evil, verify=ca)
    sends = [lambda: http.patch(env.api.endpoint + WEB, params=v, headers=evil, verify=ca, json={"tags": {"a": "b"}}),
             lambda: http.post(env.api.endpoint + SETS + "/gone/restart", params=v, headers=evil, verify=ca),
             lambda: http.delete(env.api.endpoint + SETS + "/gone", params=v, headers=evil, verify=ca)]
    answers = []
    for send in sends:  # each after the one before ended (a DELETE during the restart would be refused)
        r = send()
        assert r.status_code in (200, 202), r.text
        settle(env, http, r)
        answers.append(r)
    urls = [r.headers.get(h) for r in answers for h in ("Azure-AsyncOperation", "Location")]
    urls = [u for u in urls if u] + [listed.json().get("nextLink")]
    assert len(urls) >= 5 and None not in urls, urls
    for url in urls:
        assert "evil.example" not in url and url.startswith(env.api.endpoint + "/"), url


@pytest.mark.parametrize("ttl", [3, 60, 3600])
def test_the_identity_endpoint_never_outlives_the_token_that_asked(env, http, ttl):
    asker = tokens.mint(env.api.lab.paths, ttl)
    asked_exp = jwt.decode(asker, options={"verify_signature": False})["exp"]
    time.sleep(1.1 if ttl == 3600 else 0)  # a second later: a fresh full-length token would end after the asker
    r = http.get(f"{env.api.endpoint}/identity/{asker}/metadata/identity/oauth2/token",
                 params={"resource": "https://management.azure.com/"}, verify=str(env.api.ca))
    assert r.status_code == 200, r.text
    got = r.json()
    exp = jwt.decode(got["access_token"], options={"verify_signature": False})["exp"]
    assert exp <= asked_exp and int(got["expires_on"]) <= asked_exp, (exp, got["expires_on"], asked_exp)


def _raw(env: Env, request: bytes) -> tuple[int, dict[str, str], bytes]:
    ctx = ssl.create_default_context(cafile=str(env.api.ca))
    with socket.create_connection(("127.0.0.1", env.api.port), timeout=10) as sock, \
            ctx.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
        tls.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data or len(data) < data.find(b"\r\n\r\n") + 4 + _length(data):
            chunk = tls.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n")[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


PARSER = {
    "oversized-header": b"GET /subscriptions?api-version=2024-07-01 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: "
                        + b"a" * 20000 + b"\r\nConnection: close\r\n\r\n",
    "cl-and-te": b"POST " + WEB.encode() + b"/restart?api-version=2024-07-01 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n",
    "garbage-line": b"GARBAGE\x01 / HTTP/9.9\r\n\r\n",
    "bad-chunk": b"PATCH " + WEB.encode() + b"?api-version=2024-07-01 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("name", list(PARSER))
def test_parser_level_errors_are_in_arms_shape(env, name):
    before = snapshot(env.api.lab)
    status, headers, body = _raw(env, PARSER[name])
    assert 400 <= status < 500, (status, body[:200])
    assert headers.get("content-type", "").startswith("application/json"), (headers, body[:200])
    err = json.loads(body)["error"]
    assert err["code"] and err["message"] and b"Traceback" not in body
    assert snapshot(env.api.lab) == before
