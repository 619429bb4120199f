"""Deployments of templates with expressions (the template language, controller/template/):
parameters, variables, a copy loop, reference() and providers() in outputs, a scale set of
capacity 0 and an image version; a broken expression refused by validate, creating nothing."""
from __future__ import annotations

import os

from controller.model.armid import DEFAULT_RESOURCE_GROUP as RG
from tests.helpers import make_qcow2
from tests.test_api_deployments import GROUP, VMSS, body, deploy, raw, scale_set


def expression_template(path: str) -> dict:
    ss = scale_set("x")
    ss.update(name="[concat(variables('prefix'), copyIndex())]",
              copy={"name": "sets", "count": "[parameters('count')]"},
              sku={"name": "Standard_B1s", "capacity": "[parameters('capacity')]"},
              location="[resourceGroup().location]")
    ss["properties"]["virtualMachineProfile"]["osProfile"]["computerNamePrefix"] = "[variables('prefix')]"
    ss["dependsOn"] = ["[resourceId('Microsoft.Compute/galleries/images/versions', 'scaleset-lab', 'debian-12', "
                       "'1.0.1')]"]
    version = {"type": "Microsoft.Compute/galleries/images/versions", "apiVersion": "2024-03-03",
               "name": "[format('{0}/{1}/{2}', 'scaleset-lab', 'debian-12', '1.0.1')]", "location": "local",
               "properties": {"storageProfile": {"osDiskImage": {"source": {"uri": "[parameters('disk')]"}}}}}
    first = "[resourceId('Microsoft.Compute/virtualMachineScaleSets', concat(variables('prefix'), '0'))]"
    return {
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "parameters": {"base": {"type": "string", "defaultValue": "Web"},
                       "count": {"type": "int", "defaultValue": 2, "minValue": 1, "maxValue": 5},
                       "capacity": {"type": "int", "defaultValue": 0},
                       "disk": {"type": "string"},
                       "pw": {"type": "securestring", "defaultValue": ""}},
        "variables": {"prefix": "[toLower(parameters('base'))]"},
        "resources": [version, ss],
        "outputs": {
            "mode": {"type": "string", "value": f"[reference({first[1:-1]}).upgradePolicy.mode]"},
            "capacity": {"type": "int", "value": f"[reference({first[1:-1]}, '2024-07-01', 'Full').sku.capacity]"},
            "api": {"type": "string", "value": "[providers('Microsoft.Compute', 'virtualMachineScaleSets')"
                                               ".apiVersions[0]]"},
            "names": {"type": "array", "copy": {"count": "[parameters('count')]",
                                                "input": "[concat(variables('prefix'), copyIndex())]"}}}}


def test_a_template_with_parameters_variables_a_copy_loop_and_references(api, tmp_path):
    disk = make_qcow2(tmp_path / "v.qcow2", data=os.urandom(64 * 1024))
    done = deploy(api, "expr", expression_template(str(disk)), {"disk": {"value": str(disk)}})
    assert done.properties.provisioning_state == "Succeeded", done.properties.error
    out = {k: v["value"] for k, v in done.properties.outputs.items()}
    assert out == {"mode": "Manual", "capacity": 0, "api": "2024-07-01", "names": ["web0", "web1"]}
    assert [ss.name for ss in api.client().virtual_machine_scale_sets.list(RG)] == ["web0", "web1"]
    assert api.lab.gallery.resolve("scaleset-lab", "debian", "debian-12", "1.0.1").version == "1.0.1"
    again = deploy(api, "expr", expression_template(str(disk)), {"disk": {"value": str(disk)}})
    assert again.properties.provisioning_state == "Succeeded"


def test_validate_names_an_unknown_parameter_and_creates_nothing(api):
    tmpl = {"$schema": "x", "contentVersion": "1.0.0.0", "resources": [
        {**scale_set("web"), "name": "[parameters('nope')]"}]}
    r = raw(api, "POST", "bad/validate", json=body(tmpl))
    assert r.status_code == 400, r.text
    assert "nope" in r.text and r.json()["error"]["code"] == "InvalidTemplate"
    r = raw(api, "PUT", "bad", json=body(tmpl))
    assert r.status_code == 400
    assert api.lab.models.stored_name("web") is None and raw(api, "GET", "bad").status_code == 404


def test_a_depends_on_cycle_is_refused_naming_it(api):
    a = scale_set("a", dependsOn=[f"{GROUP}/{VMSS}/b"])
    b = scale_set("b", dependsOn=[f"{GROUP}/{VMSS}/a"])
    r = raw(api, "POST", "cyc/validate", json=body({"$schema": "x", "contentVersion": "1.0.0.0", "resources": [a, b]}))
    assert r.status_code == 400 and "cycle" in r.text.lower(), r.text


def test_a_body_referencing_a_resource_of_the_template_is_checked_when_it_runs(api):
    a = scale_set("a")
    b = scale_set("b", dependsOn=[f"{GROUP}/{VMSS}/a"])
    b["properties"]["virtualMachineProfile"]["osProfile"]["computerNamePrefix"] = \
        f"[concat(reference('{GROUP}/{VMSS}/a').virtualMachineProfile.osProfile.computerNamePrefix, 'x')]"
    tmpl = {"$schema": "x", "contentVersion": "1.0.0.0", "resources": [a, b]}
    assert raw(api, "POST", "refs/validate", json=body(tmpl)).status_code == 200
    assert api.lab.models.stored_name("a") is None
    assert deploy(api, "refs", tmpl).properties.provisioning_state == "Succeeded"
    assert api.lab.models.get("b").properties.virtualMachineProfile.osProfile.computerNamePrefix == "ax"


def test_a_reference_to_a_resource_that_does_not_exist_is_refused_at_once(api):
    ss = scale_set("a")
    ss["properties"]["virtualMachineProfile"]["osProfile"]["computerNamePrefix"] = \
        f"[reference('{GROUP}/{VMSS}/nowhere').virtualMachineProfile.osProfile.computerNamePrefix]"
    r = raw(api, "POST", "missing/validate", json=body({"$schema": "x", "contentVersion": "1.0.0.0",
                                                          "resources": [ss]}))
    assert r.status_code == 400, r.text
    assert r.json()["error"]["details"][0]["code"] == "ResourceNotFound" and "nowhere" in r.text
