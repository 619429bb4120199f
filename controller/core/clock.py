"""Time stamps the lab writes: UTC, ISO 8601, to the second."""
from __future__ import annotations

import time
from datetime import datetime, timezone

_NOW: tuple[int, str] = (0, "")


def now_iso() -> str:
    """UTC now, to the second (formatted once per second: a batch stamps hundreds of rows)."""
    global _NOW
    t = int(time.time())
    if t != _NOW[0]:
        _NOW = (t, datetime.fromtimestamp(t, timezone.utc).isoformat())
    return _NOW[1]
