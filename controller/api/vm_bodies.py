"""The body of a PUT or PATCH of a scale-set VM (`az vmss update --instance-id`, the SDK's
`virtual_machine_scale_set_vms.begin_update`): the lab applies `properties.protectionPolicy`;
any other field must be what the instance already has (a GET's body sent back), else it is
refused, named. Read-only fields are ignored, as ARM ignores them; so is a value that does not
change."""
from __future__ import annotations

import json
from typing import Any

from controller.model.jsonmap import json_object
from controller.core.errors import ModelError

POLICY = "properties.protectionPolicy"
FIELDS = (f"{POLICY}.protectFromScaleIn", f"{POLICY}.protectFromScaleSetActions")
READ_ONLY = ("id", "name", "type", "instanceId", "sku", "etag", "resources", "zones")
READ_ONLY_PROPERTIES = ("latestModelApplied", "provisioningState", "instanceView", "vmId",
                        "modelDefinitionApplied", "timeCreated", "lab")


def _unchanged(value: Any, have: Any, field: str) -> None:
    """`value` (what the body says) must be `have` (the instance's); null or absent: no change."""
    if value is None:
        return
    if isinstance(value, dict) and (have is None or isinstance(have, dict)):
        for key, v in value.items():
            _unchanged(v, (have or {}).get(key), f"{field}.{key}")
        return
    if isinstance(value, list) and isinstance(have, list) and len(value) == len(have):
        for n, (v, h) in enumerate(zip(value, have, strict=True)):
            _unchanged(v, h, f"{field}[{n}]")
        return
    if value != have:
        shown = "absent" if have is None else f"is {json.dumps(have)[:80]}"
        raise ModelError(field, f"the lab cannot change this on an instance (only {POLICY}); the instance's "
                                f"{shown}", "PropertyChangeNotAllowed")


def protection_change(body: Any, current: dict) -> tuple[Any, Any]:
    """(protectFromScaleIn, protectFromScaleSetActions) the body asks for (None: not given),
    after checking that nothing else in it differs from `current` (the VM as GET shows it)."""
    if not isinstance(body, dict):
        raise ModelError("body", "must be a JSON object (a VirtualMachineScaleSetVM)")
    props = json_object(body.get("properties"), "properties")
    policy = json_object(props.get("protectionPolicy"), POLICY)
    for key in policy:
        if key not in ("protectFromScaleIn", "protectFromScaleSetActions"):
            raise ModelError(f"{POLICY}.{key}", "is not a field of protectionPolicy (protectFromScaleIn, "
                                                "protectFromScaleSetActions)")
    location = body.get("location")
    if location is not None and str(location).lower() != str(current.get("location")).lower():
        _unchanged(location, current.get("location"), "location")
    for key, value in body.items():
        if key not in ("properties", "location", *READ_ONLY):
            _unchanged(value, current.get(key), key)
    for key, value in props.items():
        if key not in ("protectionPolicy", *READ_ONLY_PROPERTIES):
            _unchanged(value, current["properties"].get(key), f"properties.{key}")
    have = current["properties"].get("protectionPolicy") or {}
    # a value the instance already has is no change: `az vmss update --instance-id 0
    # --protect-from-scale-set-actions true` sends back the protectFromScaleIn false it read
    return tuple(None if isinstance(policy.get(k), bool) and policy.get(k) == have.get(k) else policy.get(k)
                 for k in ("protectFromScaleIn", "protectFromScaleSetActions"))
