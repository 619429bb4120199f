"""Instance records in SQLite: rows <-> Instance, and the live set an upgrade keeps."""
from __future__ import annotations

import json
import sqlite3
from functools import lru_cache
from operator import itemgetter

from controller.core.clock import now_iso
from controller.core.errors import ModelError
from controller.core.txn import transaction
from controller.model.instance import Instance
from controller.state.profiles import keep_profiles, load_profile

_COLS = ("scale_set", "instance_id", "domain", "computer_name", "update_domain", "fault_domain", "profile",
         "profile_digest", "os_disk", "seed", "ci_instance_id", "ports", "provisioning_state", "power_state",
         "boot_id", "stamp", "extensions", "error", "created_at", "updated_at", "protect_from_scale_in",
         "protect_from_scale_set_actions", "host_uri", "host_pool")


def _to_row(inst: Instance, profile_ref: str) -> tuple:
    """The row of an instance, in _COLS order (its profile stored apart: keep_profiles)."""
    return (inst.scale_set, inst.instance_id, inst.domain, inst.computer_name, inst.update_domain,
            inst.fault_domain, profile_ref, inst.profile_digest, inst.os_disk, inst.seed, inst.ci_instance_id,
            json.dumps({str(k): p for k, p in inst.ports.items()}), inst.provisioning_state, inst.power_state,
            inst.boot_id, json.dumps(inst.stamp), json.dumps(inst.extensions), inst.error, inst.created_at,
            inst.updated_at, int(inst.protect_from_scale_in), int(inst.protect_from_scale_set_actions),
            inst.host_uri, inst.host_pool)


@lru_cache(maxsize=256)
def _shared(text: str):
    """Many instances carry the same stamp text: parse it once (read-only)."""
    return json.loads(text)


_IDX = {c: i for i, c in enumerate(_COLS)}
# a save leaves these alone (an instance never moves to another host); the protection is the user's: only set_protection() writes it, so
# the VM work (an upgrade holding an older copy of the row) never undoes a change made meanwhile
_FIXED = ("scale_set", "instance_id", "domain", "computer_name", "update_domain", "fault_domain", "created_at",
          "protect_from_scale_in", "protect_from_scale_set_actions", "host_uri", "host_pool")
_MUTABLE = itemgetter(*(_IDX[c] for c in _COLS if c not in _FIXED))
_UPDATE = (f"UPDATE instances SET {','.join(f'{c}=?' for c in _COLS if c not in _FIXED)} "
           "WHERE scale_set=? AND instance_id=?")
_SELECT = f"SELECT {','.join(_COLS)} FROM instances"


def _from_row(db: sqlite3.Connection, r: tuple) -> Instance:
    """From a row of _SELECT (positional: this runs for every instance of every listing)."""
    v = list(r)
    v[_IDX["profile"]] = load_profile(db, v[_IDX["profile"]])
    v[_IDX["ports"]] = {int(k): int(p) for k, p in json.loads(v[_IDX["ports"]]).items()}
    v[_IDX["stamp"]] = _shared(v[_IDX["stamp"]]) if v[_IDX["stamp"]] else {}
    v[_IDX["extensions"]] = json.loads(v[_IDX["extensions"]]) if v[_IDX["extensions"]] else []
    v[_IDX["protect_from_scale_in"]] = bool(v[_IDX["protect_from_scale_in"]])
    v[_IDX["protect_from_scale_set_actions"]] = bool(v[_IDX["protect_from_scale_set_actions"]])
    return Instance(*v)


class InstanceStore:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def list(self, scale_set: str, ids: list[int] | None = None) -> list[Instance]:
        """The scale set's instances (only `ids`, when given), by id."""
        q, args = f"{_SELECT} WHERE scale_set=?", [scale_set]
        if ids is not None:
            q += f" AND instance_id IN ({','.join('?' * len(ids))})"
            args += ids
        cur = self.db.cursor()
        cur.row_factory = None  # plain tuples: cheaper than sqlite3.Row for a thousand rows
        return [_from_row(self.db, r) for r in cur.execute(q + " ORDER BY instance_id", args)]

    def get(self, scale_set: str, instance_id: int) -> Instance:
        r = self.db.execute(f"{_SELECT} WHERE scale_set=? AND instance_id=?",
                            (scale_set, instance_id)).fetchone()
        if r is None:
            raise ModelError("--instance-id", f"instance {instance_id} of scale set '{scale_set}' not found",
                             "NotFound")
        return _from_row(self.db, r)

    def insert(self, inst: Instance) -> None:
        inst.created_at = inst.updated_at = now_iso()
        with transaction(self.db):
            ref = keep_profiles(self.db, [inst.profile])[0]
            self.db.execute(f"INSERT INTO instances ({','.join(_COLS)}) VALUES ({','.join('?' * len(_COLS))})",
                            _to_row(inst, ref))

    def save(self, inst: Instance) -> None:
        self.save_many([inst])

    def save_many(self, insts: list[Instance]) -> None:
        """Write these instances back, in one transaction (the columns that can change)."""
        now = now_iso()
        with transaction(self.db):
            refs = keep_profiles(self.db, [i.profile for i in insts])
            for inst in insts:
                inst.updated_at = now
            rows = [_to_row(i, r) for i, r in zip(insts, refs, strict=True)]
            self.db.executemany(_UPDATE, [_MUTABLE(row) + (i.scale_set, i.instance_id)
                                          for i, row in zip(insts, rows, strict=True)])

    def set_state(self, scale_set: str, ids: list[int], provisioning_state: str) -> None:
        """One statement for many instances (a batch starting)."""
        with transaction(self.db):
            self.db.execute(f"UPDATE instances SET provisioning_state=?, updated_at=? WHERE scale_set=? AND "
                            f"instance_id IN ({','.join('?' * len(ids))})", [provisioning_state, now_iso(),
                                                                             scale_set, *ids])

    def set_protection(self, scale_set: str, instance_id: int, scale_in: bool, set_actions: bool) -> Instance:
        """The instance's protectionPolicy (one statement; the rest of the row untouched)."""
        with transaction(self.db):
            cur = self.db.execute("UPDATE instances SET protect_from_scale_in=?, protect_from_scale_set_actions=?, "
                                  "updated_at=? WHERE scale_set=? AND instance_id=?",
                                  (int(scale_in), int(set_actions), now_iso(), scale_set, instance_id))
        if cur.rowcount != 1:
            self.get(scale_set, instance_id)  # NotFound, named
        return self.get(scale_set, instance_id)

    def delete(self, scale_set: str, instance_id: int) -> None:
        with transaction(self.db):
            self.db.execute("DELETE FROM instances WHERE scale_set=? AND instance_id=?", (scale_set, instance_id))

    def remnants(self, scale_set: str) -> list[tuple[str, str, str]]:
        """(domain, OS disk, seed) of each instance row, read without parsing the rest (a delete)."""
        return [tuple(r) for r in self.db.execute("SELECT domain, os_disk, seed FROM instances WHERE scale_set=?",
                                                  (scale_set,))]

    def host_pools(self, scale_set: str) -> list[tuple[str | None, str | None]]:
        """The (host URI, pool) pairs the set's instances live on (None, None: local), each once."""
        return [(r[0], r[1]) for r in self.db.execute(
            "SELECT DISTINCT host_uri, host_pool FROM instances WHERE scale_set=?", (scale_set,))]

    def remote_domains(self) -> dict[str, str]:
        """domain -> host URI of every instance that lives on a host other than the local one."""
        return dict(self.db.execute("SELECT domain, host_uri FROM instances WHERE host_uri IS NOT NULL").fetchall())

    def images_in_use(self) -> set[tuple[str, str, str, str]]:
        """Every image version an instance's OS disk (or a kept rollback disk) is built on."""
        used = set()
        for r in self.db.execute("SELECT profile FROM instances UNION ALL "
                                 "SELECT old_profile FROM disk_swaps WHERE phase NOT IN ('done','aborted')"):
            profile = load_profile(self.db, r[0])
            if "vm" not in profile:  # a creation has no old disk
                continue
            ref = profile["vm"]["storageProfile"]["imageReference"]
            used.add((ref["publisher"].lower(), ref["offer"].lower(), ref["sku"].lower(), ref["version"]))
        return used


class LiveSet:
    """A scale set's instances kept between the batches of an upgrade (read-only objects).

    Listed whole once; after that only the rows this process rewrote are read again
    (`changed`), unless another connection wrote to the database (PRAGMA data_version), which
    lists the whole set again.
    """

    def __init__(self, store: InstanceStore, scale_set: str) -> None:
        self.store, self.scale_set = store, scale_set
        self._by_id: dict[int, Instance] | None = None
        self._version = -1

    def instances(self) -> list[Instance]:
        version = self.store.db.execute("PRAGMA data_version").fetchone()[0]
        if self._by_id is None or version != self._version:
            self._by_id = {i.instance_id: i for i in self.store.list(self.scale_set)}
            self._version = version
        return list(self._by_id.values())

    def changed(self, ids: list[int], saved: dict[int, Instance] | None = None) -> None:
        """This process rewrote these rows: `saved` holds the objects it wrote; the other rows
        are read again (or dropped: deleted)."""
        if self._by_id is None or not ids:
            return
        saved = saved or {}
        reread = [i for i in ids if i not in saved]
        for iid in reread:
            self._by_id.pop(iid, None)
        self._by_id.update(saved)
        if reread:
            self._by_id.update((i.instance_id, i) for i in self.store.list(self.scale_set, reread))
        self._by_id = dict(sorted(self._by_id.items()))
