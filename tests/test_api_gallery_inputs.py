"""Gallery writes (issue 27): image versions carry an etag (body and ETag header) that changes
on every write; If-Match and If-None-Match on PUT, PATCH and DELETE (412, nothing changed); and
bad input in any body field is refused at once, naming the field, before any 2xx."""
from __future__ import annotations

import os

import pytest
import requests

from tests.helpers import make_qcow2
from tests.test_api_gallery import finished

G, I = "scaleset-lab", "debian-12"
P, O, S = "scaleset-lab", "debian", "debian-12"
V1 = f"galleries/{G}/images/{I}/versions/1.0.0"
PUB = "properties.publishingProfile"


def raw(api, method: str, path: str, headers: dict | None = None, **kw) -> requests.Response:
    return requests.request(method, api.url(path), params={"api-version": "2024-03-03"}, verify=str(api.ca),
                            timeout=10, headers={"Authorization": f"Bearer {api.token()}", **(headers or {})}, **kw)


def exclude(value: bool) -> dict:
    return {"properties": {"publishingProfile": {"excludeFromLatest": value}}}


def test_a_version_carries_an_etag_that_changes_on_every_write(api):
    got = raw(api, "GET", V1)
    tag = got.headers["ETag"]
    assert got.json()["etag"] == tag and tag.startswith('"') and tag.endswith('"')
    listed = raw(api, "GET", f"galleries/{G}/images/{I}/versions").json()["value"]
    assert [v["etag"] for v in listed] == [tag]
    patched = raw(api, "PATCH", V1, json=exclude(True))
    assert patched.status_code == 200 and patched.headers["ETag"] == patched.json()["etag"] != tag
    regions = raw(api, "PATCH", V1, json={"properties": {"publishingProfile": {"targetRegions": [{"name": "local"},
                                                                                                {"name": "east"}]}}})
    assert regions.headers["ETag"] not in (tag, patched.headers["ETag"])
    assert raw(api, "GET", V1).headers["ETag"] == regions.headers["ETag"]


def test_a_stale_if_match_is_412_and_changes_nothing(api):
    old = raw(api, "GET", V1).headers["ETag"]
    assert raw(api, "PATCH", V1, json=exclude(True), headers={"If-Match": old}).status_code == 200
    for method, body in (("PATCH", exclude(False)), ("PUT", {"location": "local", **exclude(False)}),
                         ("DELETE", None)):
        r = raw(api, method, V1, json=body, headers={"If-Match": old})
        assert r.status_code == 412 and r.json()["error"]["code"] == "PreconditionFailed", (method, r.text)
    iv = api.lab.gallery.get(P, O, S, "1.0.0")
    assert iv.exclude_from_latest is True and iv.path.is_file()
    current = raw(api, "GET", V1).headers["ETag"]
    assert raw(api, "PATCH", V1, json=exclude(False), headers={"If-Match": current}).status_code == 200
    assert raw(api, "PATCH", V1, json=exclude(True), headers={"If-Match": "*"}).status_code == 200


def test_if_none_match_star_refuses_an_existing_version_and_if_match_a_missing_one(api, tmp_path):
    disk = make_qcow2(tmp_path / "new.qcow2", data=os.urandom(64 * 1024))
    body = {"location": "local", "properties": {"storageProfile": {"osDiskImage": {"source": {"uri": str(disk)}}}}}
    r = raw(api, "PUT", V1, json={"location": "local", **exclude(True)}, headers={"If-None-Match": "*"})
    assert r.status_code == 412 and r.json()["error"]["target"] == "If-None-Match"
    assert api.lab.gallery.get(P, O, S, "1.0.0").exclude_from_latest is False
    new = f"galleries/{G}/images/{I}/versions/1.0.1"
    r = raw(api, "PUT", new, json=body, headers={"If-Match": '"abc"'})
    assert r.status_code == 412 and "Azure-AsyncOperation" not in r.headers
    assert raw(api, "DELETE", new, headers={"If-Match": '"abc"'}).status_code == 412
    r = raw(api, "PUT", new, json=body, headers={"If-None-Match": "*"})
    assert finished(api, r)["status"] == "Succeeded"
    tag = raw(api, "GET", new).headers["ETag"]
    assert raw(api, "DELETE", new, headers={"If-Match": tag}).status_code == 200
    assert [v.version for v in api.lab.gallery.list()] == ["1.0.0"]


def test_a_malformed_precondition_is_400_naming_the_header(api):
    r = raw(api, "PATCH", V1, json=exclude(True), headers={"If-Match": "x" * 300})
    assert r.status_code == 400 and r.json()["error"]["target"] == "If-Match"
    assert api.lab.gallery.get(P, O, S, "1.0.0").exclude_from_latest is False


def _source(uri) -> dict:
    return {"storageProfile": {"osDiskImage": {"source": {"uri": uri}}}}


@pytest.fixture
def disk(tmp_path):
    return make_qcow2(tmp_path / "in" / "v2.qcow2", data=os.urandom(64 * 1024))


def test_bad_fields_anywhere_in_the_body_are_refused_at_once(api, disk, tmp_path):
    script = tmp_path / "ok.sh"
    script.write_text("true\n")
    ok = _source(str(disk))
    cases = [
        ({"location": 5, "properties": ok}, "location"),
        ({"location": "local", "tags": ["a"], "properties": ok}, "tags"),
        ({"tags": {"a": 1}, "properties": ok}, "tags"),
        ({"properties": {**ok, "publishingProfile": {"targetRegions": [{"name": "local", "regionalReplicaCount": "2"}]}}},
         f"{PUB}.targetRegions[0].regionalReplicaCount"),
        ({"properties": {**ok, "publishingProfile": {"targetRegions": [{"name": "local", "regionalReplicaCount": 0}]}}},
         f"{PUB}.targetRegions[0].regionalReplicaCount"),
        ({"properties": {**ok, "publishingProfile": {"targetRegions": [{"name": "local", "regionalReplicaCount": True}]}}},
         f"{PUB}.targetRegions[0].regionalReplicaCount"),
        ({"properties": {**ok, "publishingProfile": {"targetRegions": [{"name": "l"}] * 101}}}, f"{PUB}.targetRegions"),
        ({"properties": {**ok, "publishingProfile": {"targetRegions": "local"}}}, f"{PUB}.targetRegions"),
        ({"properties": {"storageProfile": {"osDiskImage": {"source": {"uri": str(disk)}},
                                            "dataDiskImages": [{"lun": 0}]}}},
         "properties.storageProfile.dataDiskImages"),
        ({"properties": _source(str(disk) + "\0x")}, "properties.storageProfile.osDiskImage.source.uri"),
        ({"properties": _source(7)}, "properties.storageProfile.osDiskImage.source.uri"),
        ({"properties": {"lab": {"customize": [str(script)] * 33}}}, "properties.lab.customize"),
        ({"properties": {"lab": {"customize": ["/proc/self/environ"]}}}, "properties.lab.customize[0]"),
        ({"properties": {"lab": {"customize": [str(api.lab.paths.db)]}}}, "properties.lab.customize[0]"),
        ({"properties": {"lab": {"customize": [7]}}}, "properties.lab.customize[0]"),
        ({"properties": {"lab": {"recipe": 5}}}, "properties.lab.recipe"),
        ({"properties": "x"}, "properties"),
    ]
    for body, target in cases:
        r = raw(api, "PUT", f"galleries/{G}/images/{I}/versions/2.0.0", json=body)
        assert r.status_code == 400 and r.json()["error"]["target"] == target, (target, r.text[:300])
        assert "Azure-AsyncOperation" not in r.headers
    assert [v.version for v in api.lab.gallery.list()] == ["1.0.0"]


def test_a_customize_script_gets_one_answer_for_missing_and_unfit(api, tmp_path):
    answers = []
    for path in (tmp_path / "missing.sh", "/proc/self/environ", api.lab.paths.db, tmp_path):
        r = raw(api, "PUT", f"galleries/{G}/images/{I}/versions/2.0.0",
                json={"properties": {"lab": {"customize": [str(path)]}}})
        assert r.status_code == 400
        err = r.json()["error"]
        answers.append({**err, "message": err["message"].replace(str(path), "PATH")})
    assert all(a == answers[0] for a in answers), answers


def test_clients_that_read_change_and_write_with_if_match_lose_no_change(api):
    """8 clients each add their region to targetRegions: GET, add, PUT with If-Match, again on
    412 (or 409 while another's replication runs). All 8 regions are kept."""
    import threading
    import time
    errors: list[str] = []

    def client(n: int) -> None:
        for _ in range(500):
            got = raw(api, "GET", V1)
            targets = got.json()["properties"]["publishingProfile"]["targetRegions"]
            body = {"location": "local", "properties": {"publishingProfile": {
                "targetRegions": [*targets, {"name": f"r{n}"}]}}}
            r = raw(api, "PUT", V1, json=body, headers={"If-Match": got.headers["ETag"]})
            if r.status_code == 200:
                return
            if r.status_code not in (409, 412):
                errors.append(r.text)
                return
            time.sleep(0.01 * (n + 1))
        errors.append(f"client {n} never got its write in")
    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    kept = set(api.lab.gallery.get(P, O, S, "1.0.0").target_regions)
    assert kept >= {f"r{n}" for n in range(8)}, kept
