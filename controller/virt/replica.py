"""Replication of one image version to one host's pool, verified on the far side.

`replicate(pool, name, src, sha256)` uploads `src` as volume `name` unless the pool already holds
it with that checksum (a copy with another checksum is deleted and uploaded again), then hashes
the bytes the far side reads back. Only a match is `Completed`; a mismatch deletes the copy.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from controller.core.errors import LabError
from controller.virt.storage import Pool

State = Literal["Completed", "Failed"]  # Azure's replicationStatus words (Replicating: under way)


@dataclass(frozen=True)
class Replica:
    """What `replicate` did on one host: Azure's state, a reason, the bytes sent and the time taken."""
    uri: str
    pool: str
    volume: str
    state: State
    details: str
    seconds: float  # in all: checksum of a copy found, upload, far-side checksum
    bytes: int  # bytes uploaded (0: the copy there was good)
    upload_seconds: float = 0.0

    @property
    def mb_per_s(self) -> float:
        """Upload throughput in MB/s (10^6 bytes), 0 without an upload."""
        return self.bytes / 1e6 / self.upload_seconds if self.bytes and self.upload_seconds else 0.0


def replicate(pool: Pool, name: str, src: Path, sha256: str) -> Replica:
    """Make volume `name` in `pool` a verified copy of `src` (whose sha256 is `sha256`)."""
    t0 = time.monotonic()
    sent, up, replaced = 0, 0.0, ""

    def done(state: State, details: str) -> Replica:
        return Replica(pool.uri, pool.name, name, state, details, time.monotonic() - t0, sent, up)

    try:
        found = pool.volume(name)
        if found is not None:
            there = pool.sha256(name)
            if there == sha256:
                return done("Completed", f"already there, sha256 {sha256} verified on the far side")
            pool.delete(name)
            replaced = f"; replaced a copy whose sha256 was {there}"
        t1 = time.monotonic()
        vol = pool.upload(name, src)
        up, sent = time.monotonic() - t1, src.stat().st_size
        if vol.format != "qcow2":
            pool.delete(name)
            return done("Failed", f"the far side reads the upload as {vol.format or 'no format'}, not qcow2; "
                                  "deleted it")
        there = pool.sha256(name)
    except LabError as exc:
        return done("Failed", str(exc))
    if there != sha256:
        try:
            pool.delete(name)
        except LabError as exc:
            return done("Failed", f"sha256 on the far side is {there}, expected {sha256}; and the bad copy "
                                  f"stays: {exc}")
        return done("Failed", f"sha256 on the far side is {there}, expected {sha256} (the source file or the "
                              "transfer is bad); deleted the copy")
    return done("Completed", f"uploaded {sent} bytes, sha256 verified on the far side{replaced}")
