"""Writes of scale sets and their VMs through the ARM API (issue 27): VM etags and preconditions,
bodies validated before any 2xx, instance ids checked before the 202, and operations that tell
the truth (lost writes and the scale set's etags: test_api_concurrency.py)."""
from __future__ import annotations

import copy
import json
import threading
import time

import pytest
import requests
from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError

from controller.model.armid import DEFAULT_RESOURCE_GROUP as RG
from controller.ops import commands, provision
from tests.fakedriver import make_scale_set
from tests.test_api_sdk import sdk_model
from tests.test_model import BASE
from tests.test_rolling import model

V = {"api-version": "2024-07-01"}
def call(api, method: str, path: str = "virtualMachineScaleSets/web", body=None, data=None, headers=None,
         timeout: float = 20) -> requests.Response:
    return requests.request(method, api.url(path), params=V, json=body, data=data, verify=str(api.ca),
                            headers={"Authorization": f"Bearer {api.token()}", "Content-Type": "application/json",
                                     **(headers or {})}, timeout=timeout)


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


# The lost-write and scale-set etag acceptance tests are in test_api_concurrency.py.

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
