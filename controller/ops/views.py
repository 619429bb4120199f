"""JSON views shaped like `az vmss show | list-instances | get-instance-view`, and tables."""
from __future__ import annotations

import copy

from agent.health import HEALTHY, INITIALIZING, UNHEALTHY, UNKNOWN
from controller.model import extensions as ext_mod
from controller.model.armid import VM_TYPE, group_of, vm_id, vmss_id
from controller.model.instance import Instance, profile_digest
from controller.model.scaleset import SECRETS, ScaleSet
from controller.state.health import Reading

SECRET = "protectedSettings"


def redact(obj):
    """A copy without protectedSettings values and the admin password's hash (they never leave the
    seed and the database)."""
    obj = copy.deepcopy(obj)

    def walk(o):
        if isinstance(o, dict):
            for k in list(o):
                if k in SECRETS and o[k]:
                    o[k] = "<redacted>"
                else:
                    walk(o[k])
        elif isinstance(o, list):
            for v in o:
                walk(v)

    walk(obj)
    return obj


def show(ss: ScaleSet, instances: list[Instance]) -> dict:
    doc = redact(ss.to_json())
    doc["id"] = vmss_id(group_of(ss.id), ss.name)
    states = {i.provisioning_state for i in instances}
    doc["properties"]["provisioningState"] = (
        "Failed" if "Failed" in states else "Updating" if states & {"Creating", "Updating"} else "Succeeded")
    return doc


def _power(inst: Instance, domain_state: str | None) -> str:
    if domain_state is None:
        return "PowerState/deallocated"
    if domain_state == "running":
        return "PowerState/running"
    if domain_state == "stopped":
        return "PowerState/stopped"
    return f"PowerState/{domain_state}"


def latest_model_applied(ss: ScaleSet, inst: Instance, digest: str | None = None) -> bool:
    return inst.profile_digest == (digest or profile_digest(ss))


def instance(ss: ScaleSet, inst: Instance, health: Reading | None = None, digest: str | None = None) -> dict:
    """An entry of `list-instances`: the instance's model, flattened as az prints it (`digest`:
    the model's profile_digest, computed once for a whole list)."""
    vmp = redact(inst.profile["vm"])
    ref = dict(vmp["storageProfile"]["imageReference"])
    ref["exactVersion"] = ref["version"]
    ref["version"] = inst.profile.get("requestedVersion", ref["version"])
    vmp["storageProfile"]["imageReference"] = ref
    return {
        "instanceId": str(inst.instance_id),
        "name": f"{ss.name}_{inst.instance_id}",
        "id": vm_id(group_of(ss.id), ss.name, inst.instance_id),
        "type": VM_TYPE,
        "location": ss.location,
        "latestModelApplied": latest_model_applied(ss, inst, digest),
        "provisioningState": inst.provisioning_state,
        "osProfile": {"computerName": inst.computer_name, "adminUsername": vmp["osProfile"].get("adminUsername")},
        "storageProfile": vmp["storageProfile"],
        "protectionPolicy": inst.protection_policy(),
        "lab": {"health": health.state if health else None, "healthSince": health.since if health else None,
                "domain": inst.domain, "osDisk": inst.os_disk,
                "forwards": {str(g): f"127.0.0.1:{h}" for g, h in sorted(inst.ports.items())}},
    }


def instance_view(ss: ScaleSet, inst: Instance, domain_state: str | None, health: dict | None = None,
                  unreachable: str | None = None) -> dict:
    """`get-instance-view --instance-id N`; `unreachable`: why the instance's host did not answer
    (its power state is then PowerState/unknown, with that message)."""
    prov = inst.provisioning_state
    power = "PowerState/unknown" if unreachable else _power(inst, domain_state)
    statuses = [{"code": f"ProvisioningState/{prov.lower()}", "level": "Error" if prov == "Failed" else "Info",
                 "displayStatus": f"Provisioning {prov.lower()}", "message": inst.error, "time": inst.updated_at},
                {"code": power, "level": "Warning" if unreachable else "Info",
                 "displayStatus": "VM " + power.split("/", 1)[1]}]
    if unreachable:
        statuses[1]["message"] = unreachable
    data_disks = inst.profile["vm"]["storageProfile"].get("dataDisks", [])
    view = {
        "instanceId": str(inst.instance_id),
        "computerName": inst.computer_name,
        "platformUpdateDomain": inst.update_domain,
        "platformFaultDomain": inst.fault_domain,
        "latestModelApplied": latest_model_applied(ss, inst),
        "osName": "Linux",
        "imageReference": {k: inst.image[k] for k in ("publisher", "offer", "sku", "version")},
        "runningImage": inst.stamp or None,  # from the stamp inside the guest, not the model
        "bootId": inst.boot_id,
        "disks": [{"name": "osDisk", "lab": {"file": inst.os_disk}}] + [
            {"name": f"lun-{d['lun']}", "lun": d["lun"], "diskSizeGB": d["diskSizeGB"],
             "guestPath": f"/dev/disk/by-id/virtio-lun-{d['lun']}"} for d in data_disks],
        "extensions": [ext_mod.instance_view_entry(s) for s in inst.extensions],
        "statuses": statuses,
    }
    if health is not None:
        view["vmHealth"] = health
    return view


def aggregate_view(ss: ScaleSet, instances: list[Instance], states: dict[str, str | None]) -> dict:
    """`get-instance-view` without an instance id: counts per status code."""
    counts: dict[str, int] = {}
    ext_counts: dict[str, dict[str, int]] = {}
    for inst in instances:
        for code in (f"ProvisioningState/{inst.provisioning_state.lower()}", _power(inst, states.get(inst.domain))):
            counts[code] = counts.get(code, 0) + 1
        for s in inst.extensions:
            c = f"ProvisioningState/{s.get('provisioningState', 'Creating').lower()}"
            ext_counts.setdefault(s["name"], {})[c] = ext_counts.setdefault(s["name"], {}).get(c, 0) + 1
    return {
        "statuses": [{"code": "ProvisioningState/" + show(ss, instances)["properties"]["provisioningState"].lower(),
                      "level": "Info"}],
        "virtualMachine": {"statusesSummary": [{"code": c, "count": n} for c, n in sorted(counts.items())]},
        "extensions": [{"name": n, "statusesSummary": [{"code": c, "count": k} for c, k in sorted(cs.items())]}
                       for n, cs in ext_counts.items()],
    }


def table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    """A plain text table: columns are (header, key) with dotted keys."""
    def get(row: dict, key: str):
        for part in key.split("."):
            row = row.get(part) if isinstance(row, dict) else None
        return "" if row is None else str(row)

    cells = [[h for h, _ in columns]] + [[get(r, k) for _, k in columns] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(columns))]
    lines = ["  ".join(c[i].ljust(widths[i]) for i in range(len(columns))).rstrip() for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def vm_health(r: Reading | None) -> dict | None:
    """`vmHealth` of the instance view."""
    if r is None:
        return None
    display = {HEALTHY: "The VM is healthy", UNHEALTHY: "The VM is unhealthy", INITIALIZING: "The VM health is "
               "initializing", UNKNOWN: "The VM health is unknown"}[r.state]
    return {"status": {"code": f"HealthState/{r.state.lower()}", "level": "Info" if r.state == HEALTHY else "Warning",
                       "displayStatus": display, "message": r.detail, "time": r.since},
            "lab": {"source": r.source, "checkedAt": r.checked_at}}


def as_resource(view: dict, top: tuple[str, ...] = ("id", "name", "type", "location")) -> dict:
    """A CLI view (properties flattened, as az prints them) in ARM's wire shape: `properties` nested."""
    return {**{k: view[k] for k in top if k in view},
            "properties": {k: v for k, v in view.items() if k not in top}}


def run_command_result(res) -> dict:
    """`run-command invoke`'s answer (Azure's RunCommandResult), with the exit code and streams."""
    ok = res.exit_status == 0
    word = "succeeded" if ok else "failed"
    return {"value": [{"code": f"ProvisioningState/{word}", "displayStatus": f"Provisioning {word}",
                       "level": "Info" if ok else "Error",
                       "message": f"Enable {word}: \n[stdout]\n{res.stdout}\n[stderr]\n{res.stderr}", "time": None}],
            "exitCode": res.exit_status, "stdout": res.stdout, "stderr": res.stderr}
