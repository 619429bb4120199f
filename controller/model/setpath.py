"""az's generic update: `--set PATH=VALUE` on a JSON document."""
from __future__ import annotations

import json

from controller.core.errors import ModelError


def set_path(document: dict, assignment: str) -> dict:
    """Apply one `--set PATH=VALUE` (az's generic update): VALUE is JSON when it parses, else a string."""
    if "=" not in assignment:
        raise ModelError("--set", f"'{assignment}' is not PATH=VALUE")
    path, raw = assignment.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    keys = path.split(".")
    node = document
    for i, key in enumerate(keys[:-1]):
        idx = key.rstrip("]").split("[") if "[" in key else [key]
        nxt = node.get(idx[0]) if isinstance(node, dict) else None
        if nxt is None:
            nxt = {}
            node[idx[0]] = nxt
        if len(idx) == 2:
            try:
                nxt = nxt[int(idx[1])]
            except (IndexError, ValueError, TypeError):
                raise ModelError(".".join(keys[: i + 1]), "no such list item") from None
        node = nxt
    node[keys[-1]] = value
    return document
