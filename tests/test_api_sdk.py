"""Azure's own SDK (azure-mgmt-compute) against the lab's API on test:///default and the fake
driver: create, get, list, update, delete, errors, LRO polling and paging."""
from __future__ import annotations

import base64
import copy
import json
import logging
import time

import jwt
import pytest
import requests
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
)
from azure.mgmt.compute import models as m

from controller.api import responses, tokens
from controller.model.armid import DEFAULT_RESOURCE_GROUP as RG
from tests.fakedriver import FakeDriver, make_scale_set
from tests.test_rolling import model

SECRET = "hunter2-never-returned"



def sdk_model(capacity: int = 0, mode: str = "Manual") -> m.VirtualMachineScaleSet:
    ext = m.VirtualMachineScaleSetExtension(name="setup", properties=m.VirtualMachineScaleSetExtensionProperties(
        publisher="Microsoft.Azure.Extensions", type="CustomScript", type_handler_version="2.1",
        settings={"commandToExecute": "true"}, protected_settings={"token": SECRET}))
    nic = m.VirtualMachineScaleSetNetworkConfiguration(name="nic", properties=m.VirtualMachineScaleSetNetworkConfigurationProperties(
        primary=True, ip_configurations=[m.VirtualMachineScaleSetIPConfiguration(name="ip")]))
    return m.VirtualMachineScaleSet(
        location="local", sku=m.Sku(name="Lab_2vCPU_512MiB", capacity=capacity),
        properties=m.VirtualMachineScaleSetProperties(
            upgrade_policy=m.UpgradePolicy(mode=mode), overprovision=False,
            virtual_machine_profile=m.VirtualMachineScaleSetVMProfile(
                storage_profile=m.VirtualMachineScaleSetStorageProfile(
                    image_reference=m.ImageReference(publisher="scaleset-lab", offer="debian", sku="debian-12",
                                                     version="latest")),
                os_profile=m.VirtualMachineScaleSetOSProfile(computer_name_prefix="web", admin_username="azureuser"),
                network_profile=m.VirtualMachineScaleSetNetworkProfile(network_interface_configurations=[nic]),
                extension_profile=m.VirtualMachineScaleSetExtensionProfile(extensions=[ext]))))


def test_create_get_list_update_delete_through_the_sdk(api, caplog):
    caplog.set_level(logging.DEBUG)
    client = api.client()
    poller = client.virtual_machine_scale_sets.begin_create_or_update(RG, "web", sdk_model())
    created = poller.result()
    assert poller.status() == "Succeeded"
    assert created.id == f"/subscriptions/{client._config.subscription_id}/resourceGroups/{RG}/providers/" \
                         "Microsoft.Compute/virtualMachineScaleSets/web"
    assert created.properties.provisioning_state == "Succeeded" and created.sku.capacity == 0

    got = client.virtual_machine_scale_sets.get(RG, "web")
    assert got.id == created.id and got.properties.upgrade_policy.mode == "Manual"
    ext = got.properties.virtual_machine_profile.extension_profile.extensions[0].properties
    assert ext.protected_settings is None and ext.settings == {"commandToExecute": "true"}
    for path in ("virtualMachineScaleSets/web", "virtualMachineScaleSets"):
        assert SECRET not in raw(api, "GET", path, params={"api-version": "2024-07-01"}).text
    assert [s.name for s in client.virtual_machine_scale_sets.list(RG)] == ["web"]
    assert [s.name for s in client.virtual_machine_scale_sets.list_all()] == ["web"]

    update = m.VirtualMachineScaleSetUpdate(properties=m.VirtualMachineScaleSetUpdateProperties(
        upgrade_policy=m.UpgradePolicy(mode="Rolling", rolling_upgrade_policy=m.RollingUpgradePolicy(
            max_batch_instance_percent=15))))
    updated = client.virtual_machine_scale_sets.begin_update(RG, "web", update).result()
    assert updated.properties.upgrade_policy.rolling_upgrade_policy.max_batch_instance_percent == 15
    stored = api.lab.models.get("web")
    assert stored.properties.upgradePolicy.mode == "Rolling"
    assert stored.properties.virtualMachineProfile.extensionProfile.extensions[0].properties.protectedSettings == \
        {"token": SECRET}, "an update that never saw protectedSettings keeps them"

    # a full PUT of what GET returned (az vmss update does this): lab settings and secrets kept
    api.lab.models.replace({**stored.to_json(), "properties": {**stored.to_json()["properties"],
                            "labSettings": {"healthWaitTimeout": "PT1M"}}})
    full = client.virtual_machine_scale_sets.get(RG, "web")
    full.properties.upgrade_policy.rolling_upgrade_policy.max_batch_instance_percent = 10
    client.virtual_machine_scale_sets.begin_create_or_update(RG, "web", full).result()
    stored = api.lab.models.get("web")
    assert stored.properties.labSettings.healthWaitTimeout == "PT1M"
    assert stored.properties.upgradePolicy.rollingUpgradePolicy.maxBatchInstancePercent == 10

    client.virtual_machine_scale_sets.begin_delete(RG, "web").result()
    with pytest.raises(ResourceNotFoundError) as err:
        client.virtual_machine_scale_sets.get(RG, "web")
    assert err.value.error.code == "ResourceNotFound"
    assert api.lab.models.list() == []
    logged = caplog.text + "\n".join(api.messages)
    key = tokens.lab_key(api.lab.paths)
    for secret in (SECRET, api.token(), key.hex(), base64.b64encode(key).decode(), base64.urlsafe_b64encode(key).decode()):
        assert secret not in logged


def test_bad_models_are_400_naming_the_field_and_store_nothing(api):
    client = api.client()
    bad = sdk_model()
    bad.properties.upgrade_policy = m.UpgradePolicy(mode="Rolling", rolling_upgrade_policy=m.RollingUpgradePolicy(
        max_batch_instance_percent=500))
    with pytest.raises(HttpResponseError) as err:
        client.virtual_machine_scale_sets.begin_create_or_update(RG, "web", bad)
    assert err.value.status_code == 400 and "maxBatchInstancePercent" in err.value.error.target
    missing = sdk_model()
    missing.properties.virtual_machine_profile.storage_profile.image_reference.version = "9.9.9"
    with pytest.raises(HttpResponseError) as err:
        client.virtual_machine_scale_sets.begin_create_or_update(RG, "web", missing)
    assert err.value.error.code == "ImageNotFound" and "imageReference" in err.value.error.target
    assert api.lab.models.list() == []
    with pytest.raises(ResourceNotFoundError):
        client.virtual_machine_scale_sets.get("other-group", "web")


def test_lists_are_paged_with_next_links(api, monkeypatch):
    monkeypatch.setattr(responses, "PAGE_SIZE", 2)
    client = api.client()
    for i in range(5):
        client.virtual_machine_scale_sets.begin_create_or_update(RG, f"set{i}", sdk_model()).result()
    first = requests.get(api.url("virtualMachineScaleSets"), params={"api-version": "2024-07-01"},
                         headers={"Authorization": f"Bearer {api.token()}"}, verify=str(api.ca)).json()
    assert len(first["value"]) == 2 and "$skiptoken=2" in first["nextLink"]
    assert sorted(s.name for s in client.virtual_machine_scale_sets.list(RG)) == [f"set{i}" for i in range(5)]


def test_vms_list_get_and_ids_round_trip(api, driver):
    make_scale_set(api.lab, model(capacity=3), driver, "1.0.0")
    client = api.client()
    vms = list(client.virtual_machine_scale_set_vms.list(RG, "web"))
    assert [v.instance_id for v in vms] == ["0", "1", "2"]
    vm = client.virtual_machine_scale_set_vms.get(RG, "web", "1")
    assert vm.id == vms[1].id and vm.id.endswith("/virtualMachineScaleSets/web/virtualMachines/1")
    assert vm.properties.latest_model_applied is True and vm.properties.provisioning_state == "Succeeded"
    raw = requests.get(api.endpoint + vm.id, params={"api-version": "2024-07-01"}, verify=str(api.ca),
                       headers={"Authorization": f"Bearer {api.token()}"})
    assert raw.status_code == 200 and raw.json()["id"] == vm.id
    with pytest.raises(HttpResponseError) as err:
        client.virtual_machine_scale_set_vms.get(RG, "web", "7")
    assert "instanceId" in err.value.error.target


def test_os_rolling_upgrade_is_a_long_running_operation(api, driver, qcow2_file):
    make_scale_set(api.lab, model(capacity=3), driver, "1.0.0")
    api.lab.gallery.import_file("scaleset-lab", "debian", "debian-12", "1.0.1", qcow2_file)
    client = api.client()
    poller = client.virtual_machine_scale_set_rolling_upgrades.begin_start_os_upgrade(RG, "web")
    assert poller.status() == "InProgress"
    poller.result()
    latest = client.virtual_machine_scale_set_rolling_upgrades.get_latest(RG, "web")
    assert latest.properties.running_status.code == "Completed"
    assert latest.properties.progress.successful_instance_count == 3
    history = list(client.virtual_machine_scale_sets.get_os_upgrade_history(RG, "web"))
    assert [h.properties.target_image_reference.version for h in history] == ["1.0.1"]
    assert {i.image["version"] for i in api.lab.instances.list("web")} == {"1.0.1"}


def test_a_faulted_upgrade_fails_the_operation_with_azures_code(api, qcow2_file):
    bad = FakeDriver(bad_versions={"1.0.1"})
    api.controller.driver = bad
    make_scale_set(api.lab, model(capacity=2), bad, "1.0.0")
    api.lab.gallery.import_file("scaleset-lab", "debian", "debian-12", "1.0.1", qcow2_file)
    with pytest.raises(HttpResponseError) as err:
        api.client().virtual_machine_scale_set_rolling_upgrades.begin_start_os_upgrade(RG, "web").result()
    assert err.value.error.code == "MaxUnhealthyUpgradedInstancePercentExceededInRollingUpgrade"
    latest = api.client().virtual_machine_scale_set_rolling_upgrades.get_latest(RG, "web")
    assert latest.properties.running_status.code == "Faulted"


def expired(api) -> str:
    claims = jwt.decode(api.token(), options={"verify_signature": False})
    return jwt.encode({**claims, "exp": int(time.time()) - 600}, tokens.lab_key(api.lab.paths), "HS256")


def raw(api, method, path, token="ok", **kw):
    headers = kw.pop("headers", {})
    if token:
        headers["Authorization"] = f"Bearer {api.token() if token == 'ok' else token}"
    return requests.request(method, api.url(path), headers=headers, verify=str(api.ca), timeout=10, **kw)


def test_tokens_api_version_size_and_bodies(api):
    v = {"api-version": "2024-07-01"}
    for token, code in ((None, "AuthenticationFailed"), ("nope", "InvalidAuthenticationToken"),
                        (expired(api), "ExpiredAuthenticationToken")):
        r = raw(api, "GET", "virtualMachineScaleSets", token=token, params=v)
        assert r.status_code == 401 and r.json()["error"]["code"] == code
    r = raw(api, "GET", "virtualMachineScaleSets")
    assert r.status_code == 400 and r.json()["error"]["code"] == "MissingApiVersionParameter"
    r = raw(api, "PUT", "virtualMachineScaleSets/web", params=v, data=b"{" + b" " * (2 << 20) + b"}",
            headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "RequestEntityTooLarge"
    r = raw(api, "PUT", "virtualMachineScaleSets/web", params=v, data=b'{"location": ',
            headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["target"] == "body"
    doc = copy.deepcopy(model(capacity=0))
    doc["properties"]["virtualMachineProfile"]["osProfile"]["adminPassword"] = "x"
    r = raw(api, "PUT", "virtualMachineScaleSets/web", params=v, json=doc)
    assert r.status_code == 400 and "adminPassword" in r.json()["error"]["target"]
    r = raw(api, "DELETE", "virtualMachineScaleSets/none", params=v)
    assert r.status_code == 204
    r = raw(api, "GET", "virtualMachineScaleSets/web/bogus", params=v)
    assert r.status_code == 404 and r.json()["error"]["code"] == "InvalidResourceType"
    r = raw(api, "POST", "virtualMachineScaleSets", params=v)
    assert r.status_code == 405
    for r in (raw(api, "GET", "virtualMachineScaleSets", params=v),):
        assert "Traceback" not in r.text and json.loads(r.text) == {"value": []}


def test_wrong_token_through_the_sdk_is_an_authentication_error(api):
    with pytest.raises(ClientAuthenticationError):
        api.client(token="tampered.token.value").virtual_machine_scale_sets.get(RG, "web")


def test_platform_fault_domain_count_is_kept_and_checked_against_the_region(api):
    from controller.model.region import Host, Region
    from tests.helpers import mark_replicated
    client = api.client()
    api.lab.regions.add(Region("east", (Host("test:///default", "default-pool"),
                                        Host("test:///default", "east-2", "/pools/east-2"))))
    for iv in api.lab.gallery.list():
        mark_replicated(api.lab, api.lab.gallery.update(iv.publisher, iv.offer, iv.sku, iv.version,
                                                        target_regions=["local", "east"]))
    three = sdk_model()
    three.location, three.properties.platform_fault_domain_count = "east", 3
    with pytest.raises(HttpResponseError) as err:
        client.virtual_machine_scale_sets.begin_create_or_update(RG, "web", three)
    assert err.value.status_code == 400 and err.value.error.target == "$.properties.platformFaultDomainCount"
    assert "region 'east' has 2 host(s)" in err.value.error.message and api.lab.models.list() == []
    three.properties.platform_fault_domain_count = 2
    client.virtual_machine_scale_sets.begin_create_or_update(RG, "web", three).result()
    assert client.virtual_machine_scale_sets.get(RG, "web").properties.platform_fault_domain_count == 2
