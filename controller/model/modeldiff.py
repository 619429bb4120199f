"""Which path a model change takes on one instance, pure: in place (extensions re-run in the
running guest) or a new OS disk.

Only `extensionProfile` may differ for the in-place path, and a `CloudConfig` extension must
not be part of the difference (its document is a part of the seed's user-data, which cloud-init
reads at first boot only). An extension re-runs when it is new or any of its properties changed
(settings, protectedSettings, typeHandlerVersion, provisionAfterExtensions, ...), as Azure's
agent re-runs an extension whose definition changed; an unchanged extension that succeeded is
not re-run, even when a changed one is in its provisionAfterExtensions chain (Azure re-runs an
extension only when its own definition changes: `forceUpdateTag`, or a new CustomScript
`timestamp`). An unchanged extension that did not succeed (it failed, or never ran because a
prerequisite failed) is provisioned again, after its prerequisites, as Azure provisions pending
ones once their prerequisites succeed.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from controller.model.extcheck import CLOUD_CONFIG


@dataclass(frozen=True)
class Change:
    in_place: bool
    run: list[str] = field(default_factory=list)        # extensions to run, in dependency order
    removed: list[dict] = field(default_factory=list)   # {"name", "type"} of extensions gone from the model
    reason: str = ""                                     # why a new OS disk (empty when in place)


def _exts(profile: dict) -> list[dict]:
    return list(profile["vm"].get("extensionProfile", {}).get("extensions", []))


def _without_extensions(profile: dict) -> dict:
    vm = {k: v for k, v in profile["vm"].items() if k != "extensionProfile"}
    rest = {k: v for k, v in profile["vm"].get("extensionProfile", {}).items() if k != "extensions"}
    return {**profile, "vm": vm, "extensionRest": rest}


def _ordered(exts: list[dict]) -> list[str]:
    """Dependency order (the model is validated acyclic), otherwise the model's order."""
    by_name = {e["name"]: e for e in exts}
    done: list[str] = []

    def visit(name: str) -> None:
        if name in done:
            return
        for dep in by_name[name]["properties"].get("provisionAfterExtensions") or []:
            visit(dep)
        done.append(name)

    for e in exts:
        visit(e["name"])
    return done


def _differs(old: dict, new: dict) -> str:
    """The first part of the profiles that differs outside the extensions ('' when none)."""
    a, b = _without_extensions(old), _without_extensions(new)
    for part in sorted(set(a["vm"]) | set(b["vm"])):  # the VM profile's parts first, then the size, ...
        if a["vm"].get(part) != b["vm"].get(part):
            return part
    return next((key for key in sorted(set(a) | set(b)) if key != "vm" and a.get(key) != b.get(key)), "")


def classify(old: dict, new: dict, statuses: list[dict] | None = None) -> Change:
    """The path from the applied profile `old` (an instance's) to `new` (the model's, its image
    version resolved); `statuses`: the instance's extension statuses. Identical profiles are no
    extension-only change: they take a new OS disk (a reimage to the model), as before."""
    if old == new:
        return Change(False, reason="the instance already has this model")
    part = _differs(old, new)
    if part:
        return Change(False, reason=f"{part} changed")
    before = {e["name"]: e for e in _exts(old)}
    after = {e["name"]: e for e in _exts(new)}
    for name in sorted(set(before) | set(after)):
        if before.get(name) != after.get(name) and any(
                (e["properties"]["publisher"], e["properties"]["type"]) == CLOUD_CONFIG
                for e in (before.get(name), after.get(name)) if e is not None):
            return Change(False, reason=f"CloudConfig extension '{name}' changed (cloud-init reads it at first boot)")
    ok = {s.get("name") for s in statuses or [] if s.get("provisioningState") == "Succeeded"}
    run = [n for n in _ordered(list(after.values())) if before.get(n) != after[n] or n not in ok]
    removed = [{"name": n, "type": e["properties"]["type"]} for n, e in before.items() if n not in after]
    return Change(True, run, removed)
