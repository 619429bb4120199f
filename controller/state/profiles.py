"""Applied VM profiles, stored once by content: instances and journalled swaps refer to them.

A scale set's instances share one profile (a model change or a new image version makes
another), so a row carries a short reference ("sha256:...") instead of the JSON itself:
a batch of a thousand instances writes kilobytes, not megabytes. Rows written before this
hold the JSON inline, which still reads.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
from functools import lru_cache

_DUMPED: dict[int, tuple[dict, str, str]] = {}
_LOADED: dict[str, dict] = {}


def _dumped(profile: dict) -> tuple[str, str]:
    """(JSON text, reference); a batch shares one profile dict, so it is encoded once."""
    hit = _DUMPED.get(id(profile))
    if hit is not None and hit[0] is profile:
        return hit[1], hit[2]
    if len(_DUMPED) > 64:
        _DUMPED.clear()
    text = json.dumps(profile, sort_keys=True)
    ref = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    _DUMPED[id(profile)] = (profile, text, ref)
    return text, ref


def dump_profile(profile: dict) -> str:
    return _dumped(profile)[0]


def keep_profiles(db: sqlite3.Connection, profiles: list[dict]) -> list[str]:
    """Store each distinct profile (inside the caller's transaction); their references, in order."""
    refs, new = [], {}
    for p in profiles:
        text, ref = _dumped(p)
        refs.append(ref)
        new[ref] = text
    db.executemany("INSERT OR IGNORE INTO profiles (ref, profile) VALUES (?,?)", new.items())
    return refs


@lru_cache(maxsize=256)
def _inline(text: str) -> dict:
    return json.loads(text)


def load_profile(db: sqlite3.Connection, value: str) -> dict:
    """The profile a row refers to (parsed once per process and shared: read-only)."""
    if value.startswith("{"):  # written inline by an older lab
        return _inline(value)
    hit = _LOADED.get(value)
    if hit is None:
        row = db.execute("SELECT profile FROM profiles WHERE ref=?", (value,)).fetchone()
        if row is None:
            raise LookupError(f"profile {value} is missing from the database")
        if len(_LOADED) > 256:
            _LOADED.clear()
        hit = _LOADED[value] = json.loads(row[0])
    return hit
