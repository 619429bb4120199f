"""Issue 27's concurrency acceptance through the served API (fake driver): concurrent PATCHes of
different fields, an API PATCH storm beside CLI `update --set`, read / change / PUT with
If-Match / retry on 412 -- no change answered 2xx is ever lost; ARM's etags (body and `ETag`,
the generation quoted) and 412 PreconditionFailed for stale If-Match / If-None-Match: *."""
from __future__ import annotations

import base64
import copy
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import models as m

from controller.core.errors import LabError
from controller.model.armid import DEFAULT_RESOURCE_GROUP as RG
from controller.ops import commands
from controller.ops.lab import Lab
from tests.apiserver import Served
from tests.test_api_hostile import web_model

V = {"api-version": "2024-07-01"}
NAME = "conc"
VMP = "properties.virtualMachineProfile"
ROLLING = "properties.upgradePolicy.rollingUpgradePolicy"
PROBE = VMP + ".networkProfile.healthProbe"
ROUNDS = 6


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# 20 fields a round trip keeps (checked one at a time below), each a value per round r that
# differs from the round before (and from the stored default).
FIELDS: dict[str, Callable[[int], Any]] = {
    "properties.labSettings.healthWaitTimeout": lambda r: f"PT{10 + r}S",
    "properties.labSettings.autoUpgradeDelay": lambda r: f"PT{40 + r}S",
    "properties.labSettings.vcpus": lambda r: 1 + r % 2,
    "properties.labSettings.memoryMiB": lambda r: 640 + 128 * r,
    ROLLING + ".maxBatchInstancePercent": lambda r: 10 + r,  # at most maxUnhealthyInstancePercent, whatever order
    ROLLING + ".maxUnhealthyInstancePercent": lambda r: 40 + r,
    ROLLING + ".maxUnhealthyUpgradedInstancePercent": lambda r: 50 + r,
    ROLLING + ".pauseTimeBetweenBatches": lambda r: f"PT{r + 1}S",
    ROLLING + ".prioritizeUnhealthyInstances": lambda r: r % 2 == 0,
    ROLLING + ".rollbackFailedInstancesOnPolicyBreach": lambda r: r % 2 == 0,
    "properties.upgradePolicy.automaticOSUpgradePolicy.disableAutomaticRollback": lambda r: r % 2 == 0,
    VMP + ".osProfile.computerNamePrefix": lambda r: f"conc{r}",
    VMP + ".osProfile.adminUsername": lambda r: f"user{r}",
    VMP + ".osProfile.customData": lambda r: _b64(f"#cloud-config\n# round {r}\n"),
    VMP + ".storageProfile.osDisk.caching": lambda r: ("ReadOnly", "None")[r % 2],
    VMP + ".storageProfile.osDisk.diskSizeGB": lambda r: 5 + r,
    PROBE + ".port": lambda r: 8000 + r,
    PROBE + ".requestPath": lambda r: f"/h{r}",
    PROBE + ".intervalInSeconds": lambda r: 6 + r,
    PROBE + ".numberOfProbes": lambda r: 3 + r,
}
STORM = "properties.labSettings.memoryMiB"  # the field of (b)'s API clients


def conc_model() -> dict:
    doc = web_model(NAME, 0)
    vmp = doc["properties"]["virtualMachineProfile"]
    vmp["extensionProfile"] = {"extensions": []}
    vmp["storageProfile"].pop("dataDisks")
    vmp["networkProfile"] = {"healthProbe": {"protocol": "Http", "port": 80, "requestPath": "/health",
                                             "intervalInSeconds": 5, "numberOfProbes": 2}}
    return doc


def at(doc: dict, path: str) -> Any:
    for key in path.split("."):
        doc = doc.get(key) if isinstance(doc, dict) else None
    return doc


def put_at(doc: dict, path: str, value: Any) -> dict:
    *parents, last = path.split(".")
    node = doc
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return doc


def nested(path: str, value: Any) -> dict:
    out: dict = {}
    put_at(out, path, value)
    return out


@pytest.fixture
def conc(api: Served) -> Served:
    commands.create_model(api.lab, conc_model())
    return api


class Client:
    """One API client: its own HTTPS session (connected before the start), the lab's token."""

    def __init__(self, api: Served) -> None:
        self.api, self.s = api, requests.Session()
        self.s.headers["Authorization"] = f"Bearer {api.token()}"
        self.s.verify, self.s.trust_env = str(api.ca), False  # no REQUESTS_CA_BUNDLE over verify
        self.url = api.url(f"virtualMachineScaleSets/{NAME}")
        self.s.get(self.url, params=V, timeout=30)

    def patch(self, body: dict, headers: dict | None = None) -> requests.Response:
        for _ in range(20):  # a refused write (409/429) may be sent again; one answered 2xx must be kept
            r = self.s.patch(self.url, params=V, json=body, headers=headers, timeout=60)
            if r.status_code not in (409, 429):
                return r
            time.sleep(0.05)
        return r

    def settle(self, r: requests.Response) -> None:
        url = r.headers.get("Azure-AsyncOperation")
        for _ in range(600 if url else 0):
            if self.s.get(url, timeout=30).json().get("status") != "InProgress":
                return
            time.sleep(0.05)


def together(jobs: list[Callable[[], Any]]) -> list[Any]:
    """Run the jobs in threads of their own, started at once; their results (errors raised)."""
    start = threading.Barrier(len(jobs))

    def run(job):
        start.wait(30)
        return job()
    with ThreadPoolExecutor(len(jobs)) as pool:
        return [f.result() for f in [pool.submit(run, j) for j in jobs]]


def stored(api: Served) -> dict:
    return api.lab.models.get(NAME).to_json()


def lost_fields(doc: dict, want: dict[str, Any]) -> list[str]:
    return [f"{p}: {at(doc, p)!r} != {v!r}" for p, v in want.items() if at(doc, p) != v]


def test_the_twenty_fields_survive_a_round_trip_one_at_a_time(conc):
    c = Client(conc)
    want = {p: f(0) for p, f in FIELDS.items()}
    for p, v in want.items():
        r = c.patch(nested(p, v))
        assert r.status_code == 200, r.text
        c.settle(r)
    assert not lost_fields(stored(conc), want)
    assert not lost_fields(c.s.get(c.url, params=V).json(), want)


def test_twenty_concurrent_patches_of_different_fields_lose_nothing(conc):
    clients = {p: Client(conc) for p in FIELDS}
    lost = []
    for r in range(ROUNDS):
        want = {p: f(r) for p, f in FIELDS.items()}
        answers = together([lambda c=c, p=p: c.patch(nested(p, want[p])) for p, c in clients.items()])
        assert [a.status_code for a in answers] == [200] * len(FIELDS), [a.text[:200] for a in answers]
        for a, c in zip(answers, clients.values()):
            c.settle(a)
        via_api = next(iter(clients.values())).s.get(next(iter(clients.values())).url, params=V).json()
        lost += [f"round {r} sqlite {x}" for x in lost_fields(stored(conc), want)]
        lost += [f"round {r} GET {x}" for x in lost_fields(via_api, want)]
    assert not lost, f"{len(lost)} changes answered 200 were lost:\n" + "\n".join(lost)


def test_api_patch_storm_beside_cli_updates_loses_no_cli_change(conc):
    cli_fields = [p for p in FIELDS if p != STORM][:10]
    storm = [768 + 128 * i for i in range(8)]
    clients = [Client(conc) for _ in storm]
    codes: list[int] = []
    done: list[str] = []

    def api_job(c: Client, value: int) -> None:
        for _ in range(8):
            r = c.patch(nested(STORM, value))
            codes.append(r.status_code)
            c.settle(r)

    def cli_job(path: str) -> None:
        lab = Lab(conc.lab.paths, conc.lab.uri, conc.lab._accel)  # one `scaleset update --set` process
        try:
            value = FIELDS[path](0)
            text = value if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)
            commands.update_model(lab, NAME, [f"{path}={text}"])
            done.append(path)  # exit 0
        except LabError as exc:  # refused (exit 1), not lost
            assert exc.code == "ConcurrentUpdate", exc
        finally:
            lab.close()
    together([lambda c=c, v=v: api_job(c, v) for c, v in zip(clients, storm)] +
             [lambda p=p: cli_job(p) for p in cli_fields])
    doc = stored(conc)
    assert codes == [200] * len(codes) and done, (codes, done)
    lost = lost_fields(doc, {p: FIELDS[p](0) for p in done})
    assert not lost, f"{len(lost)} of {len(done)} CLI updates that exited 0 were undone by API PATCHes: {lost}"
    assert at(doc, STORM) in storm


def test_read_change_put_with_if_match_retrying_on_412_loses_nothing(conc):
    clients = {p: Client(conc) for p in FIELDS}
    before = conc.lab.models.generation(NAME)
    untagged: list[str] = []

    def job(p: str, c: Client) -> tuple[int, int]:
        """(412s seen, 2xx answers): read, change one field, PUT If-Match, again on 412."""
        refused = 0
        for _ in range(200):
            got = c.s.get(c.url, params=V, timeout=30)
            doc, tag = got.json(), got.headers.get("ETag")
            if tag is None or doc.get("etag") != tag:
                untagged.append(f"{p}: ETag {tag!r}, body etag {doc.get('etag')!r}")
            put_at(doc, p, FIELDS[p](0))
            r = c.s.put(c.url, params=V, json=doc, headers={"If-Match": tag} if tag else {}, timeout=60)
            if r.status_code == 412:
                assert r.json()["error"]["code"] == "PreconditionFailed"
                refused += 1
                continue
            if r.status_code in (409, 429):
                continue
            assert r.status_code == 200, r.text
            c.settle(r)
            return refused, 1
        raise AssertionError(f"{p}: no PUT got through")
    results = together([lambda p=p, c=c: job(p, c) for p, c in clients.items()])
    doc = stored(conc)
    lost = lost_fields(doc, {p: f(0) for p, f in FIELDS.items()})
    assert not untagged and not lost, f"no etag: {untagged[:3]}; lost: {lost}"
    # each 2xx PUT is one write; a 412 writes nothing
    assert conc.lab.models.generation(NAME) - before == sum(ok for _, ok in results)


def etag_of(r: requests.Response) -> str:
    tag = r.headers.get("ETag")
    assert tag is not None and r.json().get("etag") == tag, (tag, r.json().get("etag"))
    assert re.fullmatch(r'"[0-9]+"', tag), tag
    return tag


def test_etag_in_body_and_header_is_the_generation_and_changes_on_every_write(conc):
    c = Client(conc)
    tags = [etag_of(c.s.get(c.url, params=V))]
    assert tags[0] == f'"{conc.lab.models.generation(NAME)}"'
    r = c.patch(nested(STORM, 1024))
    c.settle(r)
    tags.append(etag_of(r))
    doc = c.s.get(c.url, params=V).json()
    put_at(doc, STORM, 768)
    r = c.s.put(c.url, params=V, json=doc)
    c.settle(r)
    tags.append(etag_of(r))
    commands.update_model(conc.lab, NAME, [f"{STORM}=896"])
    got = c.s.get(c.url, params=V)
    tags.append(etag_of(got))
    assert len(set(tags)) == 4, tags
    assert tags[-1] == f'"{conc.lab.models.generation(NAME)}"'
    listed = c.s.get(conc.url("virtualMachineScaleSets"), params=V).json()["value"]
    assert [s["etag"] for s in listed if s["name"] == NAME] == [tags[-1]]


def read(api: Served) -> tuple[dict, int]:
    ss, generation = api.lab.models.read(NAME)
    return ss.to_json(), generation


def stale_tag(c: Client) -> str:
    """An etag of the set that a write since has made stale."""
    old = c.s.get(c.url, params=V).headers.get("ETag") or '"0"'
    c.settle(c.patch(nested(STORM, 1152)))
    return old


def test_patch_with_a_stale_if_match_is_412_and_changes_nothing(conc):
    c = Client(conc)
    old = stale_tag(c)
    before = read(conc)
    r = c.patch(nested(STORM, 1280), headers={"If-Match": old})
    c.settle(r)
    assert r.status_code == 412 and r.json()["error"]["code"] == "PreconditionFailed", r.text
    assert read(conc) == before


def test_put_with_if_none_match_star_on_an_existing_set_is_412(conc):
    c = Client(conc)
    before = read(conc)
    doc = put_at(conc_model(), STORM, 1280)
    r = c.s.put(c.url, params=V, json=doc, headers={"If-None-Match": "*"})
    c.settle(r)
    assert r.status_code == 412 and r.json()["error"]["code"] == "PreconditionFailed", r.text
    assert read(conc) == before


def test_delete_with_a_stale_if_match_is_412_and_the_set_stays(conc):
    c = Client(conc)
    old = stale_tag(c)
    before = read(conc)
    r = c.s.delete(c.url, params=V, headers={"If-Match": old})
    c.settle(r)
    assert r.status_code == 412 and r.json()["error"]["code"] == "PreconditionFailed", r.text
    assert read(conc) == before


def test_the_sdks_etag_conditions_give_412(conc):
    client = conc.client()
    before = read(conc)
    update = m.VirtualMachineScaleSetUpdate(properties=m.VirtualMachineScaleSetUpdateProperties(
        upgrade_policy=m.UpgradePolicy(mode="Manual")))
    with pytest.raises(HttpResponseError) as err:
        client.virtual_machine_scale_sets.begin_update(RG, NAME, update, etag='"999999"',
                                                       match_condition=MatchConditions.IfNotModified).result()
    assert err.value.status_code == 412
    full = client.virtual_machine_scale_sets.get(RG, NAME)
    with pytest.raises(HttpResponseError) as err:
        client.virtual_machine_scale_sets.begin_create_or_update(RG, NAME, copy.deepcopy(full),
                                                                 match_condition=MatchConditions.IfMissing).result()
    assert err.value.status_code == 412
    assert read(conc) == before
