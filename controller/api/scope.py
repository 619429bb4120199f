"""The subscription and resource group of a request, and the scale set they name."""
from __future__ import annotations

from controller.core.errors import ModelError
from controller.model.armid import SUBSCRIPTION_ID, check_group, group_of, vmss_id
from controller.model.scaleset import ScaleSet
from controller.ops.lab import Lab


def check_subscription(params: dict[str, str]) -> None:
    if params["sub"].lower() != SUBSCRIPTION_ID:
        raise ModelError("subscriptionId", f"The subscription '{params['sub'][:64]}' could not be found "
                                           f"(the lab's is {SUBSCRIPTION_ID}).", "SubscriptionNotFound")


def group(params: dict[str, str]) -> str:
    check_subscription(params)
    return check_group(params["rg"])


def not_found(rg: str, name: str) -> ModelError:
    return ModelError("name", f"The Resource 'Microsoft.Compute/virtualMachineScaleSets/{name}' under resource "
                              f"group '{rg}' was not found.", "ResourceNotFound")


def find_set(lab: Lab, rg: str, name: str) -> ScaleSet:
    """The scale set `name` of resource group `rg` (names compare without regard to case)."""
    stored = lab.models.stored_name(name)
    if stored is None:
        raise not_found(rg, name)
    ss = lab.models.get(stored)
    if group_of(ss.id).lower() != rg.lower():
        raise not_found(rg, name)
    return ss


def resource_id(ss: ScaleSet) -> str:
    return vmss_id(group_of(ss.id), ss.name)
