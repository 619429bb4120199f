"""Rolling-upgrade rules, pure: batch sizes, batch choice, thresholds, rollback decisions."""
from __future__ import annotations

from controller.model.instance import Instance, profile_digest
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


def automatic_rollback(started_by: str, auto: AutomaticOSUpgradePolicy) -> bool:
    """An instance that is not healthy in time gets its old OS disk back, unless the upgrade was
    started by hand (no automatic rollback for a manual trigger) or rollback is disabled."""
    return started_by == "Platform" and not auto.disableAutomaticRollback


def model_digest(ss: ScaleSet) -> str | None:
    """In mode Rolling a rolling upgrade also brings instances to the latest model (Azure rolls
    out model changes in that mode): the model's digest then, else None (the image alone)."""
    return profile_digest(ss) if ss.properties.upgradePolicy.mode == "Rolling" else None


def pending(insts: list[Instance], version: str, touched: dict[int, str], digest: str | None) -> list[int]:
    """Instances the upgrade has still to do: not on `version` (or, with `digest`, not on the
    latest model) and not yet touched by this upgrade."""
    return [i.instance_id for i in insts if i.instance_id not in touched
            and (i.image["version"] != version or (digest is not None and i.profile_digest != digest))]
