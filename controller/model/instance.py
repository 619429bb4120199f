"""An instance of a scale set, typed, and the pure rules about instances: names, domains,
the profile an instance gets from the model, capacity planning, id selection.

Instance ids run 0..N-1; update and fault domains are assigned round-robin over 5.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from controller.core.errors import ModelError
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


def plan_capacity(existing: list[int], capacity: int) -> tuple[list[int], list[int]]:
    """(ids to add, ids to remove): the lowest free ids are used, the highest removed first."""
    have = sorted(existing)
    if len(have) > capacity:
        return [], sorted(have[capacity:], reverse=True)
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

    @property
    def image(self) -> dict:
        return self.profile["vm"]["storageProfile"]["imageReference"]

    @property
    def ssh_port(self) -> int:
        return self.ports[SSH_PORT]

    @property
    def dir(self) -> Path:
        return Path(self.os_disk).parent


def resolve_ids(instances: list[Instance], wanted: list[str] | None, field_name: str = "--instance-ids") -> list[Instance]:
    """Instances named by `wanted` ('*' or ids); all of them when None."""
    if wanted is None or wanted == ["*"]:
        return instances
    by_id = {str(i.instance_id): i for i in instances}
    out = []
    for w in wanted:
        if w not in by_id:
            raise ModelError(field_name, f"no instance '{w}' (instances: {', '.join(by_id) or 'none'})", "NotFound")
        if by_id[w] not in out:
            out.append(by_id[w])
    return out
