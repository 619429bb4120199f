"""Scale-set models in the lab's SQLite database: validated on every write, versioned."""
from __future__ import annotations

import json
import sqlite3

from controller.core.clock import now_iso
from controller.core.txn import transaction
from controller.model.scaleset import ScaleSet, parse
from controller.core.errors import ModelError


class ScaleSetStore:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def create(self, document: dict) -> ScaleSet:
        ss = parse(document)
        with transaction(self.db):
            if self.db.execute("SELECT 1 FROM scale_sets WHERE name=?", (ss.name,)).fetchone():
                raise ModelError("$.name", f"scale set '{ss.name}' already exists", "Conflict")
            now = now_iso()
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
                                  "WHERE name=?", (json.dumps(ss.to_json()), now_iso(), ss.name))
            if cur.rowcount == 0:
                raise ModelError("name", f"scale set '{ss.name}' not found", "ResourceNotFound")
        return ss

    def delete(self, name: str) -> None:
        with transaction(self.db):
            self.db.execute("DELETE FROM scale_sets WHERE name=?", (name,))
