"""The generic ARM resource handler a template deployment runs each resource through: a table of
resource types, each plugging in the very functions its direct PUT and GET use --
`validate(lab, rg, name, body)`: the PUT's checks, nothing written (the plan it would carry out);
`apply(rg, name, body)`: the PUT's use case, awaited to its end (its own long-running operation);
`read(lab, rg, name)`: the resource as GET returns it, or None (for `reference()`).
A type not in the table fails its resource with NoRegisteredProviderFound naming it. Adding a
type is one `Table.add` in the module of its routes."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from controller.core.errors import ModelError
from controller.model.armid import SUBSCRIPTION_ID
from controller.ops.lab import Lab
from controller.template.errors import TemplateError

LOCATION = "local"  # the lab's one location (images/gallery.DEFAULT_REGION)


@dataclass(frozen=True)
class ResourceType:
    type: str  # e.g. Microsoft.Compute/virtualMachineScaleSets (any case matches)
    validate: Callable[[Lab, str, str, dict], Any]
    apply: Callable[[str, str, dict], Awaitable[dict]]
    read: Callable[[Lab, str, str], dict | None]
    api_versions: tuple[str, ...] = ()  # newest first, as `providers()` lists them


def no_provider(type_: str, known: list[str]) -> ModelError:
    return ModelError("type", f"No registered resource provider found for location '{LOCATION}' and type "
                              f"'{type_[:200]}': the lab deploys {', '.join(known) or 'no resource type'}",
                      "NoRegisteredProviderFound")


def parse_id(resource_id: str) -> tuple[str, str, str]:
    """(resource group, type, name) of an ARM id: /subscriptions/s/resourceGroups/rg/providers/
    Ns/t1/n1[/t2/n2...] -> (rg, Ns/t1[/t2...], n1[/n2...]); ModelError when it is none."""
    parts = resource_id.strip("/").split("/")
    low = [p.lower() for p in parts]
    if len(parts) < 8 or low[0] != "subscriptions" or low[2] != "resourcegroups" or low[4] != "providers" \
            or len(parts) % 2 != 0:
        raise ModelError("resourceId", f"'{resource_id[:200]}' is not the id of a resource in a resource group")
    ns, rest = parts[5], parts[6:]
    return parts[3], "/".join([ns, *rest[0::2]]), "/".join(rest[1::2])


class Table:
    """The resource types a deployment can create, by type (case-insensitive, as ARM's)."""

    def __init__(self) -> None:
        self.types: dict[str, ResourceType] = {}

    def add(self, rt: ResourceType) -> None:
        self.types[rt.type.lower()] = rt

    def find(self, type_: str) -> ResourceType | None:
        return self.types.get(type_.lower())

    def get(self, type_: str) -> ResourceType:
        rt = self.find(type_)
        if rt is None:
            raise no_provider(type_, sorted(t.type for t in self.types.values()))
        return rt

    def read(self, lab: Lab, resource_id: str) -> dict | None:
        """The resource an id names, as GET returns it (None: no such resource)."""
        rg, type_, name = parse_id(resource_id)
        rt = self.find(type_)
        return rt.read(lab, rg, name) if rt is not None else None

    def providers(self, namespace: str, resource_type: str | None) -> dict:
        """ARM's provider document of `namespace` (with `resource_type`: that type's entry)."""
        mine = [rt for rt in self.types.values() if rt.type.lower().startswith(namespace.lower() + "/")]
        if not mine:
            raise TemplateError("providers", f"the resource provider '{namespace[:80]}' is not registered in the "
                                             "lab", "NoRegisteredProviderFound")
        entries = [{"resourceType": rt.type.split("/", 1)[1], "locations": [LOCATION],
                    "apiVersions": list(rt.api_versions)} for rt in mine]
        if resource_type is None:
            return {"id": f"/subscriptions/{SUBSCRIPTION_ID}/providers/{mine[0].type.split('/')[0]}",
                    "namespace": mine[0].type.split("/")[0], "registrationState": "Registered",
                    "resourceTypes": entries}
        for entry in entries:
            if entry["resourceType"].lower() == resource_type.lower():
                return entry
        raise TemplateError("providers", f"the resource type '{namespace[:80]}/{resource_type[:80]}' is not "
                                         "registered in the lab", "NoRegisteredProviderFound")
