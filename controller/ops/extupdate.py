"""Extension-only model changes applied in place (controller/model/modeldiff.py says which).

`update-instances` (ARM's manualUpgrade) and rolling upgrades journal an in-place update as a
swap whose old and new OS disk are the same (`Swap.in_place`): the new side is the model's
profile on the same disk, seed and cloud-init instance-id. The changed extensions re-run in the
running guest (controller/virt/guestext.py), no reboot; the instance then has the model's
profile and digest and the statuses the guest reports. A killed update is finished by running
the same extensions again (`repair`, the next command, or the rolling upgrade's resume): the
journal keeps both profiles, so the change is computed again the same way.

The seed stays as it is: cloud-init reads it at first boot only (same instance-id: a reboot
runs nothing again), and a reimage writes a new seed from the instance's profile, the model's.
"""
from __future__ import annotations

from dataclasses import replace

from controller.model import extensions as ext_mod
from controller.model.extcheck import HEALTH_EXTENSION
from controller.model.instance import Instance
from controller.model.modeldiff import Change, classify
from controller.ops.lab import Lab
from controller.state.journal import Swap
from controller.virt import guestext, vm


def in_place_target(inst: Instance, applied: tuple[dict, str]) -> Instance | None:
    """`inst` on the model (`applied`: its profile and digest) without a new OS disk, or None
    when the change needs one. A stopped instance gets a new OS disk (which starts it), as before."""
    profile, digest = applied
    if inst.power_state != "running" or not classify(inst.profile, profile, inst.extensions).in_place:
        return None
    return replace(inst, profile=profile, profile_digest=digest, provisioning_state="Updating")


def change_of(swap: Swap, statuses: list[dict]) -> Change:
    """The journalled update's change (`statuses`: the instance's, from before the update)."""
    return classify(swap.old_profile, swap.new_profile, statuses)


def run(lab: Lab, inst: Instance, change: Change, timeout: float) -> vm.Booted:
    """Blocking: remove and run the extensions of `change` in `inst`'s guest; the statuses after."""
    exts = vm.typed_profile(inst).extensionProfile.extensions
    config = ext_mod.runner_config(exts, only=change.run, removed=change.removed)
    agent = any((e.properties.publisher, e.properties.type) == HEALTH_EXTENSION and e.name in change.run
                for e in exts)
    return guestext.update_extensions(lab.hv_of(inst), lab.paths, inst, config, agent, timeout, lab.route(inst))
