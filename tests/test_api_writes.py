"""Writes of scale sets and their VMs through the ARM API (issue 27): concurrent writes lose
nothing, etags and If-Match / If-None-Match (raw and through Azure's SDK), bodies validated
before any 2xx, instance ids checked before the 202, and operations that tell the truth."""
from __future__ import annotations

import copy
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import models as m

from controller.model.armid import DEFAULT_RESOURCE_GROUP as RG
from controller.ops import commands, provision
from controller.ops.lab import Lab
from tests.fakedriver import make_scale_set
from tests.test_api_sdk import sdk_model
from tests.test_model import BASE
from tests.test_rolling import model

V = {"api-version": "2024-07-01"}
RP = "properties.upgradePolicy.rollingUpgradePolicy"
VMP = "properties.virtualMachineProfile"
FIELDS = [  # 20 different fields of one model, each with a value unlike its stored one
    ("sku.name", "Lab_4vCPU"), ("sku.tier", "Standard"), ("properties.upgradePolicy.mode", "Rolling"),
    (f"{RP}.maxBatchInstancePercent", 10), (f"{RP}.maxUnhealthyInstancePercent", 30),
    (f"{RP}.maxUnhealthyUpgradedInstancePercent", 40), (f"{RP}.pauseTimeBetweenBatches", "PT7S"),
    (f"{RP}.prioritizeUnhealthyInstances", True), (f"{RP}.rollbackFailedInstancesOnPolicyBreach", True),
    (f"{RP}.maxSurge", True), ("properties.upgradePolicy.automaticOSUpgradePolicy.disableAutomaticRollback", True),
    ("properties.upgradePolicy.automaticOSUpgradePolicy.useRollingUpgradePolicy", True),
    ("properties.labSettings.healthWaitTimeout", "PT2M"), ("properties.labSettings.autoUpgradeDelay", "PT9S"),
    ("properties.labSettings.vcpus", 3), ("properties.labSettings.memoryMiB", 1024),
    (f"{VMP}.osProfile.adminUsername", "ops"), (f"{VMP}.osProfile.computerNamePrefix", "www"),
    (f"{VMP}.storageProfile.osDisk.caching", "ReadOnly"), (f"{VMP}.networkProfile.healthProbe.intervalInSeconds", 30),
]


def call(api, method: str, path: str = "virtualMachineScaleSets/web", body=None, data=None, headers=None,
         timeout: float = 20) -> requests.Response:
    return requests.request(method, api.url(path), params=V, json=body, data=data, verify=str(api.ca),
                            headers={"Authorization": f"Bearer {api.token()}", "Content-Type": "application/json",
                                     **(headers or {})}, timeout=timeout)


def nested(path: str, value) -> dict:
    out: dict = value
    for key in reversed(path.split(".")):
        out = {key: out}
    return out


def value_at(doc: dict, path: str):
    for key in path.split("."):
        doc = doc.get(key, {}) if isinstance(doc, dict) else {}
    return doc


def settled(api, response: requests.Response) -> dict:
    """The end of a response's operation (its Azure-AsyncOperation polled until it ends)."""
    url = response.headers["Azure-AsyncOperation"]
    for _ in range(2000):
        op = requests.get(url, headers={"Authorization": f"Bearer {api.token()}"}, verify=str(api.ca),
                          timeout=20).json()
        if op["status"] != "InProgress":
            return op
        time.sleep(0.02)
    raise AssertionError(f"operation {url} never ended")


def create(api, name: str = "web") -> dict:
    """The scale set `name` (no instances), created through the API; its document."""
    doc = copy.deepcopy(BASE)
    doc["name"], doc["sku"]["capacity"] = name, 0
    doc["properties"]["upgradePolicy"] = {"mode": "Manual"}
    r = call(api, "PUT", f"virtualMachineScaleSets/{name}", body=doc)
    assert r.status_code == 201, r.text
    assert settled(api, r)["status"] == "Succeeded"
    return doc


@pytest.fixture
def web(api):
    return create(api)


def stored(api, name: str = "web") -> tuple[dict, int]:
    ss, generation = api.lab.models.read(name)
    return ss.to_json(), generation


# -- 1. no lost writes --------------------------------------------------------------------------
def test_twenty_concurrent_patches_of_twenty_fields_keep_all_twenty_for_six_rounds(api):
    barrier = threading.Barrier(len(FIELDS))

    def patch(name: str, field) -> tuple[int, dict]:
        barrier.wait()
        r = call(api, "PATCH", f"virtualMachineScaleSets/{name}", body=nested(*field))
        return r.status_code, settled(api, r) if r.status_code == 200 else r.json()

    for n in range(6):
        name = create(api, f"web{n}")["name"]
        with ThreadPoolExecutor(len(FIELDS)) as pool:
            answers = list(pool.map(lambda f: patch(name, f), FIELDS))
        assert [(code, op["status"]) for code, op in answers] == [(200, "Succeeded")] * len(FIELDS)
        doc, generation = stored(api, name)
        assert [(path, value_at(doc, path)) for path, value in FIELDS if value_at(doc, path) != value] == []
        assert generation == 1 + len(FIELDS)  # one generation per PATCH: none written twice, none lost


def test_api_patches_beside_cli_updates_lose_no_cli_change(api, web):
    """8 API clients PATCH one field while 10 threads run the CLI's update_model on others."""
    api_field, cli_fields = f"{VMP}.networkProfile.healthProbe.port", FIELDS[3:13]
    barrier = threading.Barrier(8 + len(cli_fields))

    def api_client(k: int) -> int:
        barrier.wait()
        return call(api, "PATCH", body=nested(api_field, 8000 + k)).status_code

    def cli(field) -> None:
        lab = Lab(api.lab.paths, api.lab.uri, api.lab._accel)  # its own connection, as a CLI process
        try:
            barrier.wait()
            commands.update_model(lab, "web", [f"{field[0]}={json.dumps(field[1])}"])
        finally:
            lab.close()

    with ThreadPoolExecutor(8 + len(cli_fields)) as pool:
        codes = pool.map(api_client, range(8))
        list(pool.map(cli, cli_fields))
        assert list(codes) == [200] * 8
    doc, generation = stored(api)
    assert [(path, value_at(doc, path)) for path, value in cli_fields if value_at(doc, path) != value] == []
    assert value_at(doc, api_field) in range(8000, 8008) and generation == 1 + 8 + len(cli_fields)


def test_read_change_put_with_if_match_retried_on_412_loses_nothing(api, web):
    barrier = threading.Barrier(len(FIELDS))

    def client(field) -> int:
        path, value = field
        barrier.wait()
        refused = 0
        while True:
            got = call(api, "GET")
            body = got.json()
            assert got.headers["ETag"] == body["etag"]
            node = body
            for key in path.split(".")[:-1]:
                node = node.setdefault(key, {})
            node[path.split(".")[-1]] = value
            r = call(api, "PUT", body=body, headers={"If-Match": body["etag"]})
            if r.status_code != 412:
                assert r.status_code == 200, r.text
                return refused
            assert r.json()["error"]["code"] == "PreconditionFailed"
            refused += 1

    with ThreadPoolExecutor(len(FIELDS)) as pool:
        list(pool.map(client, FIELDS))
    doc, generation = stored(api)
    assert [(path, value_at(doc, path)) for path, value in FIELDS if value_at(doc, path) != value] == []
    assert generation == 1 + len(FIELDS)


# -- 2. etags and preconditions -----------------------------------------------------------------
def test_etags_change_on_every_write_and_stale_preconditions_are_412(api, web):
    got = call(api, "GET")
    first = got.json()["etag"]
    assert got.headers["ETag"] == first == '"1"'
    assert call(api, "GET").headers["ETag"] == first, "a cached answer keeps its ETag"
    r = call(api, "PATCH", body={"properties": {"labSettings": {"vcpus": 3}}}, headers={"If-Match": first})
    assert r.status_code == 200 and r.json()["etag"] == r.headers["ETag"] == '"2"'
    settled(api, r)
    assert call(api, "GET").json()["etag"] == '"2"'
    listed = call(api, "GET", "virtualMachineScaleSets").json()["value"]
    assert [s["etag"] for s in listed] == ['"2"']

    before = stored(api)
    for method, body, headers in (("PATCH", {"properties": {"labSettings": {"vcpus": 4}}}, {"If-Match": first}),
                                  ("PUT", web, {"If-Match": first}), ("PUT", web, {"If-None-Match": "*"}),
                                  ("DELETE", None, {"If-Match": first})):
        r = call(api, method, body=body, headers=headers)
        assert r.status_code == 412, (method, headers, r.text)
        assert r.json()["error"]["code"] == "PreconditionFailed" and "Azure-AsyncOperation" not in r.headers
        assert stored(api) == before, f"{method} with {headers} changed the set"
    r = call(api, "PUT", "virtualMachineScaleSets/other", body={**web, "name": "other"}, headers={"If-Match": "*"})
    assert r.status_code == 412 and api.lab.models.stored_name("other") is None
    r = call(api, "PUT", "virtualMachineScaleSets/other", body={**web, "name": "other"}, headers={"If-None-Match": "*"})
    assert r.status_code == 201 and r.headers["ETag"] == '"1"'
    settled(api, r)
    r = call(api, "DELETE", headers={"If-Match": '"2"'})
    assert r.status_code == 202 and settled(api, r)["status"] == "Succeeded"
    assert api.lab.models.stored_name("web") is None


def test_the_sdks_etag_and_match_condition_are_honoured(api):
    client = api.client()
    sets = client.virtual_machine_scale_sets
    sets.begin_create_or_update(RG, "web", sdk_model(), match_condition=MatchConditions.IfMissing).result()
    with pytest.raises(HttpResponseError) as err:
        sets.begin_create_or_update(RG, "web", sdk_model(), match_condition=MatchConditions.IfMissing)
    assert err.value.status_code == 412
    got = sets.get(RG, "web")
    assert got.etag == '"1"'
    update = m.VirtualMachineScaleSetUpdate(properties=m.VirtualMachineScaleSetUpdateProperties(
        upgrade_policy=m.UpgradePolicy(mode="Rolling")))
    updated = sets.begin_update(RG, "web", update, etag=got.etag, match_condition=MatchConditions.IfNotModified).result()
    assert updated.etag == '"2"' and updated.properties.upgrade_policy.mode == "Rolling"
    with pytest.raises(HttpResponseError) as err:  # the etag read before that update is stale
        sets.begin_update(RG, "web", update, etag=got.etag, match_condition=MatchConditions.IfNotModified)
    assert err.value.status_code == 412 and err.value.error.code == "PreconditionFailed"
    with pytest.raises(HttpResponseError) as err:
        sets.begin_create_or_update(RG, "web", got, etag=got.etag, match_condition=MatchConditions.IfNotModified)
    assert err.value.status_code == 412
    with pytest.raises(HttpResponseError) as err:  # this SDK's begin_delete has no etag: the header itself
        sets.begin_delete(RG, "web", headers={"If-Match": got.etag})
    assert err.value.status_code == 412 and api.lab.models.stored_name("web") == "web"
    sets.begin_delete(RG, "web", headers={"If-Match": updated.etag}).result()
    assert api.lab.models.stored_name("web") is None


def test_vm_etags_and_preconditions_on_the_protection_policy(api, driver):
    make_scale_set(api.lab, model(capacity=2), driver, "1.0.0")
    vms = api.client().virtual_machine_scale_set_vms
    path = "virtualMachineScaleSets/web/virtualMachines/1"
    got = call(api, "GET", path)
    first = got.json()["etag"]
    assert got.headers["ETag"] == first and vms.get(RG, "web", "1").etag == first
    assert call(api, "GET", "virtualMachineScaleSets/web/virtualMachines/0").json()["etag"] != first
    policy = {"properties": {"protectionPolicy": {"protectFromScaleIn": True}}}
    r = call(api, "PATCH", path, body=policy, headers={"If-Match": first})
    assert r.status_code == 200 and r.headers["ETag"] == r.json()["etag"] != first
    for headers in ({"If-Match": first}, {"If-None-Match": "*"}):
        unprotect = {"properties": {"protectionPolicy": {"protectFromScaleIn": False}}}
        r = call(api, "PATCH", path, body=unprotect, headers=headers)
        assert r.status_code == 412 and r.json()["error"]["code"] == "PreconditionFailed"
        assert api.lab.instances.get("web", 1).protect_from_scale_in is True
    vm = vms.get(RG, "web", "1")
    vm.properties.protection_policy.protect_from_scale_in = False
    with pytest.raises(HttpResponseError) as err:
        vms.begin_update(RG, "web", "1", vm, etag=first, match_condition=MatchConditions.IfNotModified)
    assert err.value.status_code == 412
    vms.begin_update(RG, "web", "1", vm, etag=vm.etag, match_condition=MatchConditions.IfNotModified).result()
    assert api.lab.instances.get("web", 1).protect_from_scale_in is False


# -- 3. validation before any 2xx ---------------------------------------------------------------
BAD_CAPACITIES = ['"five"', "true", "1.5", "-1", "1001", "1e400", "-1e400", "1e-400", "1e9", "null"]


@pytest.fixture
def planned(monkeypatch) -> list:
    """Every capacity a plan is computed from; one outside 0..1000 is refused here (so that a
    regression fails this test instead of eating the machine's memory)."""
    seen = []
    real = commands.plan_capacity

    def guard(existing, capacity, protected=()):
        seen.append(capacity)
        if isinstance(capacity, bool) or not isinstance(capacity, int) or not 0 <= capacity <= 1000:
            raise RuntimeError(f"planned from an unvalidated capacity {capacity!r}")
        return real(existing, capacity, protected)
    monkeypatch.setattr(commands, "plan_capacity", guard)
    return seen


def test_bad_capacities_are_400_at_once_naming_sku_capacity(api, web, planned):
    before = stored(api)
    for text in BAD_CAPACITIES:
        patch = '{"sku": {"capacity": %s}}' % text
        put = json.dumps({**web, "sku": {"capacity": "X"}}).replace('"X"', text)
        for method, data in (("PATCH", patch), ("PUT", put)):
            if method == "PATCH" and text == "null":  # merge-patch: null removes, the stored capacity stays
                continue
            r = call(api, method, data=data, timeout=10)
            assert r.status_code == 400, (method, text, r.status_code, r.text)
            assert "sku.capacity" in r.json()["error"]["target"] and "Azure-AsyncOperation" not in r.headers
        r = call(api, "PUT", "virtualMachineScaleSets/new", data=put.replace('"web"', '"new"'), timeout=10)
        assert r.status_code == 400 and "sku.capacity" in r.json()["error"]["target"], (text, r.text)
    assert stored(api) == before and api.lab.models.stored_name("new") is None
    assert [c for c in planned if not isinstance(c, int) or isinstance(c, bool) or not 0 <= c <= 1000] == []


def test_no_plan_from_an_unchecked_capacity_in_scale_or_plan_capacity(flab, planned):
    from controller.model.instance import plan_capacity
    doc = copy.deepcopy(BASE)
    doc["sku"]["capacity"] = 0
    commands.create_model(flab, doc)
    for bad in (float("inf"), -float("inf"), 1e9, 1.5, True, "5", -1, 1001):
        with pytest.raises(commands.ModelError) as err:  # `planned` refuses it if it got that far
            commands.scale(flab, "web", bad)
        assert err.value.field == "sku.capacity" and err.value.status == 400
    for bad in (1.5, True, "5", -1, 1001):  # (only values whose unchecked plan ends: no inf here)
        with pytest.raises(commands.ModelError) as err:
            plan_capacity([], bad)
        assert err.value.field == "sku.capacity" and err.value.status == 400
    assert planned == []
    with pytest.raises(commands.ModelError) as err:  # the CLI's --set goes through the model's parser too
        commands.update_model(flab, "web", ["sku.capacity=1e400"])
    assert err.value.field == "$.sku.capacity"
    ext = {"name": "x", "properties": {"publisher": "Microsoft.Azure.Extensions", "type": "CustomScript",
                                        "settings": {"commandToExecute": "true", "n": [1e400]}}}
    with pytest.raises(commands.ModelError) as err:  # free-form settings: no infinity stored as 'Infinity'
        commands.change_model(flab, "web", lambda d: d["properties"]["virtualMachineProfile"].update(
            extensionProfile={"extensions": [ext]}))
    assert err.value.field.endswith("settings")
    assert flab.models.generation("web") == 1


def test_a_scale_in_that_protection_forbids_is_refused_at_once(api, driver):
    make_scale_set(api.lab, model(capacity=2), driver, "1.0.0")
    for iid in (0, 1):
        api.lab.instances.set_protection("web", iid, True, False)
    before = stored(api)
    r = call(api, "PATCH", body={"sku": {"capacity": 1}, "properties": {"labSettings": {"vcpus": 3}}})
    assert r.status_code == 409 and r.json()["error"]["code"] == "OperationNotAllowed", r.text
    assert "Azure-AsyncOperation" not in r.headers and stored(api) == before


def test_action_instance_ids_are_checked_before_the_202(api, driver):
    make_scale_set(api.lab, model(capacity=2), driver, "1.0.0")
    for action in ("reimage", "reimageall", "manualupgrade", "restart", "powerOff", "start"):
        for ids in (["../0"], ["999"], ["0", "7"]):
            r = call(api, "POST", f"virtualMachineScaleSets/web/{action}", body={"instanceIds": ids})
            assert r.status_code == 404, (action, ids, r.text)
            err = r.json()["error"]
            assert err["target"] == "instanceIds" and "Azure-AsyncOperation" not in r.headers


# -- 4. operations that tell the truth ----------------------------------------------------------
def test_a_create_whose_instance_fails_ends_its_operation_failed(api, monkeypatch):
    def never(lab, inst, started, timeout=0):
        raise RuntimeError("the guest never booted")
    monkeypatch.setattr(provision, "wait_booted", never)
    poller = api.client().virtual_machine_scale_sets.begin_create_or_update(RG, "web", sdk_model(capacity=1))
    with pytest.raises(HttpResponseError) as err:
        poller.result()
    assert poller.status() == "Failed" and err.value.error.code == "InstanceOperationFailed"
    assert "the guest never booted" in err.value.error.message
    assert [i.provisioning_state for i in api.lab.instances.list("web")] == ["Failed"]
    r = call(api, "PATCH", body={"sku": {"capacity": 2}})  # a scale whose new instance fails: Failed too
    assert r.status_code == 200 and settled(api, r)["error"]["code"] == "InstanceOperationFailed"
    # a PATCH that makes no instance is not failed by instance 0's old failure
    r = call(api, "PATCH", body={"properties": {"labSettings": {"vcpus": 3}}})
    assert settled(api, r)["status"] == "Succeeded"


def test_two_concurrent_deletes_both_succeed(api, web, monkeypatch):
    gate, real = threading.Event(), commands.delete

    def held(lab, name, *args):  # the first DELETE's work waits until both requests are answered
        assert gate.wait(20)
        return real(lab, name, *args)
    monkeypatch.setattr(commands, "delete", held)
    first, second = call(api, "DELETE"), call(api, "DELETE")
    gate.set()
    assert (first.status_code, second.status_code) == (202, 202)
    assert [settled(api, r)["status"] for r in (first, second)] == ["Succeeded", "Succeeded"]
    assert call(api, "DELETE").status_code == 204 and api.lab.models.stored_name("web") is None


def test_a_delete_that_finds_the_set_already_gone_succeeds(api, web, monkeypatch):
    real = commands.delete

    def raced(lab, name, *args):  # the CLI (or another controller) deleted it first
        real(lab, name)
        return real(lab, name, *args)
    monkeypatch.setattr(commands, "delete", raced)
    r = call(api, "DELETE")
    assert r.status_code == 202 and settled(api, r)["status"] == "Succeeded"


def test_a_put_that_loses_the_race_to_create_replaces_or_is_412(api, monkeypatch):
    doc = copy.deepcopy(BASE)
    doc["sku"]["capacity"] = 0
    real = commands.create_model

    def raced(lab, document, *args):  # another PUT creates the set between this one's read and write
        if lab.models.stored_name(document["name"]) is None:
            real(lab, {**document, "properties": {**document["properties"], "upgradePolicy": {"mode": "Manual"}}})
        return real(lab, document, *args)
    monkeypatch.setattr(commands, "create_model", raced)
    r = call(api, "PUT", "virtualMachineScaleSets/web", body=doc, headers={"If-None-Match": "*"})
    assert r.status_code == 412 and stored(api)[1] == 1
    r = call(api, "PUT", "virtualMachineScaleSets/two", body={**doc, "name": "two"})
    assert r.status_code == 200 and r.headers["ETag"] == '"2"', r.text  # a replace of the one created
    assert settled(api, r)["status"] == "Succeeded"
    assert stored(api, "two")[0]["properties"]["upgradePolicy"]["mode"] == "Rolling"
