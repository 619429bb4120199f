"""Extensions, host side: dependency order, the runner's config for the seed, and the
statuses read back from the guest shaped as Azure's instance view shows them."""
from __future__ import annotations

import json
from pathlib import Path

from controller.model.scaleset import Extension

RUNNER_SOURCE = Path(__file__).resolve().parents[2] / "agent" / "runner.py"
GUEST_DIR = "/var/lib/scaleset-lab/extensions"
GUEST_RUNNER = f"{GUEST_DIR}/runner.py"
GUEST_CONFIG = f"{GUEST_DIR}/config.json"
GUEST_STATUS = f"{GUEST_DIR}/status"
GUEST_AGENT_HOME = "/opt/scaleset-lab"  # the health agent's package lands in GUEST_AGENT_HOME/agent
AGENT_MODULES = ("__init__.py", "settings.py", "health.py", "probe.py", "server.py")


def agent_sources() -> list[Path]:
    """The health agent's files, shipped in the seed when the model has ApplicationHealthLinux."""
    return [RUNNER_SOURCE.parent / name for name in AGENT_MODULES]


def ordered(exts: list[Extension]) -> list[Extension]:
    """Dependency order (`provisionAfterExtensions` first), otherwise the model's order.
    The model is validated acyclic before it is stored."""
    by_name = {e.name: e for e in exts}
    done: list[str] = []

    def visit(e: Extension) -> None:
        if e.name in done:
            return
        for dep in e.properties.provisionAfterExtensions:
            visit(by_name[dep])
        done.append(e.name)

    for e in exts:
        visit(e)
    return [by_name[n] for n in done]


def runner_config(exts: list[Extension], timeout_seconds: int = 600, only: list[str] | None = None,
                  removed: list[dict] | None = None) -> dict:
    """The runner's config (it carries protectedSettings: 0600 in the seed, or stdin over SSH);
    `only`: the names to run (an in-place update), `removed`: {"name", "type"} to remove."""
    return {"timeoutSeconds": timeout_seconds, "removed": removed or [], "extensions": [
        {"name": e.name, "publisher": e.properties.publisher, "type": e.properties.type,
         "typeHandlerVersion": e.properties.typeHandlerVersion, "settings": e.properties.settings,
         "protectedSettings": e.properties.protectedSettings or {},
         "provisionAfterExtensions": e.properties.provisionAfterExtensions}
        for e in ordered(exts) if only is None or e.name in only]}


READ_STATUSES = (f"sudo sh -c 'for f in {GUEST_STATUS}/*.json; do [ -e \"$f\" ] && cat \"$f\" && echo; done; true'")


def parse_statuses(out: str) -> list[dict]:
    """One JSON object per line, as READ_STATUSES prints them; garbage lines are skipped."""
    res = []
    for line in out.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and "name" in obj:
            res.append(obj)
    return res


_DISPLAY = {"Succeeded": ("succeeded", "Info", "Provisioning succeeded"),
            "Failed": ("failed", "Error", "Provisioning failed"),
            "Creating": ("creating", "Info", "Provisioning in progress")}


def instance_view_entry(status: dict) -> dict:
    """An extension status as `az vmss get-instance-view` shows it."""
    state = status.get("provisioningState", "Creating")
    code, level, display = _DISPLAY.get(state, ("unknown", "Warning", state))
    message = status.get("message") or ""
    if status.get("stdout") or status.get("stderr"):
        message += f"\n[stdout]\n{status.get('stdout', '')}\n[stderr]\n{status.get('stderr', '')}"
    return {
        "name": status["name"],
        "type": f"{status.get('publisher', '')}.{status.get('type', '')}",
        "typeHandlerVersion": status.get("typeHandlerVersion"),
        "statuses": [{"code": f"ProvisioningState/{code}", "level": level, "displayStatus": display,
                      "message": message, "time": status.get("endTime") or status.get("startTime")}],
        "lab": {"provisioningState": state, "exitCode": status.get("exitCode"),
                "startTime": status.get("startTime"), "endTime": status.get("endTime")},
    }


def pending_statuses(exts: list[dict]) -> list[dict]:
    """Statuses before the guest reported anything (`exts`: the model's JSON entries)."""
    return [{"name": e["name"], "publisher": e["properties"]["publisher"], "type": e["properties"]["type"],
             "typeHandlerVersion": e["properties"].get("typeHandlerVersion"), "provisioningState": "Creating",
             "message": "waiting for the guest"} for e in exts]


def all_succeeded(statuses: list[dict], exts: list[Extension]) -> bool:
    by_name = {s["name"]: s for s in statuses}
    return all(by_name.get(e.name, {}).get("provisioningState") == "Succeeded" for e in exts)
