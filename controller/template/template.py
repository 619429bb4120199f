"""Whole templates: `prepare()` checks the parameters against their declarations, evaluates the
variables, expands resources (copy loops, conditions, nested child resources, names and ids) and
orders them by dependsOn; each resource's body and the outputs are evaluated later, when the
deployment has the resources they reference (`reference()` goes through the Environment).
The work is done in `params` (parameters, variables) and `expand` (resources, levels, outputs).

INTERFACE (shared by the deployment engine; the implementation fills it in):
- prepare(template, parameters, env) -> Prepared, or TemplateError (InvalidTemplate naming the
  JSON path: an unknown parameter, a bad type or constraint, a dependsOn cycle naming the cycle).
  `parameters`: {name: {"value": v}} (the request body's `properties.parameters`, a parameter
  file's `parameters`); securestring/secureobject values are never put in an error or a record.
- Prepared.resources: the resources to deploy, in template order (copies expanded, false
  conditions left out); Prepared.levels(): lists of resources that may run in parallel, each
  list after the ones it depends on (dependsOn by name or id, and a parent before its children).
- PlannedResource.evaluate(env) -> dict: the resource's evaluated body (`properties`, `location`,
  `sku`, `tags`, ...: everything but the template keys), at deploy time (references resolved).
- Prepared.outputs(env) -> {name: {"type": T, "value": v}} (secure outputs left out).
- Prepared.parameters_record() -> the parameters as a deployment's record keeps and returns them
  ({name: {"type": T, "value": v}}; secure ones with no value).
- dependsOn: a name, `type/name`, an id (with or without `/subscriptions/../providers/`) or a copy
  loop's name; one naming only resources whose condition is false is dropped; one naming nothing
  is InvalidTemplate (as ARM). reference() by name (not by id) of a template's resource adds a
  dependency (as ARM documents). A serial copy's batch waits for the batch before it.
- Errors raised by Environment.reference keep their code; a field "" or "reference" becomes the
  JSON path of the expression.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Environment:
    """What a template sees of the world."""
    subscription_id: str
    resource_group: str
    location: str  # the resource group's location (`resourceGroup().location`)
    deployment_name: str
    # reference(resource_id, api_version or None, full) -> the resource (full) or its properties;
    # raises TemplateError (ResourceNotFound) when it does not exist
    reference: Callable[[str, str | None, bool], dict] = field(repr=False, default=None)  # type: ignore[assignment]
    # providers(namespace, resource_type or None) -> ARM's provider document (resourceTypes, apiVersions)
    providers: Callable[[str, str | None], dict] = field(repr=False, default=None)  # type: ignore[assignment]
    template_link: dict | None = None
    tenant_id: str = "5ca1e5e7-0000-4000-8000-0000000000aa"  # the lab's (controller.model.armid.TENANT_ID)
    subscription_name: str = "scaleset-lab"


@dataclass
class PlannedResource:
    id: str  # the full ARM id
    type: str  # e.g. Microsoft.Network/loadBalancers/probes
    name: str  # the full name with its parents' segments, e.g. lb1/probe1
    api_version: str
    depends_on: list[str]  # full ids of the resources of this template it waits for
    path: str  # where it is in the template, e.g. resources[2] or resources[1].resources[0]
    copy: str | None = None  # the copy loop's name
    index: int | None = None  # copyIndex() inside the loop
    _evaluate: Callable[[Environment], dict] = field(repr=False, default=None)  # type: ignore[assignment]

    def evaluate(self, env: Environment) -> dict:
        return self._evaluate(env)


@dataclass
class Prepared:
    resources: list[PlannedResource]
    _levels: Callable[[], list[list[PlannedResource]]] = field(repr=False, default=None)  # type: ignore[assignment]
    _outputs: Callable[[Environment], dict] = field(repr=False, default=None)  # type: ignore[assignment]
    _record: Callable[[], dict] = field(repr=False, default=None)  # type: ignore[assignment]

    def levels(self) -> list[list[PlannedResource]]:
        return self._levels()

    def outputs(self, env: Environment) -> dict:
        return self._outputs(env)

    def parameters_record(self) -> dict:
        return self._record()


def prepare(template: Any, parameters: Any, env: Environment) -> Prepared:
    from controller.template.expand import prepare as _prepare
    return _prepare(template, parameters, env)
