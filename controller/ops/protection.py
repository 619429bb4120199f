"""Instance protection (Azure's `protectionPolicy` on a scale-set VM): set by the user on one
instance. `protectFromScaleIn` keeps it out of scale-in; `protectFromScaleSetActions` also keeps
it out of what is done to the scale set: rolling and automatic OS upgrades, `update-instances`
and `reimage` of the set. An action on the instance itself is not blocked."""
from __future__ import annotations

from collections.abc import Callable

from controller.core.txn import transaction
from controller.model.instance import Instance, merge_protection, resolve_ids
from controller.ops.lab import Lab

CLI_FIELDS = ("--protect-from-scale-in", "--protect-from-scale-set-actions")


def set_protection(lab: Lab, name: str, instance_id: str, scale_in: object, set_actions: object,
                   fields: tuple[str, str] = CLI_FIELDS, expect: Callable[[Instance], object] | None = None) -> Instance:
    """Change the protection of one instance (None: that flag unchanged); returns the instance.
    `expect(instance)`: a precondition on the row as this write reads it (one transaction)."""
    ss = lab.models.get(name)
    with transaction(lab.db):
        inst = resolve_ids(lab.instances.list(ss.name), [instance_id], "--instance-id")[0]
        if expect is not None:
            expect(inst)
        new = merge_protection(inst, scale_in, set_actions, fields)
        if new == (inst.protect_from_scale_in, inst.protect_from_scale_set_actions):
            return inst
        return lab.instances.set_protection(ss.name, inst.instance_id, *new)
