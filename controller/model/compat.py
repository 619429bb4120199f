"""A scale-set document as ARM reads it on input, in the current api-version's shape: what older
api-versions called otherwise (2017-12-01's `upgradePolicy.automaticOSUpgrade` and
`autoOSUpgradePolicy.disableAutoRollback`), and ARM's default for password logins. Stored and
returned models are always in the current shape; the input document is never changed."""
from __future__ import annotations

from typing import Any

from controller.core.errors import ModelError
from controller.model.jsonmap import read_bool

UP = "$.properties.upgradePolicy"
OLD_AUTO = {"disableAutoRollback": "disableAutomaticRollback"}  # autoOSUpgradePolicy's names -> today's


def _child(node: dict, key: str) -> dict | None:
    """node[key] as a copy (so the caller's document stays as it was); None unless an object."""
    value = node.get(key)
    if not isinstance(value, dict):
        return None
    node[key] = dict(value)
    return node[key]


def _boolean(value: Any, path: str) -> bool:
    """An old field's value, refused under its own name."""
    read = read_bool(value)
    if read is None:
        raise ModelError(path, "must be true or false")
    return read


def _upgrade_policy(up: dict) -> None:
    """2017's fields, in place on a copy; they win over today's (a PATCH merges them into a stored
    model that has today's)."""
    auto = up.get("automaticOSUpgradePolicy")
    if auto is not None and not isinstance(auto, dict):
        return  # from_json names it
    auto = dict(auto or {})
    old = up.pop("autoOSUpgradePolicy", None)
    if old is not None:
        if not isinstance(old, dict):
            raise ModelError(f"{UP}.autoOSUpgradePolicy", "must be an object (2017-12-01's automaticOSUpgradePolicy)")
        for key, value in old.items():
            if key in OLD_AUTO:
                _boolean(value, f"{UP}.autoOSUpgradePolicy.{key}")
            auto[OLD_AUTO.get(key, key)] = value
    if "automaticOSUpgrade" in up:
        auto["enableAutomaticOSUpgrade"] = _boolean(up.pop("automaticOSUpgrade"), f"{UP}.automaticOSUpgrade")
    up["automaticOSUpgradePolicy"] = auto


def _password_login(vmp: dict) -> None:
    """Azure: an osProfile with an adminPassword and no disablePasswordAuthentication allows
    password logins (the seed's template has no linuxConfiguration at all)."""
    osp = _child(vmp, "osProfile")
    if osp is None or (osp.get("adminPassword") is None and osp.get("adminPasswordHash") is None):
        return
    lc = _child(osp, "linuxConfiguration") if "linuxConfiguration" in osp else osp.setdefault("linuxConfiguration", {})
    if lc is not None and lc.get("disablePasswordAuthentication") is None:
        lc["disablePasswordAuthentication"] = False


def current_shape(data: Any) -> Any:
    """`data` in the current shape (a copy where anything changes; anything not an object is left
    for from_json to name)."""
    if not isinstance(data, dict) or not isinstance(data.get("properties"), dict):
        return data
    data = dict(data)
    props = _child(data, "properties")
    up = _child(props, "upgradePolicy")
    if up is not None and ("automaticOSUpgrade" in up or "autoOSUpgradePolicy" in up):
        _upgrade_policy(up)
    vmp = _child(props, "virtualMachineProfile")
    if vmp is not None:
        _password_login(vmp)
    return data
