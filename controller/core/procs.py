"""Which process owns a journalled step, and whether it still lives."""
from __future__ import annotations

import os
from pathlib import Path

_OWN: dict[int, str] = {}


def process_tag(pid: int | None = None) -> str:
    """pid plus its start time: a recycled pid is not mistaken for a live owner."""
    if pid is None:
        pid = os.getpid()
        if pid not in _OWN:  # after a fork the pid differs: computed again
            _OWN[pid] = process_tag(pid)
        return _OWN[pid]
    try:
        start = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        start = "?"
    return f"{pid}:{start}"


def owner_alive(tag: str) -> bool:
    pid = int(tag.split(":", 1)[0])
    return Path(f"/proc/{pid}").exists() and process_tag(pid) == tag
