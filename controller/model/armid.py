"""Azure Resource Manager ids of the lab's resources: one subscription, resource groups as a
namespace, full ids that round-trip through the API."""
from __future__ import annotations

import re

from controller.core.errors import ModelError

SUBSCRIPTION_ID = "5ca1e5e7-0000-4000-8000-000000000001"
TENANT_ID = "5ca1e5e7-0000-4000-8000-0000000000aa"
DEFAULT_RESOURCE_GROUP = "scaleset-lab"
VMSS_TYPE = "Microsoft.Compute/virtualMachineScaleSets"
VM_TYPE = "Microsoft.Compute/virtualMachineScaleSets/virtualMachines"
_GROUP = re.compile(r"[-\w._()]{1,90}", re.ASCII)
_VMSS_ID = re.compile(r"/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/Microsoft\.Compute/"
                      r"virtualMachineScaleSets/([^/]+)", re.IGNORECASE)


def check_group(name: str, field: str = "resourceGroupName") -> str:
    if not _GROUP.fullmatch(name) or name.endswith("."):
        raise ModelError(field, f"'{name[:90]}' is not a valid resource group name: 1-90 letters, digits, "
                                "'-', '_', '.', '(' or ')', not ending in '.'", "InvalidResourceGroup")
    return name


def group_path(group: str) -> str:
    return f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{group}"


def vmss_id(group: str, name: str) -> str:
    return f"{group_path(group)}/providers/{VMSS_TYPE}/{name}"


def vm_id(group: str, name: str, instance_id: int | str) -> str:
    return f"{vmss_id(group, name)}/virtualMachines/{instance_id}"


def group_of(stored_id: str | None) -> str:
    """The resource group a scale set was created in (the default one for CLI-made sets)."""
    m = _VMSS_ID.fullmatch(stored_id or "")
    return m.group(2) if m else DEFAULT_RESOURCE_GROUP
