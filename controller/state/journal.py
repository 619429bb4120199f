"""OS-disk swaps (reimage, upgrade, rollback), journalled in SQLite before every step.

    prepared  new OS disk and seed written; the domain still has the old disk
    swapped   the domain was redefined on the new disk and started (not written by a rolling
              upgrade: a resume asks libvirt which disk is attached, as repair() does)
    done      the new disk booted and the instance row points at it; old disk deleted
    aborted   the swap was undone (or rolled back); new disk deleted, old disk in place

An extension-only update in place (ops/extupdate.py) is journalled the same way, with the same
disk and seed on both sides: `prepared`, then `done` (or `aborted`: the old profile kept).

The old OS disk is deleted only once its instance is settled on the new one, so a
killed process leaves either the old disk or the new one attached, and `repair()` finishes
the job. Data disks are never opened: only the domain definition names them.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, replace

from controller.core.clock import now_iso
from controller.core.errors import ModelError
from controller.core.procs import owner_alive, process_tag
from controller.core.txn import transaction
from controller.model.instance import Instance
from controller.state.instances import InstanceStore
from controller.state.profiles import keep_profiles, load_profile

RELEASED = "0:released"  # the owner of a released swap: no process (pid 0 is never a process's)


@dataclass
class Swap:
    id: int
    scale_set: str
    instance_id: int
    kind: str
    phase: str
    old_os_disk: str
    old_seed: str
    old_ci_instance_id: str
    old_profile: dict
    old_digest: str
    new_os_disk: str
    new_seed: str
    new_ci_instance_id: str
    new_profile: dict
    new_digest: str
    owner: str
    error: str | None = None

    @property
    def in_place(self) -> bool:
        """An extension-only update (ops/extupdate.py): the instance keeps its OS disk and seed."""
        return self.new_os_disk == self.old_os_disk


def _swap(db: sqlite3.Connection, r: sqlite3.Row) -> Swap:
    return Swap(r["id"], r["scale_set"], r["instance_id"], r["kind"], r["phase"], r["old_os_disk"], r["old_seed"],
                r["old_ci_instance_id"], load_profile(db, r["old_profile"]), r["old_digest"], r["new_os_disk"],
                r["new_seed"], r["new_ci_instance_id"], load_profile(db, r["new_profile"]), r["new_digest"],
                r["owner_pid"], r["error"])


class SwapJournal:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def begin(self, inst: Instance, kind: str, new: Instance) -> Swap:
        """Record the intent (refused while another live process works on the instance)."""
        return self.begin_many(kind, [(inst, new)])[0]

    def begin_many(self, kind: str, pairs: list[tuple[Instance, Instance]]) -> list[Swap]:
        """begin() for many instances in one transaction (one look at the open swaps)."""
        owner, started = process_tag(), now_iso()
        out = []
        with transaction(self.db):
            refs = keep_profiles(self.db, [p.profile for pair in pairs for p in pair])
            open_: dict[tuple[str, int], Swap] = {}
            for name in {inst.scale_set for inst, _ in pairs}:
                for s in self._open(name):
                    open_.setdefault((name, s.instance_id), s)
            for n, (inst, new) in enumerate(pairs):
                s = open_.get((inst.scale_set, inst.instance_id))
                if s is not None and owner_alive(s.owner) and s.owner != owner:
                    raise ModelError("--instance-ids", f"instance {inst.instance_id} is busy: a {s.kind} "
                                     f"(operation {s.id}, pid {s.owner.split(':')[0]}) is working on it",
                                     "OperationNotAllowed")
                if s is not None:
                    raise ModelError("--instance-ids", f"instance {inst.instance_id} has an unfinished {s.kind}; "
                                     "run `scaleset repair` first", "OperationNotAllowed")
                cur = self.db.execute(
                    "INSERT INTO disk_swaps (scale_set, instance_id, kind, phase, old_os_disk, old_seed, "
                    "old_ci_instance_id, old_profile, old_digest, new_os_disk, new_seed, new_ci_instance_id, "
                    "new_profile, new_digest, owner_pid, started_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (inst.scale_set, inst.instance_id, kind, "prepared", inst.os_disk, inst.seed,
                     inst.ci_instance_id, refs[2 * n], inst.profile_digest, new.os_disk, new.seed,
                     new.ci_instance_id, refs[2 * n + 1], new.profile_digest, owner, started))
                out.append(Swap(cur.lastrowid, inst.scale_set, inst.instance_id, kind, "prepared", inst.os_disk,
                                inst.seed, inst.ci_instance_id, inst.profile, inst.profile_digest, new.os_disk,
                                new.seed, new.ci_instance_id, new.profile, new.profile_digest, owner))
        return out

    def get(self, swap_id: int) -> Swap:
        return _swap(self.db, self.db.execute("SELECT * FROM disk_swaps WHERE id=?", (swap_id,)).fetchone())

    def set_phase(self, swap: Swap, phase: str, error: str | None = None) -> None:
        self.set_phases([swap], phase, error)

    def set_phases(self, swaps: list[Swap], phase: str, error: str | None = None) -> None:
        ended = now_iso() if phase in ("done", "aborted") else None
        with transaction(self.db):
            self.db.executemany("UPDATE disk_swaps SET phase=?, error=COALESCE(?, error), ended_at=? WHERE id=?",
                                [(phase, error, ended, s.id) for s in swaps])
        for s in swaps:
            s.phase = phase

    def _open(self, scale_set: str, instance_id: int | None = None) -> list[Swap]:
        q = "SELECT * FROM disk_swaps WHERE scale_set=? AND phase NOT IN ('done','aborted')"
        args: tuple = (scale_set,)
        if instance_id is not None:
            q += " AND instance_id=?"
            args += (instance_id,)
        return [_swap(self.db, r) for r in self.db.execute(q + " ORDER BY id", args)]

    def open_swaps(self, scale_set: str) -> list[Swap]:
        return self._open(scale_set)

    def orphans(self, scale_set: str) -> list[Swap]:
        """Unfinished swaps whose process is gone."""
        return [s for s in self._open(scale_set) if not owner_alive(s.owner)]

    def busy(self, scale_set: str) -> dict[int, Swap]:
        return {s.instance_id: s for s in self._open(scale_set) if owner_alive(s.owner)}

    def dead_files(self, scale_set: str) -> list[str]:
        """Disks that finished swaps left behind for deletion: the old side of a done swap, the
        new side of an aborted one (their names are never reused)."""
        rows = self.db.execute(
            "SELECT old_os_disk, old_seed FROM disk_swaps WHERE scale_set=? AND phase='done' AND "
            "old_os_disk IS NOT new_os_disk UNION ALL SELECT new_os_disk, new_seed FROM disk_swaps "
            "WHERE scale_set=? AND phase='aborted' AND old_os_disk IS NOT new_os_disk", (scale_set, scale_set))
        return [p for r in rows for p in r if p]

    def take_over(self, scale_set: str) -> None:
        """Make this process the owner of every unfinished swap of the set, so no other command
        finishes them (a delete stops them all); refused while a live process works on one."""
        me = process_tag()
        with transaction(self.db):
            for r in self.db.execute("SELECT id, kind, instance_id, owner_pid FROM disk_swaps WHERE scale_set=? "
                                     "AND phase NOT IN ('done','aborted')", (scale_set,)).fetchall():
                owner = str(r["owner_pid"])
                if owner != me and owner_alive(owner):
                    raise ModelError("--name", f"scale set '{scale_set}' is busy: a {r['kind']} of instance "
                                     f"{r['instance_id']} (operation {r['id']}, pid {owner.split(':')[0]}) is "
                                     "working on it; wait for it or stop that process", "OperationNotAllowed")
            self.db.execute("UPDATE disk_swaps SET owner_pid=? WHERE scale_set=? AND phase NOT IN ('done','aborted')",
                            (me, scale_set))

    def files(self, scale_set: str) -> list[str]:
        """Every OS disk and seed any swap of the set names, finished or not."""
        rows = self.db.execute("SELECT old_os_disk, old_seed, new_os_disk, new_seed FROM disk_swaps WHERE scale_set=?",
                               (scale_set,))
        return [p for r in rows for p in r if p]

    def claim(self, swap: Swap) -> None:
        with transaction(self.db):
            self.db.execute("UPDATE disk_swaps SET owner_pid=? WHERE id=?", (process_tag(), swap.id))

    def release(self, swap: Swap) -> None:
        """Leave an unfinished swap to whoever settles orphans next (`repair`, a controller
        started again): no live process owns it from now on."""
        with transaction(self.db):
            self.db.execute("UPDATE disk_swaps SET owner_pid=? WHERE id=?", (RELEASED, swap.id))


def new_side(inst: Instance, swap: Swap) -> Instance:
    return replace(inst, os_disk=swap.new_os_disk, seed=swap.new_seed, ci_instance_id=swap.new_ci_instance_id,
                   profile=swap.new_profile, profile_digest=swap.new_digest)


def old_side(inst: Instance, swap: Swap) -> Instance:
    return replace(inst, os_disk=swap.old_os_disk, seed=swap.old_seed, ci_instance_id=swap.old_ci_instance_id,
                   profile=swap.old_profile, profile_digest=swap.old_digest)


Remove = Callable[..., None]  # deletes the instance's disks at the paths given (ops: its host pool's volumes)


def record_new(db: sqlite3.Connection, journal: SwapJournal, settled: list[tuple[Swap, Instance]]) -> None:
    """The records of settle_new, for many instances (inside the caller's transaction)."""
    InstanceStore(db).save_many([inst for _, inst in settled])
    journal.set_phases([swap for swap, _ in settled], "done")


def drop_old(swap: Swap, remove: Remove) -> None:
    """The old disk of a recorded settle_new (a kill before this leaves it to sweep_dead)."""
    if swap.old_os_disk != swap.new_os_disk:
        remove(swap.old_os_disk, swap.old_seed)


def settle_new(db: sqlite3.Connection, journal: SwapJournal, swap: Swap, inst: Instance, remove: Remove) -> None:
    """The instance lives on the new disk from now on: record it, then drop the old disk."""
    with transaction(db):
        record_new(db, journal, [(swap, inst)])
    drop_old(swap, remove)


def settle_old(db: sqlite3.Connection, journal: SwapJournal, swap: Swap, inst: Instance, error: str | None,
               remove: Remove) -> None:
    """The instance stays on (or went back to) its old disk: drop the new one."""
    with transaction(db):
        InstanceStore(db).save(inst)
        journal.set_phase(swap, "aborted", error)
    if not swap.in_place:  # in place, the "new" disk is the one the instance keeps
        remove(swap.new_os_disk, swap.new_seed)
