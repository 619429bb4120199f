"""Microsoft.Resources/deployments through azure-mgmt-resource's ResourceManagementClient on the
fake driver: scale sets (capacity 0) and image versions deployed through their own PUT's use
cases, validate that creates nothing, a failed resource that fails the deployment with details,
redeploys that change nothing, cancel, delete, exportTemplate, etags, secure parameters never
echoed. Templates here use no expression; tests/test_api_templates.py has the ones with them."""
from __future__ import annotations

import json
import logging
import os

import pytest
import requests
from azure.core.exceptions import HttpResponseError

from controller.model.armid import DEFAULT_RESOURCE_GROUP as RG
from controller.model.armid import SUBSCRIPTION_ID
from tests.helpers import make_qcow2

V = {"api-version": "2024-11-01"}
VMSS = "Microsoft.Compute/virtualMachineScaleSets"
VERSIONS = "Microsoft.Compute/galleries/images/versions"
GROUP = f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{RG}/providers"


def scale_set(name: str = "web", capacity: int = 0, **extra) -> dict:
    return {"type": VMSS, "apiVersion": "2024-07-01", "name": name, "location": "local",
            "sku": {"name": "Standard_B1s", "capacity": capacity},
            "properties": {"upgradePolicy": {"mode": "Manual"}, "virtualMachineProfile": {
                "storageProfile": {"imageReference": {"publisher": "scaleset-lab", "offer": "debian",
                                                      "sku": "debian-12", "version": "1.0.0"}},
                "osProfile": {"computerNamePrefix": name, "adminUsername": "azureuser"}}}, **extra}


def image_version(path: str, version: str = "1.0.1") -> dict:
    return {"type": VERSIONS, "apiVersion": "2024-03-03", "name": f"scaleset-lab/debian-12/{version}",
            "location": "local", "properties": {"storageProfile": {"osDiskImage": {"source": {"uri": path}}}}}


def template(*resources, outputs=None, parameters=None) -> dict:
    return {"$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
            "contentVersion": "1.0.0.0", "parameters": parameters or {}, "resources": list(resources),
            "outputs": outputs or {}}


def body(tmpl: dict, parameters: dict | None = None, mode: str = "Incremental") -> dict:
    return {"properties": {"mode": mode, "template": tmpl, "parameters": parameters or {}}}


def raw(api, method: str, tail: str, **kw) -> requests.Response:
    url = f"{api.endpoint}{GROUP}/Microsoft.Resources/deployments/{tail}"
    headers = {"Authorization": f"Bearer {api.token()}", **kw.pop("headers", {})}
    return requests.request(method, url, params=V, verify=str(api.ca), timeout=30, headers=headers, **kw)


def deploy(api, name: str, tmpl: dict, parameters: dict | None = None):
    return api.resources_client().deployments.begin_create_or_update(RG, name, body(tmpl, parameters)).result()


@pytest.fixture
def disk(tmp_path):
    return make_qcow2(tmp_path / "new" / "v2.qcow2", data=os.urandom(128 * 1024))


def test_a_scale_set_and_an_image_version_are_deployed_through_their_own_put(api, disk):
    tmpl = template(image_version(str(disk)), scale_set("web"), outputs={"where": {"type": "string", "value": "lab"}})
    done = deploy(api, "first", tmpl)
    assert done.properties.provisioning_state == "Succeeded"
    assert done.properties.outputs == {"where": {"type": "String", "value": "lab"}} or \
        done.properties.outputs["where"]["value"] == "lab"
    assert {r.id for r in done.properties.output_resources} == {
        f"{GROUP}/{VMSS}/web", f"{GROUP}/Microsoft.Compute/galleries/scaleset-lab/images/debian-12/versions/1.0.1"}
    ss = api.client().virtual_machine_scale_sets.get(RG, "web")
    assert ss.sku.capacity == 0 and ss.provisioning_state == "Succeeded"
    assert api.lab.gallery.resolve("scaleset-lab", "debian", "debian-12", "1.0.1").version == "1.0.1"
    ops = list(api.resources_client().deployment_operations.list(RG, "first"))
    assert sorted(o.properties.target_resource.resource_type for o in ops) == [VERSIONS, VMSS]
    assert {o.properties.provisioning_state for o in ops} == {"Succeeded"}
    one = api.resources_client().deployment_operations.get(RG, "first", ops[0].operation_id)
    assert one.properties.target_resource.id == ops[0].properties.target_resource.id
    exported = api.resources_client().deployments.export_template(RG, "first")
    assert exported.template["resources"][1]["name"] == "web"
    assert [d.name for d in api.resources_client().deployments.list_by_resource_group(RG)] == ["first"]


def test_redeploying_unchanged_changes_nothing(api, disk):
    tmpl = template(image_version(str(disk)), scale_set("web"))
    deploy(api, "again", tmpl)
    before = (api.lab.models.get("web").to_json(), api.lab.gallery.resolve("scaleset-lab", "debian", "debian-12",
                                                                            "1.0.1").sha256)
    second = deploy(api, "again", tmpl)
    assert second.properties.provisioning_state == "Succeeded"
    assert (api.lab.models.get("web").to_json(), api.lab.gallery.resolve(
        "scaleset-lab", "debian", "debian-12", "1.0.1").sha256) == before
    assert api.lab.instances.list("web") == []


def test_validate_of_a_broken_resource_names_it_and_creates_nothing(api):
    bad = scale_set("web")
    bad["sku"]["capacity"] = -1
    tmpl = template(scale_set("ok"), bad)
    r = raw(api, "POST", "broken/validate", json=body(tmpl))
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "InvalidTemplateDeployment"
    assert err["details"][0]["target"].startswith("resources[1].") and "capacity" in err["details"][0]["target"]
    with pytest.raises(HttpResponseError) as caught:
        api.resources_client().deployments.begin_create_or_update(RG, "broken", body(tmpl)).result()
    assert caught.value.status_code == 400
    assert api.lab.models.stored_name("ok") is None and api.lab.models.stored_name("web") is None
    assert raw(api, "GET", "broken").status_code == 404
    good = api.resources_client().deployments.begin_validate(RG, "fine", body(template(scale_set("ok")))).result()
    assert good.properties.provisioning_state == "Succeeded"
    assert api.lab.models.stored_name("ok") is None, "validate creates nothing"
    assert raw(api, "GET", "fine").status_code == 404


def test_an_undeclared_parameter_and_complete_mode_are_refused_at_once(api):
    r = raw(api, "PUT", "p", json=body(template(), {"nope": {"value": 1}}))
    assert r.status_code == 400 and "nope" in r.text
    r = raw(api, "PUT", "p", json=body(template(), mode="Complete"))
    assert r.status_code == 400 and r.json()["error"]["details"][0]["target"] == "properties.mode"


def test_a_failed_resource_fails_the_deployment_with_details_and_keeps_what_came_before(api):
    first = scale_set("web")
    other = {"type": "Microsoft.Storage/storageAccounts", "apiVersion": "2023-01-01", "name": "store",
             "location": "local", "dependsOn": [f"{GROUP}/{VMSS}/web"], "properties": {}}
    after = scale_set("late", dependsOn=[f"{GROUP}/Microsoft.Storage/storageAccounts/store"])
    with pytest.raises(HttpResponseError):
        deploy(api, "fails", template(first, other, after))
    rec = api.resources_client().deployments.get(RG, "fails")
    assert rec.properties.provisioning_state == "Failed"
    err = rec.properties.error
    assert err.code == "DeploymentFailed"
    assert [(d.code, d.target) for d in err.details] == [
        ("NoRegisteredProviderFound", f"{GROUP}/Microsoft.Storage/storageAccounts/store")]
    assert "Microsoft.Storage/storageAccounts" in err.details[0].message
    assert api.lab.models.stored_name("web") == "web", "what came before stays"
    assert api.lab.models.stored_name("late") is None, "what comes after does not start"
    ops = {o.properties.target_resource.resource_name: o.properties
           for o in api.resources_client().deployment_operations.list(RG, "fails")}
    assert set(ops) == {"web", "store"}
    assert ops["store"].provisioning_state == "Failed" and ops["store"].status_code == "BadRequest"
    assert ops["store"].status_message.error.code == "NoRegisteredProviderFound"


def test_securestring_values_never_leave_in_a_response_a_log_or_the_database(api, caplog):
    secret = "Sup3r-S3cret-Value-42"
    params = {"pw": {"type": "securestring"}, "size": {"type": "int", "defaultValue": 0}}
    tmpl = template(scale_set("web", tags={"pw": "[parameters('pw')]"}), parameters=params,
                    outputs={"pw": {"type": "securestring", "value": "[parameters('pw')]"}})
    caplog.set_level(logging.DEBUG)
    texts = [raw(api, "POST", "sec/validate", json=body(tmpl, {"pw": {"value": secret}})).text]
    put = raw(api, "PUT", "sec", json=body(tmpl, {"pw": {"value": secret}}))
    assert put.status_code == 201, put.text
    done = deploy(api, "sec2", tmpl, {"pw": {"value": secret}})
    assert "value" not in done.properties.parameters["pw"] and "pw" not in (done.properties.outputs or {})
    texts += [put.text, raw(api, "GET", "sec").text, raw(api, "GET", "sec2").text,
              raw(api, "POST", "sec2/exportTemplate").text, raw(api, "GET", "sec2/operations").text]
    texts += [caplog.text, "\n".join(api.messages)]
    assert all(secret not in t for t in texts)
    for f in api.lab.paths.db.parent.glob(api.lab.paths.db.name + "*"):
        assert secret.encode() not in f.read_bytes(), f


def test_cancel_delete_etags_and_operation_status(api):
    put = raw(api, "PUT", "d", json=body(template(scale_set("web"))))
    assert put.status_code == 201
    status_url = put.headers["Azure-AsyncOperation"]
    assert "/deployments/d/operationStatuses/" in status_url
    assert put.headers["ETag"] == put.json()["etag"]
    api.resources_client().deployments.get(RG, "d")  # exists at once
    final = api.resources_client().deployments.begin_create_or_update(RG, "d2", body(template())).result()
    assert final.properties.provisioning_state == "Succeeded"
    s = requests.get(status_url, verify=str(api.ca), headers={"Authorization": f"Bearer {api.token()}"}, timeout=10)
    assert s.status_code == 200 and s.json()["status"] in ("Accepted", "Running", "Succeeded")
    api.resources_client().deployments.begin_create_or_update(RG, "d", body(template(scale_set("web")))).result()
    r = raw(api, "POST", "d/cancel")
    assert r.status_code == 409, "a deployment that ended cannot be canceled"
    tag = raw(api, "GET", "d").headers["ETag"]
    assert raw(api, "PUT", "d", json=body(template()), headers={"If-None-Match": "*"}).status_code == 412
    assert raw(api, "DELETE", "d", headers={"If-Match": '"999"'}).status_code == 412
    api.resources_client().deployments.begin_delete(RG, "d", headers={"If-Match": tag}).result()
    assert raw(api, "GET", "d").status_code == 404
    assert raw(api, "DELETE", "d").status_code == 204
    assert api.lab.models.stored_name("web") == "web", "a deployment's delete leaves its resources"


def test_cancel_stops_what_has_not_started(api, monkeypatch):
    import threading

    from controller.api import vmss_routes
    gate, real = threading.Event(), vmss_routes.put_write

    def held(*args):
        assert gate.wait(30)
        return real(*args)
    monkeypatch.setattr(vmss_routes, "put_write", held)
    tmpl = template(scale_set("a"), scale_set("b", dependsOn=[f"{GROUP}/{VMSS}/a"]))
    poller = api.resources_client().deployments.begin_create_or_update(RG, "slow", body(tmpl))
    try:
        for _ in range(200):
            if raw(api, "GET", "slow/operations").json()["value"]:
                break
            import time
            time.sleep(0.05)
        assert raw(api, "POST", "slow/cancel").status_code == 204
    finally:
        gate.set()
    with pytest.raises(HttpResponseError):
        poller.result()
    rec = raw(api, "GET", "slow").json()
    assert rec["properties"]["provisioningState"] == "Canceled"
    assert api.lab.models.stored_name("a") == "a", "the resource under way finished"
    assert api.lab.models.stored_name("b") is None, "the one not started never starts"


def test_az_sends_the_template_key_unquoted_with_comments(api):
    """az's JsonCTemplatePolicy: `{"properties": {...}, template:<the file's text>}}`."""
    text = json.dumps(template(scale_set("web")), indent=2)
    data = json.dumps({"properties": {"mode": "Incremental", "parameters": {}}})[:-2] + ", template:" + text + "}}"
    r = raw(api, "POST", "az/validate", data=data.encode(), headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    assert r.json()["properties"]["validatedResources"] == [{"id": f"{GROUP}/{VMSS}/web"}]


def test_the_unquoted_template_key_is_found_outside_strings():
    from controller.api.deployment_routes import _az_key
    text = '{"properties": {"parameters": {"p": {"value": "a, template: b"}}, template:{"x": 1}}}'
    assert json.loads(_az_key(text)) == {"properties": {"parameters": {"p": {"value": "a, template: b"}},
                                                        "template": {"x": 1}}}
    assert _az_key('{"a": ", template:"}') == '{"a": ", template:"}'
