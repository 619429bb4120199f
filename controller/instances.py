"""Instances of a scale set: their records in SQLite and the pure planning rules.

Instance ids run 0..N-1; update and fault domains are assigned round-robin over 5.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass, field
from functools import lru_cache
from datetime import datetime, timezone
from pathlib import Path

from .db import transaction
from .model import ScaleSet
from .modelparse import ModelError

DOMAINS = 5  # update domains and fault domains
SSH_PORT = 22
AGENT_PORT = 8765  # the in-guest health agent's HTTP view


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


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
            "network": ls.network}


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
                            #                 "vcpus", "memoryMiB", "network"}
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


_COLS = ("scale_set", "instance_id", "domain", "computer_name", "update_domain", "fault_domain", "profile",
         "profile_digest", "os_disk", "seed", "ci_instance_id", "ports", "provisioning_state", "power_state",
         "boot_id", "stamp", "extensions", "error", "created_at", "updated_at")
_JSON = {"profile", "ports", "stamp", "extensions"}


_DUMPED: dict[int, tuple[dict, str]] = {}


def dump_profile(profile: dict) -> str:
    """JSON of a profile; a batch shares one profile dict, so it is encoded once (read-only)."""
    hit = _DUMPED.get(id(profile))
    if hit is not None and hit[0] is profile:
        return hit[1]
    if len(_DUMPED) > 64:
        _DUMPED.clear()
    text = json.dumps(profile)
    _DUMPED[id(profile)] = (profile, text)
    return text


def _to_row(inst: Instance) -> tuple:
    out = []
    for c in _COLS:
        v = getattr(inst, c)
        if c == "profile":
            out.append(dump_profile(v))
            continue
        if c == "ports":
            v = {str(k): p for k, p in v.items()}
        out.append(json.dumps(v) if c in _JSON else v)
    return tuple(out)


@lru_cache(maxsize=256)
def _shared(text: str):
    """Many instances carry the same profile (and stamp) text: parse it once (read-only)."""
    return json.loads(text)


_IDX = {c: i for i, c in enumerate(_COLS)}
_SELECT = f"SELECT {','.join(_COLS)} FROM instances"


def _from_row(r: tuple) -> Instance:
    """From a row of _SELECT (positional: this runs for every instance of every listing)."""
    v = list(r)
    v[_IDX["profile"]] = _shared(v[_IDX["profile"]])
    v[_IDX["ports"]] = {int(k): int(p) for k, p in json.loads(v[_IDX["ports"]]).items()}
    v[_IDX["stamp"]] = _shared(v[_IDX["stamp"]]) if v[_IDX["stamp"]] else {}
    v[_IDX["extensions"]] = json.loads(v[_IDX["extensions"]]) if v[_IDX["extensions"]] else []
    return Instance(*v)


class InstanceStore:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def list(self, scale_set: str) -> list[Instance]:
        rows = self.db.execute(f"{_SELECT} WHERE scale_set=? ORDER BY instance_id", (scale_set,))
        return [_from_row(r) for r in rows]

    def get(self, scale_set: str, instance_id: int) -> Instance:
        r = self.db.execute(f"{_SELECT} WHERE scale_set=? AND instance_id=?",
                            (scale_set, instance_id)).fetchone()
        if r is None:
            raise ModelError("--instance-id", f"instance {instance_id} of scale set '{scale_set}' not found",
                             "NotFound")
        return _from_row(r)

    def insert(self, inst: Instance) -> None:
        inst.created_at = inst.updated_at = now_iso()
        with transaction(self.db):
            self.db.execute(f"INSERT INTO instances ({','.join(_COLS)}) VALUES ({','.join('?' * len(_COLS))})",
                            _to_row(inst))

    def save(self, inst: Instance) -> None:
        inst.updated_at = now_iso()
        sets = ",".join(f"{c}=?" for c in _COLS[2:])
        with transaction(self.db):
            self.db.execute(f"UPDATE instances SET {sets} WHERE scale_set=? AND instance_id=?",
                            _to_row(inst)[2:] + (inst.scale_set, inst.instance_id))

    def set_state(self, scale_set: str, ids: list[int], provisioning_state: str) -> None:
        """One statement for many instances (a batch starting)."""
        with transaction(self.db):
            self.db.executemany("UPDATE instances SET provisioning_state=?, updated_at=? WHERE scale_set=? AND "
                                "instance_id=?", [(provisioning_state, now_iso(), scale_set, i) for i in ids])

    def delete(self, scale_set: str, instance_id: int) -> None:
        with transaction(self.db):
            self.db.execute("DELETE FROM instances WHERE scale_set=? AND instance_id=?", (scale_set, instance_id))

    def images_in_use(self) -> set[tuple[str, str, str, str]]:
        """Every image version an instance's OS disk (or a kept rollback disk) is built on."""
        used = set()
        for r in self.db.execute("SELECT profile FROM instances UNION ALL "
                                 "SELECT old_profile FROM disk_swaps WHERE phase NOT IN ('done','aborted')"):
            profile = json.loads(r[0])
            if "vm" not in profile:  # a creation has no old disk
                continue
            ref = profile["vm"]["storageProfile"]["imageReference"]
            used.add((ref["publisher"].lower(), ref["offer"].lower(), ref["sku"].lower(), ref["version"]))
        return used


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
