"""The functions that read the deployment's scope: parameters, variables, copyIndex, deployment,
resourceGroup, subscription, tenant, environment, the resource id functions, reference and
providers. Results as Azure's template-function reference documents them."""
from __future__ import annotations

import hashlib
import json
from typing import Any

from controller.template.errors import FunctionError, TemplateError
from controller.template.functions import Arg, function, type_name


def _name(fn: str, value: Any) -> str:
    return Arg.str(fn, value, 0)


@function("parameters", 1, 1, scope=True)
def parameters(scope: Any, name: Any) -> Any:
    return scope.ctx.parameter(_name("parameters", name))


@function("variables", 1, 1, scope=True)
def variables(scope: Any, name: Any) -> Any:
    return scope.ctx.variable(_name("variables", name))


@function("copyIndex", 0, 2, scope=True)
def copy_index(scope: Any, *args: Any) -> int:
    """copyIndex(), copyIndex(offset), copyIndex('loop'), copyIndex('loop', offset)."""
    loop, offset = None, 0
    if args and isinstance(args[0], str):
        loop, args = args[0], args[1:]
    elif len(args) == 2:
        raise FunctionError(f"copyIndex: argument 1 must be a loop name (a string), not {type_name(args[0])}")
    if args:
        offset = Arg.int("copyIndex", args[0], 1 if loop is not None else 0)
    if loop is None:
        if scope.current is None:
            raise FunctionError("the template function 'copyIndex' is not expected at this location: "
                                "it is used outside a copy loop")
        return scope.copies[scope.current] + offset
    index = scope.copies.get(loop.lower())
    if index is None:
        raise FunctionError(f"the copy loop '{loop[:80]}' referenced by copyIndex is not found here")
    return index + offset


def _template_hash(template: Any) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True, default=str).encode()).digest()
    return str(int.from_bytes(digest[:8], "big"))


@function("deployment", 0, 0, scope=True)
def deployment(scope: Any) -> dict:
    env, template = scope.env, scope.ctx.template
    shown = {k: template[k] for k in ("$schema", "contentVersion", "metadata") if k in template}
    props: dict[str, Any] = {}
    if env.template_link:
        props["templateLink"] = dict(env.template_link)
    props.update(template=shown, templateHash=_template_hash(template),
                 parameters=scope.ctx.parameters_record(), mode="Incremental", provisioningState="Accepted")
    return {"name": env.deployment_name, "properties": props}


def _group_id(env: Any) -> str:
    return f"/subscriptions/{env.subscription_id}/resourceGroups/{env.resource_group}"


@function("resourceGroup", 0, 0, scope=True)
def resource_group(scope: Any) -> dict:
    env = scope.env
    return {"id": _group_id(env), "name": env.resource_group, "type": "Microsoft.Resources/resourceGroups",
            "location": env.location, "tags": {}, "properties": {"provisioningState": "Succeeded"}}


@function("subscription", 0, 0, scope=True)
def subscription(scope: Any) -> dict:
    env = scope.env
    return {"id": f"/subscriptions/{env.subscription_id}", "subscriptionId": env.subscription_id,
            "tenantId": env.tenant_id, "displayName": env.subscription_name}


@function("tenant", 0, 0, scope=True)
def tenant(scope: Any) -> dict:
    return {"countryCode": "US", "displayName": scope.env.subscription_name,
            "id": f"/tenants/{scope.env.tenant_id}", "tenantId": scope.env.tenant_id}


ENVIRONMENT = {
    "name": "AzureCloud",
    "gallery": "https://gallery.azure.com/",
    "graph": "https://graph.windows.net/",
    "portal": "https://portal.azure.com",
    "graphAudience": "https://graph.windows.net/",
    "activeDirectoryDataLake": "https://datalake.azure.net/",
    "batch": "https://batch.core.windows.net/",
    "media": "https://rest.media.azure.net",
    "sqlManagement": "https://management.core.windows.net:8443/",
    "vmImageAliasDoc": "https://raw.githubusercontent.com/Azure/azure-rest-api-specs/master/arm-compute/"
                       "quickstart-templates/aliases.json",
    "resourceManager": "https://management.azure.com/",
    "authentication": {
        "loginEndpoint": "https://login.microsoftonline.com/",
        "audiences": ["https://management.core.windows.net/", "https://management.azure.com/"],
        "tenant": "common",
        "identityProvider": "AAD",
    },
    "suffixes": {
        "acrLoginServer": ".azurecr.io",
        "azureDatalakeAnalyticsCatalogAndJob": "azuredatalakeanalytics.net",
        "azureDatalakeStoreFileSystem": "azuredatalakestore.net",
        "azureFrontDoorEndpointSuffix": "azurefd.net",
        "keyvaultDns": ".vault.azure.net",
        "sqlServerHostname": ".database.windows.net",
        "storage": "core.windows.net",
    },
}


@function("environment", 0, 0, scope=True)
def environment(scope: Any) -> dict:
    return json.loads(json.dumps(ENVIRONMENT))


def type_and_names(fn: str, args: tuple) -> str:
    """`Namespace/t1/t2` with names n1, n2 -> `Namespace/t1/n1/t2/n2`."""
    rtype = Arg.str(fn, args[0], 0)
    segments = rtype.strip("/").split("/")
    names = [Arg.str(fn, a, i + 1) for i, a in enumerate(args[1:])]
    if len(segments) < 2 or not all(segments):
        raise FunctionError(f"{fn}: '{rtype[:120]}' is not a resource type (Namespace/type)")
    if len(names) != len(segments) - 1:
        raise FunctionError(f"{fn}: the type '{rtype[:120]}' needs {len(segments) - 1} resource name(s), "
                            f"got {len(names)}")
    # a name may itself hold its parents' segments ('vnet/subnet' for two types)
    parts = [segments[0]]
    for t, n in zip(segments[1:], names):
        parts += [t, n.strip("/")]
    return "/".join(parts)


def _split_leading(fn: str, args: tuple, most: int) -> tuple[list[str], tuple]:
    """The scope arguments before the resource type (the first argument with a '/')."""
    for i, a in enumerate(args[:most + 1]):
        if isinstance(a, str) and "/" in a:
            return [Arg.str(fn, x, j) for j, x in enumerate(args[:i])], args[i:]
    raise FunctionError(f"{fn}: no resource type (Namespace/type) among the first {most + 1} arguments")


@function("resourceId", 2, None, scope=True)
def resource_id(scope: Any, *args: Any) -> str:
    """resourceId([subscriptionId], [resourceGroupName], resourceType, name1, [name2], ...)."""
    lead, rest = _split_leading("resourceId", args, 2)
    sub, group = scope.env.subscription_id, scope.env.resource_group
    if len(lead) == 2:
        sub, group = lead
    elif len(lead) == 1:
        group = lead[0]
    return f"/subscriptions/{sub}/resourceGroups/{group}/providers/{type_and_names('resourceId', rest)}"


@function("subscriptionResourceId", 2, None, scope=True)
def subscription_resource_id(scope: Any, *args: Any) -> str:
    lead, rest = _split_leading("subscriptionResourceId", args, 1)
    sub = lead[0] if lead else scope.env.subscription_id
    return f"/subscriptions/{sub}/providers/{type_and_names('subscriptionResourceId', rest)}"


@function("tenantResourceId", 2, None)
def tenant_resource_id(*args: Any) -> str:
    return f"/providers/{type_and_names('tenantResourceId', args)}"


@function("extensionResourceId", 3, None)
def extension_resource_id(base: Any, *args: Any) -> str:
    base = Arg.str("extensionResourceId", base, 0).rstrip("/")
    return f"{base}/providers/{type_and_names('extensionResourceId', args)}"


@function("reference", 1, 3, scope=True)
def reference(scope: Any, target: Any, api_version: Any = None, full: Any = None) -> Any:
    """reference(name or id, [apiVersion], ['Full']): the resource's properties (or the whole
    resource with 'Full'), through the environment. A resource of this template becomes a
    dependency of the one whose body uses it."""
    if not scope.reference_allowed:
        raise FunctionError("the template function 'reference' is not expected at this location")
    target = Arg.str("reference", target, 0)
    if api_version is not None:
        api_version = Arg.str("reference", api_version, 1)
    if full is not None and not (isinstance(full, str) and full.lower() == "full"):
        raise FunctionError("reference: argument 3 must be 'Full'")
    rid = scope.ctx.resolve(target)
    if rid is None:
        if not target.lower().startswith(("/subscriptions/", "/providers/")):
            raise FunctionError(f"the resource '{target[:200]}' is not defined in the template")
        rid = target
    if scope.on_reference is not None:
        scope.on_reference(rid)
    if scope.env.reference is None:
        raise FunctionError("reference() cannot be resolved before the deployment runs")
    try:
        return scope.env.reference(rid, api_version, full is not None)
    except TemplateError as e:  # the environment's error, placed where the expression is
        if e.field in ("", "reference") and scope.path:
            TemplateError.__init__(e, scope.path, e.reason, e.code)
        raise


@function("providers", 1, 2, scope=True)
def providers(scope: Any, namespace: Any, resource_type: Any = None) -> dict:
    """providers(namespace, [resourceType]): {namespace, resourceType, locations, apiVersions}."""
    namespace = Arg.str("providers", namespace, 0)
    if resource_type is not None:
        resource_type = Arg.str("providers", resource_type, 1)
    if scope.env.providers is None:
        raise FunctionError("providers() has no provider information here")
    doc = scope.env.providers(namespace, resource_type)
    if resource_type is None or "resourceTypes" not in doc:
        return doc
    for entry in doc.get("resourceTypes") or []:
        if str(entry.get("resourceType", "")).lower() == resource_type.lower():
            return {"namespace": doc.get("namespace", namespace), "resourceType": entry["resourceType"],
                    "locations": list(entry.get("locations") or []),
                    "apiVersions": list(entry.get("apiVersions") or [])}
    raise FunctionError(f"the resource type '{namespace[:80]}/{resource_type[:80]}' is not registered")
