"""Rolling-upgrade rules, pure: batch sizes, batch choice, thresholds, rollback decisions."""
from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace

from controller.model.instance import Instance, profile_digest, unprotected
from controller.model.scaleset import (
    AutomaticOSUpgradePolicy,
    RollingUpgradePolicy,
    ScaleSet,
)

UNHEALTHY_STATES = ("Unhealthy", "Unknown")  # Initializing is waited for, not counted
FAILED_STATES = ("Failed", "RolledBack", "RollbackFailed")  # an upgraded instance that did not succeed

BEFORE = "MaxUnhealthyInstancePercentExceededBeforeRollingUpgrade"
DURING = "MaxUnhealthyInstancePercentExceededInRollingUpgrade"
UPGRADED = "MaxUnhealthyUpgradedInstancePercentExceededInRollingUpgrade"


def batch_size(total: int, percent: int) -> int:
    """At most `percent` of the instance count, at least one VM."""
    return max(1, total * percent // 100)


def exceeds(count: int, total: int, percent: int) -> bool:
    """More than `percent` % (integer arithmetic: 1 of 5 is 20 %, not more than 20 %)."""
    return total > 0 and count * 100 > percent * total


def next_batch(pending: list[int], health: dict[int, str], size: int, prioritize_unhealthy: bool) -> list[int]:
    """The next instances to upgrade: lowest ids first, unhealthy ones first when asked."""
    order = sorted(pending)
    if prioritize_unhealthy:
        order.sort(key=lambda i: health.get(i) not in UNHEALTHY_STATES)  # stable: ids stay in order
    return order[:size]


def unhealthy(health: dict[int, str]) -> list[int]:
    return sorted(i for i, s in health.items() if s in UNHEALTHY_STATES)


def health_breach(health: dict[int, str], policy: RollingUpgradePolicy, batches_done: int) -> tuple[str, str] | None:
    """(error code, message) when too much of the whole set is unhealthy before a batch."""
    bad = unhealthy(health)
    if exceeds(len(bad), len(health), policy.maxUnhealthyInstancePercent):
        code = BEFORE if batches_done == 0 else DURING
        return code, (f"{len(bad)} of {len(health)} instances are unhealthy (instances {', '.join(map(str, bad))}), "
                      f"more than maxUnhealthyInstancePercent {policy.maxUnhealthyInstancePercent} %")
    return None


def upgraded_breach(failed: int, upgraded: int, policy: RollingUpgradePolicy) -> tuple[str, str] | None:
    """(error code, message) when too many upgraded instances ended unhealthy."""
    if exceeds(failed, upgraded, policy.maxUnhealthyUpgradedInstancePercent):
        return UPGRADED, (f"{failed} of {upgraded} upgraded instances did not become healthy, more than "
                          f"maxUnhealthyUpgradedInstancePercent {policy.maxUnhealthyUpgradedInstancePercent} %")
    return None


SURGE_RESERVE_MIB = 1024  # memory the host keeps for itself when MaxSurge adds guests


def surge_refusal(wanted: int, guest_mib: int, running: int, max_guests: int | None,
                  available_mib: int | None) -> str | None:
    """Why the host cannot hold `wanted` more guests of `guest_mib` MiB (None: it can). The lab's
    limits: SCALESET_MAX_GUESTS running guests, and the host's memory less a reserve."""
    if max_guests is not None and running + wanted > max_guests:
        return f"{running} guests run, {wanted} more would pass SCALESET_MAX_GUESTS={max_guests}"
    if available_mib is not None and available_mib - SURGE_RESERVE_MIB < wanted * guest_mib:
        return (f"{wanted} more guests need {wanted * guest_mib} MiB; the host has {available_mib} MiB available "
                f"and keeps {SURGE_RESERVE_MIB} MiB free")
    return None


def automatic_rollback(started_by: str, auto: AutomaticOSUpgradePolicy) -> bool:
    """An instance that is not healthy in time gets its old OS disk back, unless the upgrade was
    started by hand (no automatic rollback for a manual trigger) or rollback is disabled."""
    return started_by == "Platform" and not auto.disableAutomaticRollback


def model_digest(ss: ScaleSet) -> str | None:
    """In modes Rolling and Automatic an upgrade also brings instances to the latest model (Azure
    applies model changes in those modes): the model's digest then, else None (the image alone)."""
    return profile_digest(ss) if ss.properties.upgradePolicy.mode != "Manual" else None


ALL_AT_ONCE = {"maxBatchInstancePercent": 100, "maxUnhealthyInstancePercent": 100,
               "maxUnhealthyUpgradedInstancePercent": 100, "pauseTimeBetweenBatches": "PT0S", "maxSurge": False}


def upgrade_policy(ss: ScaleSet, started_by: str, model_change: bool = False) -> RollingUpgradePolicy:
    """The policy an upgrade follows. Mode Automatic applies a model change to every instance at
    once; an automatic OS upgrade follows the set's rollingUpgradePolicy in mode Rolling or with
    `useRollingUpgradePolicy`, else Azure's default policy; any other start follows the set's."""
    up = ss.properties.upgradePolicy
    if model_change and up.mode == "Automatic":
        return replace(up.rollingUpgradePolicy, **ALL_AT_ONCE)
    if started_by == "Platform" and up.mode != "Rolling" and not up.automaticOSUpgradePolicy.useRollingUpgradePolicy:
        return RollingUpgradePolicy()
    return up.rollingUpgradePolicy


def pending(insts: list[Instance], version: str, touched: Collection[int], digest: str | None = None) -> list[int]:
    """Instances the upgrade has still to do: not on `version` (or, with `digest`, not on the
    latest model), not yet touched by this upgrade, and not protected from scale-set actions
    (those are skipped: an upgrade completes without them)."""
    return [i.instance_id for i in unprotected(insts) if i.instance_id not in touched
            and (i.image["version"] != version or (digest is not None and i.profile_digest != digest))]
