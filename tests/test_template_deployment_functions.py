"""The scope functions (deployment.py) against the examples of Azure's template-function
reference: resource ids, copyIndex, resourceGroup, subscription, deployment, environment,
reference (short and full forms, by name or id) and providers."""
from __future__ import annotations

import pytest

from controller.template.errors import TemplateError
from controller.template.evaluator import Context, Scope, expression
from controller.template.template import Environment

SUB = "11111111-2222-3333-4444-555555555555"
GROUP = f"/subscriptions/{SUB}/resourceGroups/rg1"
SEEN: list = []


def reference(rid: str, api: str | None, full: bool) -> dict:
    SEEN.append((rid, api, full))
    doc = {"id": rid, "apiVersion": api, "properties": {"dnsSettings": {"fqdn": "a.example"}}}
    return doc if full else doc["properties"]


def providers(ns: str, rtype: str | None) -> dict:
    return {"namespace": ns, "resourceTypes": [
        {"resourceType": "virtualMachineScaleSets", "locations": ["local"],
         "apiVersions": ["2024-07-01", "2023-09-01"]}]}


ENV = Environment(SUB, "rg1", "local", "dep1", reference=reference, providers=providers)


def ev(text: str, copies: dict | None = None, resolve=lambda name: None, **kw):
    ctx = Context(ENV, parameter=lambda n: 0, variable=lambda n: 0, template={"contentVersion": "1.0.0.0"},
                  resolve=resolve)
    scope = Scope(ctx, path="outputs.x.value", **kw)
    for name, index in (copies or {}).items():
        scope = scope.with_copy(name, index)
    return expression(text, scope)


def test_resource_id_forms():
    assert ev("[resourceId('Microsoft.Network/virtualNetworks/subnets', 'myvnet', 'mysubnet')]") == \
        f"{GROUP}/providers/Microsoft.Network/virtualNetworks/myvnet/subnets/mysubnet"
    assert ev("[resourceId('otherResourceGroup', 'Microsoft.Storage/storageAccounts', 'examplestorage')]") == \
        f"/subscriptions/{SUB}/resourceGroups/otherResourceGroup/providers/Microsoft.Storage/storageAccounts/" \
        "examplestorage"
    assert ev("[resourceId('s2', 'g2', 'Microsoft.Network/loadBalancers', 'lb')]") == \
        "/subscriptions/s2/resourceGroups/g2/providers/Microsoft.Network/loadBalancers/lb"
    assert ev("[subscriptionResourceId('Microsoft.Authorization/roleDefinitions', "
              "'acdd72a7-3385-48ef-bd42-f606fba81ae7')]") == \
        f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7"
    assert ev("[extensionResourceId(resourceGroup().id, 'Microsoft.Authorization/locks', 'lock1')]") == \
        f"{GROUP}/providers/Microsoft.Authorization/locks/lock1"
    assert ev("[tenantResourceId('Microsoft.Authorization/policyDefinitions', 'p1')]") == \
        "/providers/Microsoft.Authorization/policyDefinitions/p1"


@pytest.mark.parametrize("text, problem", [
    ("[resourceId('Microsoft.Network/virtualNetworks/subnets', 'myvnet')]", "needs 2 resource name"),
    ("[resourceId('a', 'b', 'c', 'Microsoft.Network/loadBalancers', 'lb')]", "no resource type"),
    ("[resourceId('Microsoft.Network/loadBalancers', 5)]", "must be a string"),
])
def test_resource_id_errors_name_the_path(text, problem):
    with pytest.raises(TemplateError, match=problem) as e:
        ev(text)
    assert e.value.field == "outputs.x.value" and e.value.code == "InvalidTemplate"


def test_copy_index_with_loop_names_and_offsets():
    assert ev("[copyIndex()]", {"storagecopy": 2}) == 2
    assert ev("[copyIndex(1)]", {"storagecopy": 2}) == 3
    assert ev("[copyIndex('outer')]", {"outer": 4, "inner": 1}) == 4
    assert ev("[copyIndex('OUTER', 10)]", {"outer": 4, "inner": 1}) == 14
    with pytest.raises(TemplateError, match="outside a copy loop"):
        ev("[copyIndex()]")
    with pytest.raises(TemplateError, match="'nope'"):
        ev("[copyIndex('nope')]", {"outer": 1})


def test_resource_group_subscription_deployment_environment():
    assert ev("[resourceGroup()]") == {"id": GROUP, "name": "rg1", "type": "Microsoft.Resources/resourceGroups",
                                       "location": "local", "tags": {},
                                       "properties": {"provisioningState": "Succeeded"}}
    sub = ev("[subscription()]")
    assert sub["id"] == f"/subscriptions/{SUB}" and sub["subscriptionId"] == SUB and sub["tenantId"]
    dep = ev("[deployment()]")
    assert dep["name"] == "dep1" and dep["properties"]["mode"] == "Incremental"
    assert dep["properties"]["template"] == {"contentVersion": "1.0.0.0"}
    assert ev("[environment().suffixes.storage]") == "core.windows.net"
    assert ev("[environment().name]") == "AzureCloud"
    assert ev("[environment().authentication.loginEndpoint]") == "https://login.microsoftonline.com/"


def test_reference_forms_go_through_the_environment():
    SEEN.clear()
    lb = f"{GROUP}/providers/Microsoft.Network/publicIPAddresses/ip1"
    assert ev(f"[reference('{lb}').dnsSettings.fqdn]") == "a.example"
    assert ev(f"[reference('{lb}', '2023-04-01', 'Full').apiVersion]") == "2023-04-01"
    assert ev("[reference('ip1').dnsSettings.FQDN]", resolve=lambda n: lb if n == "ip1" else None) == "a.example"
    assert SEEN == [(lb, None, False), (lb, "2023-04-01", True), (lb, None, False)]
    with pytest.raises(TemplateError, match="'other' is not defined in the template"):
        ev("[reference('other')]")
    with pytest.raises(TemplateError, match="not expected at this location"):
        ev(f"[reference('{lb}')]", reference_allowed=False)
    with pytest.raises(TemplateError, match="must be 'Full'"):
        ev(f"[reference('{lb}', '2023-04-01', 'Half')]")


def test_reference_of_a_template_resource_is_reported():
    found: list = []
    lb = f"{GROUP}/providers/Microsoft.Network/loadBalancers/lb"
    ev("[reference('lb')]", resolve=lambda n: lb, on_reference=found.append)
    assert found == [lb]


def test_providers_gives_the_type_and_its_api_versions():
    assert ev("[providers('Microsoft.Compute','virtualMachineScaleSets').apiVersions[0]]") == "2024-07-01"
    assert ev("[providers('Microsoft.Compute','VirtualMachineScaleSets')]") == {
        "namespace": "Microsoft.Compute", "resourceType": "virtualMachineScaleSets", "locations": ["local"],
        "apiVersions": ["2024-07-01", "2023-09-01"]}
    with pytest.raises(TemplateError, match="not registered"):
        ev("[providers('Microsoft.Compute','disks')]")
