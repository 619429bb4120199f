"""Scale-set models in the lab's SQLite database: validated on every write, versioned."""
from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone

from .db import transaction
from .model import ScaleSet, parse
from .modelparse import ModelError


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class ScaleSetStore:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def create(self, document: dict) -> ScaleSet:
        ss = parse(document)
        with transaction(self.db):
            if self.db.execute("SELECT 1 FROM scale_sets WHERE name=?", (ss.name,)).fetchone():
                raise ModelError("$.name", f"scale set '{ss.name}' already exists", "Conflict")
            now = _now()
            self.db.execute("INSERT INTO scale_sets VALUES (?,?,?,?,?)",
                            (ss.name, json.dumps(ss.to_json()), 1, now, now))
        return ss

    def get(self, name: str, shared: dict[str, ScaleSet] | None = None) -> ScaleSet:
        """The model. `shared`: a cache the caller keeps (model text -> ScaleSet, read-only)."""
        row = self.db.execute("SELECT model FROM scale_sets WHERE name=?", (name,)).fetchone()
        if row is None:
            raise ModelError("name", f"scale set '{name}' not found", "ResourceNotFound")
        if shared is not None and row["model"] in shared:
            return shared[row["model"]]
        ss = parse(json.loads(row["model"]))
        if shared is not None:
            shared.clear()
            shared[row["model"]] = ss
        return ss

    def generation(self, name: str) -> int:
        row = self.db.execute("SELECT generation FROM scale_sets WHERE name=?", (name,)).fetchone()
        if row is None:
            raise ModelError("name", f"scale set '{name}' not found", "ResourceNotFound")
        return int(row["generation"])

    def list(self) -> list[ScaleSet]:
        return [parse(json.loads(r["model"])) for r in self.db.execute("SELECT model FROM scale_sets ORDER BY name")]

    def replace(self, document: dict) -> ScaleSet:
        """Write a whole new model (validated first); the name cannot change."""
        ss = parse(document)
        with transaction(self.db):
            cur = self.db.execute("UPDATE scale_sets SET model=?, generation=generation+1, updated_at=? "
                                  "WHERE name=?", (json.dumps(ss.to_json()), _now(), ss.name))
            if cur.rowcount == 0:
                raise ModelError("name", f"scale set '{ss.name}' not found", "ResourceNotFound")
        return ss

    def delete(self, name: str) -> None:
        with transaction(self.db):
            self.db.execute("DELETE FROM scale_sets WHERE name=?", (name,))


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
