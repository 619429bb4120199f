"""What the CLI takes from users besides the model: flag values and the files flags name,
checked and bounded; errors name the flag and never echo what was read."""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from controller.core.errors import ModelError

_TRUE, _FALSE = ("true", "yes", "1"), ("false", "no", "0")


def boolean(text: str) -> bool:
    """argparse type: true/false (also yes/no, 1/0), any case; anything else is a usage error."""
    low = text.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"'{text[:40]}' is not true or false")


def check_range(flag: str, value: int, lo: int, hi: int) -> int:
    if not lo <= value <= hi:
        raise ModelError(flag, f"{value} is out of range ({lo}..{hi})")
    return value


def check_seconds(flag: str, value: float, lo: float = 0.1, hi: float = 3600.0) -> float:
    """A number of seconds to sleep: finite and within [lo, hi]."""
    if not math.isfinite(value) or not lo <= value <= hi:
        raise ModelError(flag, f"{value} is not a number of seconds from {lo:g} to {hi:g}")
    return value


def read_file(name: str, flag: str, limit: int) -> bytes:
    """At most `limit` bytes of the file a flag names (/dev/zero cannot flood memory)."""
    path = Path(name)
    try:
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise ModelError(flag, f"cannot read {name[:200]}: {exc.strerror or type(exc).__name__}") from None
    except ValueError:  # a NUL in the name
        raise ModelError(flag, "is not a usable file name") from None
    if len(data) > limit:
        raise ModelError(flag, f"{name[:200]} is larger than the limit of {limit} bytes")
    return data


def read_text(name: str, flag: str, limit: int) -> str:
    try:
        return read_file(name, flag, limit).decode("utf-8")
    except UnicodeDecodeError:
        raise ModelError(flag, f"{name[:200]} is not UTF-8 text") from None
