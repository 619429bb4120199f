"""Helpers the function modules share: ARM's 64-bit integers, deep equality, .NET's text of a
scalar and Newtonsoft's compact JSON (what `string()` and `concat()` print)."""
from __future__ import annotations

import json
from typing import Any

from controller.template.errors import FunctionError
from controller.template.functions import type_name

INT_MIN, INT_MAX = -(1 << 63), (1 << 63) - 1
MAX_TEXT = 1 << 20  # the longest string a function builds (ARM bounds its literals too)


def checked(fn: str, value: int) -> int:
    """`value` if it fits ARM's 64-bit integers, else FunctionError (ARM's checked arithmetic)."""
    if not INT_MIN <= value <= INT_MAX:
        raise FunctionError(f"{fn}: the result overflows a 64-bit integer")
    return value


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def same(a: Any, b: Any) -> bool:
    """ARM's deep equality (Newtonsoft's DeepEquals): types must agree (1 is not true nor "1"),
    objects compare by key regardless of order, arrays element by element."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if type(a) is not type(b) and not (isinstance(a, (int, float)) and isinstance(b, (int, float))):
        return False
    return a == b


def unique(items: list) -> list:
    """`items` without later duplicates (deep equality), in order."""
    out: list = []
    for item in items:
        if not any(same(item, seen) for seen in out):
            out.append(item)
    return out


def to_json(value: Any) -> str:
    """Compact JSON as Newtonsoft writes it (Formatting.None): no spaces, non-ASCII kept."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def text(value: Any) -> str:
    """A scalar as .NET prints it: booleans `True`/`False`, null empty, arrays and objects as JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (list, dict)):
        return to_json(value)
    return str(value)


def bounded(fn: str, value: str) -> str:
    if len(value) > MAX_TEXT:
        raise FunctionError(f"{fn}: the result is longer than {MAX_TEXT} characters")
    return value


def want_bool(fn: str, value: Any, index: int) -> bool:
    if not isinstance(value, bool):
        raise FunctionError(f"{fn}: argument {index + 1} must be a boolean, not {type_name(value)}")
    return value
