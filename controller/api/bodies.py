"""Request bodies: JSON read under the size cap, Azure's fields the lab has no use for set
aside (named in the README), lab-only fields that Azure's clients drop kept on updates,
merge-patch for PATCH, and secrets left out of every response."""
from __future__ import annotations

import copy
from typing import Any

from aiohttp import web

from controller.core.errors import ModelError
from controller.model.jsonmap import load_json, read_bool
from controller.model.scaleset import SECRETS

# Azure fields that mean nothing on one libvirt host (networking, managed disks, placement):
# accepted so that Azure's documents and clients work unchanged, then left out of the model.
IGNORED = {
    "$": ("tags", "zones", "identity", "plan", "etag", "extendedLocation", "systemData"),
    "$.properties": ("overprovision", "singlePlacementGroup", "zoneBalance",
                     "doNotRunExtensionsOnOverprovisionedVMs", "scaleInPolicy", "additionalCapabilities",
                     "timeCreated", "orchestrationMode", "spotRestorePolicy", "automaticRepairsPolicy"),
    "$.properties.virtualMachineProfile": ("diagnosticsProfile", "priority", "evictionPolicy", "securityProfile",
                                            "licenseType", "scheduledEventsProfile", "billingProfile"),
    "$.properties.virtualMachineProfile.networkProfile": ("networkInterfaceConfigurations", "networkApiVersion"),
    "$.properties.virtualMachineProfile.storageProfile.osDisk": ("managedDisk", "osType", "name", "diffDiskSettings",
                                                                  "writeAcceleratorEnabled", "deleteOption"),
    "$.properties.virtualMachineProfile.osProfile.linuxConfiguration": ("provisionVMAgent", "patchSettings",
                                                                         "enableVMAgentPlatformUpdates"),
}
READ_ONLY = {"$": ("id", "type"), "$.properties": ("provisioningState", "uniqueId")}
SECRET = "protectedSettings"
HASH = "adminPasswordHash"


async def read(request: web.Request, required: bool = True) -> Any:
    """The JSON body (errors name `body` or the field); None when optional and empty."""
    raw = await request.read()
    if not raw.strip():
        if required:
            raise ModelError("body", "a JSON body is required")
        return None
    return load_json(raw, "body")


def _at(doc: Any, path: str) -> Any:
    for key in path.split(".")[1:]:
        doc = doc.get(key) if isinstance(doc, dict) else None
    return doc


def strip_azure_only(doc: dict) -> dict:
    """A copy without the read-only and the ignored Azure fields; orchestrationMode must be Uniform."""
    doc = copy.deepcopy(doc)
    mode = _at(doc, "$.properties.orchestrationMode")
    if mode is not None and str(mode).lower() != "uniform":
        raise ModelError("$.properties.orchestrationMode", f"'{mode}': the lab has Uniform scale sets only")
    for table in (IGNORED, READ_ONLY):
        for path, keys in table.items():
            node = _at(doc, path)
            for key in keys if isinstance(node, dict) else ():
                node.pop(key, None)
    for disk in _at(doc, "$.properties.virtualMachineProfile.storageProfile.dataDisks") or []:
        if isinstance(disk, dict):
            for key in ("managedDisk", "name", "writeAcceleratorEnabled", "deleteOption"):
                disk.pop(key, None)
    probe = _at(doc, "$.properties.virtualMachineProfile.networkProfile")
    if isinstance(probe, dict) and isinstance(probe.get("healthProbe"), dict) and \
            set(probe["healthProbe"]) <= {"id"}:  # Azure's form: a reference to a load balancer probe
        probe.pop("healthProbe")
    net = _at(doc, "$.properties.virtualMachineProfile.networkProfile")
    if net == {}:
        doc["properties"]["virtualMachineProfile"].pop("networkProfile")
    return doc


def keep_lab_fields(stored: dict, new: dict) -> dict:
    """An update from an Azure client lacks what only the lab has (its models drop unknown fields)
    and never has protectedSettings or the admin password (never returned): keep the stored ones
    where absent (the password's hash unless the update disables passwords; a password sent again
    keeps its hash: scaleset.parse)."""
    new = copy.deepcopy(new)
    props, old_props = new.setdefault("properties", {}), stored.get("properties", {})
    if "labSettings" not in props and "labSettings" in old_props:
        props["labSettings"] = copy.deepcopy(old_props["labSettings"])
    vmp, old_vmp = props.get("virtualMachineProfile"), old_props.get("virtualMachineProfile", {})
    if isinstance(vmp, dict) and isinstance(vmp.setdefault("storageProfile", {}), dict):
        # az sends no imageReference (or only the part --set changed): the rest is the stored one's
        ref = vmp["storageProfile"].get("imageReference")
        old_ref = old_vmp.get("storageProfile", {}).get("imageReference", {})
        if ref is None or isinstance(ref, dict):
            vmp["storageProfile"]["imageReference"] = {**old_ref, **(ref or {})}
    if isinstance(vmp, dict) and isinstance(vmp.get("osProfile"), dict):  # the password, as its hash
        osp, old_hash = vmp["osProfile"], old_vmp.get("osProfile", {}).get(HASH)
        lc = osp.get("linuxConfiguration")
        disabled = read_bool(lc.get("disablePasswordAuthentication")) if isinstance(lc, dict) else None
        if old_hash and HASH not in osp and disabled is not True:
            osp[HASH] = old_hash
    if isinstance(vmp, dict):
        old_probe = old_vmp.get("networkProfile", {}).get("healthProbe")
        if old_probe and not (vmp.get("networkProfile") or {}).get("healthProbe"):
            vmp.setdefault("networkProfile", {})["healthProbe"] = copy.deepcopy(old_probe)
        old_exts = {e["name"]: e["properties"] for e in old_vmp.get("extensionProfile", {}).get("extensions", [])}
        for ext in (vmp.get("extensionProfile") or {}).get("extensions") or []:
            old = old_exts.get(ext.get("name")) if isinstance(ext, dict) else None
            p = ext.get("properties") if isinstance(ext, dict) else None
            if old and isinstance(p, dict) and SECRET not in p and old.get(SECRET) and \
                    (p.get("publisher"), p.get("type")) == (old.get("publisher"), old.get("type")):
                p[SECRET] = copy.deepcopy(old[SECRET])
    return new


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396: objects merge, null removes, anything else (lists too) replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def without_secrets(obj: Any) -> Any:
    """A copy with every protectedSettings and admin password (or its hash) removed (Azure never
    returns them)."""
    if isinstance(obj, dict):
        return {k: without_secrets(v) for k, v in obj.items() if k not in SECRETS}
    if isinstance(obj, list):
        return [without_secrets(v) for v in obj]
    return obj
