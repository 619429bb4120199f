"""An instance of a scale set, typed, and the pure rules about instances: names, domains,
the profile an instance gets from the model, capacity planning, id selection, protection.

Instance ids run 0..N-1; update and fault domains are assigned round-robin over 5.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from dataclasses import dataclass, field, fields
from pathlib import Path

from controller.core.errors import ModelError
from controller.model.checks import check_capacity
from controller.model.jsonmap import read_bool
from controller.model.scaleset import ScaleSet

DOMAINS = 5  # update domains and fault domains
SSH_PORT = 22
AGENT_PORT = 8765  # the in-guest health agent's HTTP view (agent/server.py's default)


def domain_name(home: Path, scale_set: str, instance_id: int) -> str:
    """libvirt names are global to the host: a short digest of the lab home keeps labs apart."""
    tag = hashlib.sha256(str(home).encode()).hexdigest()[:6]
    return f"sslab-{tag}-{scale_set}_{instance_id}"


def computer_name(prefix: str, instance_id: int) -> str:
    """As Azure: the prefix, then the instance id in base 36 on six characters (vm000000, vm00000a)."""
    digits, n = "", instance_id
    while True:
        n, r = divmod(n, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[r] + digits
        if n == 0:
            break
    return prefix + digits.rjust(6, "0")


def profile_digest(ss: ScaleSet) -> str:
    """What an instance must match to have the latest model: the VM profile plus the size."""
    p = ss.to_json()["properties"]
    ls = p.get("labSettings", {})
    basis = {"vm": p["virtualMachineProfile"], "sku": ss.sku.name,
             "size": [ls.get("vcpus"), ls.get("memoryMiB"), ls.get("network")]}
    return hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()[:16]


def applied_profile(ss: ScaleSet, version: str) -> dict:
    """What an instance gets from the model: the VM profile with the image version resolved."""
    p = ss.to_json()["properties"]
    vm = p["virtualMachineProfile"]
    requested = vm["storageProfile"]["imageReference"]["version"]
    vm["storageProfile"]["imageReference"]["version"] = version
    ls = ss.properties.labSettings
    return {"vm": vm, "requestedVersion": requested, "vcpus": ls.vcpus, "memoryMiB": ls.memoryMiB,
            "network": ls.network, "sku": ss.sku.name}


def guest_ports(ss: ScaleSet) -> list[int]:
    """Guest ports forwarded from 127.0.0.1: SSH, the health agent, the health probe's port."""
    ports = [SSH_PORT, AGENT_PORT]
    probe = ss.properties.virtualMachineProfile.networkProfile.healthProbe
    if probe is not None and probe.port not in ports:
        ports.append(probe.port)
    return ports


def plan_capacity(existing: list[int], capacity: int, protected: Collection[int] = ()) -> tuple[list[int], list[int]]:
    """(ids to add, ids to remove): the lowest free ids are used, the highest removed first,
    skipping `protected` ones (protected from scale-in); refused when they leave too few.
    `capacity` is checked first (0..1000): nothing is planned from an unchecked number."""
    check_capacity(capacity, "sku.capacity")
    have = sorted(existing)
    if len(have) > capacity:
        removable = [i for i in reversed(have) if i not in protected]
        excess = len(have) - capacity
        if excess > len(removable):
            kept = sorted(set(have) & set(protected))
            raise ModelError("sku.capacity", f"cannot scale in to {capacity}: instances {', '.join(map(str, kept))} "
                                             f"are protected from scale-in (the lowest capacity is "
                                             f"{len(have) - len(removable)}); remove their protection first",
                             "OperationNotAllowed")
        return [], removable[:excess]
    add, i = [], 0
    while len(have) + len(add) < capacity:
        if i not in have:
            add.append(i)
        i += 1
    return add, []


@dataclass
class Instance:
    scale_set: str
    instance_id: int
    domain: str
    computer_name: str
    update_domain: int
    fault_domain: int
    profile: dict           # applied model: {"vm": profile, image version resolved; "requestedVersion",
                            #                 "vcpus", "memoryMiB", "network", "sku"}
    profile_digest: str
    os_disk: str
    seed: str
    ci_instance_id: str
    ports: dict[int, int]   # guest -> host
    provisioning_state: str = "Creating"
    power_state: str = "running"
    boot_id: str | None = None
    stamp: dict = field(default_factory=dict)
    extensions: list[dict] = field(default_factory=list)
    error: str | None = None
    created_at: str = ""
    updated_at: str = ""
    protect_from_scale_in: bool = False            # protectionPolicy: the user's, set on the instance only
    protect_from_scale_set_actions: bool = False
    host_uri: str | None = None    # the libvirt host the domain lives on (None: the lab's own, `local`)
    host_pool: str | None = None   # that host's storage pool (None: the local host's pool)

    @property
    def scale_in_protected(self) -> bool:
        """Protection from scale-set actions includes protection from scale-in."""
        return self.protect_from_scale_in or self.protect_from_scale_set_actions

    def protection_policy(self) -> dict:
        return {"protectFromScaleIn": self.scale_in_protected,
                "protectFromScaleSetActions": self.protect_from_scale_set_actions}

    @property
    def image(self) -> dict:
        return self.profile["vm"]["storageProfile"]["imageReference"]

    @property
    def ssh_port(self) -> int:
        return self.ports[SSH_PORT]


def record_version(inst: Instance) -> str:
    """A digest of the instance's record, which changes with every write of it (its etag). The
    profile is left out: its digest and the OS disk change with it."""
    values = [getattr(inst, f.name) for f in fields(inst) if f.name != "profile"]
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]


def resolve_ids(instances: list[Instance], wanted: list[str] | None, field_name: str = "--instance-ids") -> list[Instance]:
    """Instances named by `wanted` ('*' or ids); all of them when None."""
    if wanted is None or wanted == ["*"]:
        return instances
    by_id = {str(i.instance_id): i for i in instances}
    out = []
    for w in wanted:
        if w not in by_id:
            shown = w[:40] if w.isprintable() else repr(w[:40])
            raise ModelError(field_name, f"no instance '{shown}' (instances: {', '.join(list(by_id)[:50]) or 'none'}"
                                         f"{', ...' if len(by_id) > 50 else ''})", "NotFound")
        if by_id[w] not in out:
            out.append(by_id[w])
    return out


def unprotected(instances: list[Instance]) -> list[Instance]:
    """The instances that actions on the scale set (upgrades, reimage, update-instances) apply to."""
    return [i for i in instances if not i.protect_from_scale_set_actions]


def set_action_targets(instances: list[Instance], wanted: list[str] | None,
                       field_name: str = "--instance-ids") -> list[Instance]:
    """The instances an action on the scale set applies to: all of them ('*' or None) but those
    protected from scale-set actions; naming a protected one refuses the action (as Azure does)."""
    chosen = resolve_ids(instances, wanted, field_name)
    if wanted is None or wanted == ["*"]:
        return unprotected(chosen)
    named = [str(i.instance_id) for i in chosen if i.protect_from_scale_set_actions]
    if named:
        raise ModelError(field_name, f"may not contain instances protected from scale-set actions: {', '.join(named)} "
                                     "(set their protectFromScaleSetActions to false first)", "OperationNotAllowed")
    return chosen


def merge_protection(inst: Instance, scale_in: object, set_actions: object,
                     fields: tuple[str, str] = ("protectFromScaleIn", "protectFromScaleSetActions")) -> tuple[bool, bool]:
    """The protection after a change (None: unchanged), as Azure checks it: booleans only, and
    protectFromScaleIn cannot be false while protectFromScaleSetActions is true (absent, it
    follows: protecting from scale-set actions protects from scale-in). "true"/"false" are read
    as ARM reads them."""
    read = []
    for value, name in ((scale_in, fields[0]), (set_actions, fields[1])):
        if value is not None and read_bool(value) is None:
            raise ModelError(name, f"must be true or false, not {json.dumps(value)[:40]}")
        read.append(None if value is None else read_bool(value))
    scale_in, set_actions = read
    actions = inst.protect_from_scale_set_actions if set_actions is None else set_actions
    if scale_in is None:
        scale_in = True if set_actions else inst.scale_in_protected
    if actions and not scale_in:
        raise ModelError(fields[0], f"cannot be false when {fields[1]} is true (protection from scale-set actions "
                                    "includes scale-in)")
    return bool(scale_in), bool(actions)
