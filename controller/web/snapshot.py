"""What the web view shows, as JSON: the lab (scale sets, image versions) and one scale set (its
heat map cells, the latest rolling upgrade with its timeline and thresholds, the history).
Pure reads of the lab; the power states come from one libvirt listing (or a stand-in)."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from controller.model.instance import Instance, profile_digest
from controller.model.scaleset import ScaleSet
from controller.ops import upgrade_plan as plan
from controller.ops.lab import Lab
from controller.ops.upgrade_views import history_item, latest_view
from controller.ops.views import latest_model_applied
from controller.state.health import HealthStore
from controller.state.upgrades import ACTIVE, UpgradeStore

UPDATE_DOMAINS = 5  # Azure's platformUpdateDomainCount for a scale set
PowerStates = Callable[[Lab, Iterable[str]], dict[str, "str | None"]]


def libvirt_states(lab: Lab, domains: Iterable[str]) -> dict[str, str | None]:
    """Each domain's state from its host ("unknown" on a host that does not answer)."""
    remote = lab.instances.remote_domains()
    return lab.hosts.states((remote.get(d), d) for d in domains).states


def _epoch(iso: str) -> float:
    try:
        return datetime.fromisoformat(iso).timestamp()
    except (TypeError, ValueError):
        return 0.0


def _upgrade_summary(up) -> dict | None:
    if up is None:
        return None
    return {"id": up.id, "status": up.status, "targetVersion": up.target["version"], "startedBy": up.started_by,
            "startTime": up.start_time, "endTime": up.end_time, "errorCode": up.error_code}


def lab_view(lab: Lab) -> dict:
    """The list page: every scale set that reads, and the gallery."""
    store = UpgradeStore(lab.db)
    sets = []
    good, bad = lab.models.scan()
    for ss in good:
        props = ss.properties
        ref = props.virtualMachineProfile.storageProfile.imageReference
        insts = lab.instances.list(ss.name)
        versions = sorted({i.image["version"] for i in insts})
        sets.append({
            "name": ss.name, "capacity": ss.sku.capacity, "instances": len(insts),
            "image": f"{ref.publisher}:{ref.offer}:{ref.sku}:{ref.version}", "runningVersions": versions,
            "mode": props.upgradePolicy.mode,
            "automaticOSUpgrade": props.upgradePolicy.automaticOSUpgradePolicy.enableAutomaticOSUpgrade,
            "latestUpgrade": _upgrade_summary(store.latest(ss.name)),
        })
    images = [{"publisher": iv.publisher, "offer": iv.offer, "sku": iv.sku, "version": iv.version,
               "excludeFromLatest": iv.exclude_from_latest, "targetRegions": iv.target_regions,
               "publishedAt": iv.published_at} for iv in lab.gallery.list()]
    return {"scaleSets": sets, "damaged": [f"{e.field}: {e.reason}" for e in bad], "images": images}


def _cell(ss: ScaleSet, inst: Instance, digest: str, power: str | None, health, upgrade_state: str | None) -> dict:
    return {"id": inst.instance_id, "ud": inst.update_domain, "fd": inst.fault_domain,
            "version": inst.image["version"], "running": (inst.stamp or {}).get("version"),
            "power": power or "deallocated", "provisioning": inst.provisioning_state,
            "health": health.state if health else None, "healthDetail": health.detail if health else None,
            "healthSince": health.since if health else None,
            "latestModelApplied": latest_model_applied(ss, inst, digest), "upgrade": upgrade_state,
            "error": inst.error, "protected": "scale-set actions" if inst.protect_from_scale_set_actions else
            "scale-in" if inst.scale_in_protected else None}


def _thresholds(up, rows: list[dict], health: dict[int, str], total: int) -> list[dict]:
    """The two gates of section 1 of the spec against their limits: the whole set's unhealthy
    share (checked before every batch) and the upgraded instances' failed share."""
    policy = up.policy
    flying = {r["instanceId"] for r in rows if r["state"] == "InProgress"}  # the next check comes after them
    bad = len(plan.unhealthy({iid: st for iid, st in health.items() if iid not in flying}))
    done = [r for r in rows if r["state"] != "InProgress"]
    failed = sum(r["state"] in plan.FAILED_STATES for r in done)
    limit = policy.get("maxUnhealthyInstancePercent", 20)
    active = up.status == ACTIVE  # once it ended, the share is today's, and only its end says what broke it
    return [
        {"name": "unhealthy", "label": ("Unhealthy instances outside the batch in flight" if flying else
                                        "Unhealthy instances") if active else "Unhealthy instances now", "count": bad,
         "of": total, "limit": limit, "policy": "maxUnhealthyInstancePercent",
         "exceeded": plan.exceeds(bad, total, limit) if active else up.error_code in (plan.BEFORE, plan.DURING)},
        {"name": "upgradedUnhealthy", "label": "Upgraded instances not healthy", "count": failed, "of": len(done),
         "limit": policy.get("maxUnhealthyUpgradedInstancePercent", 20),
         "policy": "maxUnhealthyUpgradedInstancePercent",
         "exceeded": plan.exceeds(failed, len(done), policy.get("maxUnhealthyUpgradedInstancePercent", 20))},
    ]


def set_view(lab: Lab, name: str, power_states: PowerStates = libvirt_states) -> dict:
    """One scale set: heat map cells, the latest rolling upgrade (timeline, thresholds), history."""
    ss = lab.models.get(name)
    insts = lab.instances.list(ss.name)
    states = power_states(lab, [i.domain for i in insts])
    health = HealthStore(lab.db).get(ss.name)
    store = UpgradeStore(lab.db)
    up = store.latest(ss.name)
    rollout = latest_view(lab, up) if up is not None else None
    rows = rollout["lab"]["instances"] if rollout else []
    in_upgrade = {r["instanceId"]: r["state"] for r in rows}
    if up is not None:  # a reading from before an instance's OS-disk swap says nothing of the new disk
        for r in rows:
            reading = health.get(r["instanceId"])
            if r["state"] == "InProgress" and reading is not None and r["startSeconds"] is not None \
                    and _epoch(reading.checked_at) < up.started_epoch + r["startSeconds"]:
                health.pop(r["instanceId"])
    digest = profile_digest(ss)
    cells = [_cell(ss, i, digest, states.get(i.domain), health.get(i.instance_id), in_upgrade.get(i.instance_id))
             for i in insts]
    props = ss.properties
    ref = props.virtualMachineProfile.storageProfile.imageReference
    if rollout is not None:
        assert up is not None
        ids = {i.instance_id for i in insts}
        rollout["thresholds"] = _thresholds(up, rows, {iid: r.state for iid, r in health.items() if iid in ids},
                                            len(insts))
        rollout["active"] = up.status == ACTIVE
    return {
        "name": ss.name, "capacity": ss.sku.capacity, "image": f"{ref.publisher}:{ref.offer}:{ref.sku}:{ref.version}",
        "imageReference": {"publisher": ref.publisher, "offer": ref.offer, "sku": ref.sku, "version": ref.version},
        "mode": props.upgradePolicy.mode,
        "automaticOSUpgrade": props.upgradePolicy.automaticOSUpgradePolicy.enableAutomaticOSUpgrade,
        "updateDomains": UPDATE_DOMAINS, "cells": cells, "rollout": rollout,
        "history": [history_item(lab, u) for u in store.history(ss.name)],
    }
