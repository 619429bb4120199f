"""Scale-set models in the lab's SQLite database: validated on every write, versioned.

A write names the generation it was based on (compare-and-swap): a writer that lost a race
gets ConcurrentUpdate instead of silently overwriting the other change. A stored model that
no longer reads (bad JSON, or a document that no longer validates) is an error of its own
set only (StateCorrupt): listings skip it and name it, and `delete()` still removes it.
"""
from __future__ import annotations

import dataclasses
import json
import sqlite3
import uuid

from controller.core.clock import now_iso
from controller.core.errors import LabError, ModelError
from controller.core.txn import transaction
from controller.model.placement import FD_COUNT, check_fault_domains
from controller.model.scaleset import ScaleSet, parse
from controller.state.regions import RegionStore

# Every table with rows about a scale set, and the column naming it (upgrade_instances go by
# their upgrade's id; profiles are shared by content and swept when nothing refers to them).
_SET_TABLES = (("health", "scale_set"), ("disk_swaps", "scale_set"), ("instances", "scale_set"),
               ("rolling_upgrades", "scale_set"), ("scale_sets", "name"))


def _not_found(name: str) -> ModelError:
    return ModelError("name", f"scale set '{name}' not found", "ResourceNotFound")


def _lost_race(name: str, generation: int | None) -> ModelError:
    return ModelError("name", f"scale set '{name}' was changed by another command since generation "
                              f"{generation} was read", "ConcurrentUpdate")


def corrupt(name: str, reason: str) -> ModelError:
    return ModelError(f"scale set '{name}'", f"the stored model {reason}; `scaleset delete` still removes the set",
                      "StateCorrupt")


def _parse_stored(name: str, text: str) -> ScaleSet:
    """The stored model, or StateCorrupt naming the set (never the document's values: secrets)."""
    try:
        return parse(json.loads(text))
    except json.JSONDecodeError as exc:
        reason = f"is not valid JSON ({exc.msg}, line {exc.lineno} column {exc.colno})"
    except LabError as exc:
        reason = f"no longer validates: {exc}"
    except Exception as exc:  # noqa: BLE001 - any other shape the parser trips over
        reason = f"cannot be read ({type(exc).__name__})"
    raise corrupt(name, reason)


def _settled(ss: ScaleSet, stored: ScaleSet | None) -> ScaleSet:
    """The read-only fields as the lab sets them, whatever the document says (ARM ignores read-only
    properties on a PUT): `uniqueId` made once at creation, the `id` (its resource group is where the
    set lives) fixed at creation, no stored `provisioningState` (computed from the instances)."""
    unique = (stored.properties.uniqueId if stored else None) or str(uuid.uuid4())
    props = dataclasses.replace(ss.properties, uniqueId=unique, provisioningState=None)
    ss = dataclasses.replace(ss, properties=props, id=stored.id if stored else ss.id)
    if stored:
        _no_shrinking(ss, stored)
        ss = _same_fault_domains(ss, stored)
    return ss


def _same_fault_domains(ss: ScaleSet, stored: ScaleSet) -> ScaleSet:
    """platformFaultDomainCount is set at creation only (as in Azure); a document without it keeps it."""
    was, now = stored.properties.platformFaultDomainCount, ss.properties.platformFaultDomainCount
    if now is None:
        return dataclasses.replace(ss, properties=dataclasses.replace(ss.properties, platformFaultDomainCount=was))
    if now != was:
        raise ModelError(FD_COUNT, f"{now}: the fault-domain count is fixed when a scale set is created "
                                   f"(it is {was if was is not None else 'the default'})", "PropertyChangeNotAllowed")
    return ss


def _placeable(db: sqlite3.Connection, ss: ScaleSet) -> None:
    """The model's fault domains fit its location's region (inside the writer's transaction)."""
    region = RegionStore(db).configured(ss.location)
    if region is not None:
        check_fault_domains(ss, region)


def _no_shrinking(ss: ScaleSet, stored: ScaleSet) -> None:
    """A data disk grows (qcow2 resize, at the instance's next new OS disk) but never shrinks, as in Azure."""
    was = {d.lun: d.diskSizeGB for d in stored.properties.virtualMachineProfile.storageProfile.dataDisks}
    for i, d in enumerate(ss.properties.virtualMachineProfile.storageProfile.dataDisks):
        if d.diskSizeGB < was.get(d.lun, 0):
            raise ModelError(f"$.properties.virtualMachineProfile.storageProfile.dataDisks[{i}].diskSizeGB",
                             f"{d.diskSizeGB} is smaller than LUN {d.lun}'s {was[d.lun]} GB: a disk cannot "
                             "shrink (remove the LUN and add a new one)", "OperationNotAllowed")


class ScaleSetStore:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def create(self, document: dict) -> ScaleSet:
        ss = _settled(parse(document), None)
        with transaction(self.db):
            if self.db.execute("SELECT 1 FROM scale_sets WHERE name=?", (ss.name,)).fetchone():
                raise ModelError("$.name", f"scale set '{ss.name}' already exists", "Conflict")
            _placeable(self.db, ss)
            now = now_iso()
            self.db.execute("INSERT INTO scale_sets VALUES (?,?,?,?,?)",
                            (ss.name, json.dumps(ss.to_json()), 1, now, now))
        return ss

    def get(self, name: str, shared: dict[str, ScaleSet] | None = None) -> ScaleSet:
        """The model. `shared`: a cache the caller keeps (model text -> ScaleSet, read-only)."""
        row = self.db.execute("SELECT name, model FROM scale_sets WHERE name=?", (name,)).fetchone()
        if row is None:
            raise _not_found(name)
        if shared is not None and row["model"] in shared:
            return shared[row["model"]]
        ss = _parse_stored(row["name"], row["model"])
        if shared is not None:
            shared.clear()
            shared[row["model"]] = ss
        return ss

    def read(self, name: str) -> tuple[ScaleSet, int]:
        """The model and its generation, read together (the base of a compare-and-swap write)."""
        row = self.db.execute("SELECT name, model, generation FROM scale_sets WHERE name=?", (name,)).fetchone()
        if row is None:
            raise _not_found(name)
        return _parse_stored(row["name"], row["model"]), int(row["generation"])

    def generation(self, name: str) -> int:
        row = self.db.execute("SELECT generation FROM scale_sets WHERE name=?", (name,)).fetchone()
        if row is None:
            raise _not_found(name)
        return int(row["generation"])

    def stored_name(self, name: str) -> str | None:
        """The name as stored (names match without regard to case); None without a model row."""
        row = self.db.execute("SELECT name FROM scale_sets WHERE name=?", (name,)).fetchone()
        return row["name"] if row else None

    def scan(self) -> tuple[list[ScaleSet], list[ModelError]]:
        """Every model that reads, and a StateCorrupt error for each one that does not."""
        good, bad = self._scan()
        return [ss for ss, _ in good], bad

    def _scan(self) -> tuple[list[tuple[ScaleSet, int]], list[ModelError]]:
        good, bad = [], []
        for r in self.db.execute("SELECT name, model, generation FROM scale_sets ORDER BY name"):
            try:
                good.append((_parse_stored(r["name"], r["model"]), int(r["generation"])))
            except ModelError as exc:
                bad.append(exc)
        return good, bad

    def list(self) -> list[ScaleSet]:
        """The models that read (scan() names the others)."""
        return self.scan()[0]

    def versions(self) -> list[tuple[ScaleSet, int]]:
        """The models that read, each with its generation (read together, as read() does)."""
        return self._scan()[0]

    def replace(self, document: dict, generation: int | None = None) -> ScaleSet:
        """Write a whole new model (validated first); the name cannot change. `generation`: the
        one the document was based on; if another write came in between, ConcurrentUpdate
        (None writes unconditionally: only for a caller that owns the lab, like a test)."""
        ss = parse(document)
        with transaction(self.db):
            row = self.db.execute("SELECT name, model, generation FROM scale_sets WHERE name=?",
                                  (ss.name,)).fetchone()
            if row is None:
                raise _not_found(ss.name)
            if generation is not None and int(row["generation"]) != generation:
                raise _lost_race(ss.name, generation)
            try:
                stored = _parse_stored(row["name"], row["model"])
            except LabError:  # a damaged model is replaced whole
                stored = None
            ss = _settled(ss, stored)
            _placeable(self.db, ss)
            q, args = "UPDATE scale_sets SET model=?, generation=generation+1, updated_at=? WHERE name=?", \
                [json.dumps(ss.to_json()), now_iso(), ss.name]
            if generation is not None:
                q, args = q + " AND generation=?", args + [generation]
            if self.db.execute(q, args).rowcount == 0:
                if self.stored_name(ss.name) is None:
                    raise _not_found(ss.name)
                raise _lost_race(ss.name, generation)
        return ss

    def delete(self, name: str) -> None:
        """The model and every row about the set (health, journal, instances, upgrades), in one
        transaction, whether or not the model still reads."""
        with transaction(self.db):
            self.db.execute("DELETE FROM upgrade_instances WHERE upgrade_id IN "
                            "(SELECT id FROM rolling_upgrades WHERE scale_set=?)", (name,))
            for table, column in _SET_TABLES:
                self.db.execute(f"DELETE FROM {table} WHERE {column}=?", (name,))
            self.db.execute("DELETE FROM profiles WHERE ref NOT IN (SELECT profile FROM instances UNION "
                            "SELECT old_profile FROM disk_swaps UNION SELECT new_profile FROM disk_swaps)")
