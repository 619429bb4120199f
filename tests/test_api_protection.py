"""protectionPolicy through the ARM API: Azure's SDK (a GET, then begin_update with the VM it
read), raw PUT and PATCH, and the errors naming the field; on test:///default and the fake driver."""
from __future__ import annotations

import pytest
import requests
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import models as m

from controller.model.armid import DEFAULT_RESOURCE_GROUP as RG
from tests.fakedriver import make_scale_set
from tests.test_rolling import model

V = {"api-version": "2024-07-01"}


@pytest.fixture
def vms(api, driver):
    make_scale_set(api.lab, model(capacity=3), driver, "1.0.0")
    return api.client().virtual_machine_scale_set_vms


def call(api, method: str, iid: str, body) -> requests.Response:
    return requests.request(method, api.url(f"virtualMachineScaleSets/web/virtualMachines/{iid}"), params=V,
                            json=body, headers={"Authorization": f"Bearer {api.token()}"}, verify=str(api.ca),
                            timeout=10)


def stored(api, iid: int) -> tuple[bool, bool]:
    inst = api.lab.instances.get("web", iid)
    return inst.protect_from_scale_in, inst.protect_from_scale_set_actions


def test_the_sdk_reads_a_vm_and_updates_its_protection(api, vms):
    vm = vms.get(RG, "web", "1")
    assert vm.properties.protection_policy.protect_from_scale_in is False
    assert vm.properties.protection_policy.protect_from_scale_set_actions is False
    vm.properties.protection_policy = m.VirtualMachineScaleSetVMProtectionPolicy(
        protect_from_scale_in=True, protect_from_scale_set_actions=True)
    poller = vms.begin_update(RG, "web", "1", vm)
    updated = poller.result()
    assert poller.status() == "Succeeded"
    assert updated.properties.protection_policy.protect_from_scale_set_actions is True
    assert stored(api, 1) == (True, True) and stored(api, 0) == (False, False)
    listed = {v.instance_id: v.properties.protection_policy.protect_from_scale_in for v in vms.list(RG, "web")}
    assert listed == {"0": False, "1": True, "2": False}
    vm = vms.get(RG, "web", "1")
    vm.properties.protection_policy.protect_from_scale_set_actions = False
    vms.begin_update(RG, "web", "1", vm).result()
    assert stored(api, 1) == (True, False)  # scale-in protection stays until it is turned off


def test_put_and_patch_apply_the_policy_and_accept_the_rest_unchanged(api, vms):
    got = call(api, "GET", "2", None).json()
    assert got["properties"]["protectionPolicy"] == {"protectFromScaleIn": False, "protectFromScaleSetActions": False}
    got["properties"]["protectionPolicy"]["protectFromScaleIn"] = True
    r = call(api, "PUT", "2", got)  # the whole GET body back, read-only and lab fields included
    assert r.status_code == 200 and "Azure-AsyncOperation" in r.headers
    assert r.json()["properties"]["protectionPolicy"]["protectFromScaleIn"] is True and stored(api, 2) == (True, False)
    r = call(api, "PATCH", "2", {"properties": {"protectionPolicy": {"protectFromScaleSetActions": True}}})
    assert r.status_code == 200 and stored(api, 2) == (True, True)
    r = call(api, "PUT", "0", {"location": "LOCAL", "properties": {"protectionPolicy": {"protectFromScaleIn": True}}})
    assert r.status_code == 200 and stored(api, 0) == (True, False)


@pytest.mark.parametrize("body, target, code", [
    ({"properties": {"protectionPolicy": {"protectFromScaleIn": "yes"}}},
     "properties.protectionPolicy.protectFromScaleIn", "InvalidParameter"),
    ({"properties": {"protectionPolicy": {"protectFromScaleSetActions": 1}}},
     "properties.protectionPolicy.protectFromScaleSetActions", "InvalidParameter"),
    ({"properties": {"protectionPolicy": {"protectFromEverything": True}}},
     "properties.protectionPolicy.protectFromEverything", "InvalidParameter"),
    ({"properties": {"protectionPolicy": True}}, "properties.protectionPolicy", "InvalidParameter"),
    ({"properties": {"storageProfile": {"imageReference": {"version": "9.9.9"}}}},
     "properties.storageProfile.imageReference.version", "PropertyChangeNotAllowed"),
    ({"properties": {"hardwareProfile": {"vmSize": "Standard_D2s_v3"}}},
     "properties.hardwareProfile.vmSize", "PropertyChangeNotAllowed"),
    ({"location": "westeurope"}, "location", "PropertyChangeNotAllowed"),
    ({"tags": {"a": "b"}}, "tags.a", "PropertyChangeNotAllowed"),
    ([], "body", "InvalidParameter"),
])
def test_what_the_lab_cannot_apply_is_refused_naming_the_field(api, vms, body, target, code):
    for method in ("PUT", "PATCH"):
        r = call(api, method, "1", body)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == code and r.json()["error"]["target"] == target
    assert stored(api, 1) == (False, False)


def test_scale_in_protection_cannot_be_turned_off_under_set_actions_protection(api, vms):
    vm = vms.get(RG, "web", "0")  # what az sends for --protect-from-scale-set-actions true alone:
    vm.properties.protection_policy.protect_from_scale_set_actions = True  # the false it read, unchanged
    vms.begin_update(RG, "web", "0", vm).result()
    assert stored(api, 0) == (True, True)  # protection from scale-set actions includes scale-in
    vm = vms.get(RG, "web", "0")
    vm.properties.protection_policy.protect_from_scale_in = False
    with pytest.raises(HttpResponseError) as err:
        vms.begin_update(RG, "web", "0", vm)
    assert err.value.status_code == 400 and err.value.error.target == "properties.protectionPolicy.protectFromScaleIn"
    assert "cannot be false when properties.protectionPolicy.protectFromScaleSetActions is true" in \
        err.value.error.message
    r = call(api, "PATCH", "0", {"properties": {"protectionPolicy": {"protectFromScaleIn": False,
                                                                      "protectFromScaleSetActions": True}}})
    assert r.status_code == 400 and stored(api, 0) == (True, True)
    assert call(api, "PUT", "7", {}).json()["error"]["target"] == "instanceId"
