"""Image version strings: MAJOR.MINOR.PATCH (Azure's rule), ordered numerically.

`1.10.0` > `1.9.0`, and Azure marketplace versions such as `2016.127.20180613` order
the same way. `latest` is resolved by the gallery, not here.
"""
from __future__ import annotations

import re

from controller.core.errors import ImageError

_VERSION = re.compile(r"(0|[1-9][0-9]{0,9})\.(0|[1-9][0-9]{0,9})\.(0|[1-9][0-9]{0,9})")
_MAX_PART = 2**31 - 1
LATEST = "latest"


def parse_version(text: str, field: str = "version") -> tuple[int, int, int]:
    """Return the numeric key of a version, or raise ImageError naming `field`."""
    if not isinstance(text, str) or not _VERSION.fullmatch(text):
        shown = (text if text.isprintable() else repr(text)[1:-1])[:40] if isinstance(text, str) else type(text).__name__
        raise ImageError(
            field,
            f"'{shown}' is malformed: expected MAJOR.MINOR.PATCH of non-negative integers "
            "without leading zeros (e.g. 1.0.0 or 2016.127.20180613)",
            "InvalidImageVersion",
        )
    parts = tuple(int(p) for p in text.split("."))
    if any(p > _MAX_PART for p in parts):
        raise ImageError(field, f"'{text}' has a part above {_MAX_PART}", "InvalidImageVersion")
    return parts  # type: ignore[return-value]

