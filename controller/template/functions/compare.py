"""Comparison functions: equals (deep, type-aware), less, lessOrEquals, greater,
greaterOrEquals (integers, or strings in the invariant culture's order), coalesce (ARM's
reference, "Comparison functions")."""
from __future__ import annotations

from typing import Any

from controller.template.errors import FunctionError
from controller.template.functions import function, type_name
from controller.template.functions._common import is_int, same


@function("equals", 2, 2)
def equals(a: Any, b: Any) -> bool:
    return same(a, b)


@function("less", 2, 2)
def less(a: Any, b: Any) -> bool:
    return _order("less", a, b) < 0


@function("lessOrEquals", 2, 2)
def less_or_equals(a: Any, b: Any) -> bool:
    return _order("lessOrEquals", a, b) <= 0


@function("greater", 2, 2)
def greater(a: Any, b: Any) -> bool:
    return _order("greater", a, b) > 0


@function("greaterOrEquals", 2, 2)
def greater_or_equals(a: Any, b: Any) -> bool:
    return _order("greaterOrEquals", a, b) >= 0


def _order(fn: str, a: Any, b: Any) -> int:
    if is_int(a) and is_int(b):
        return (a > b) - (a < b)
    if isinstance(a, str) and isinstance(b, str):
        ka, kb = culture_key(a), culture_key(b)
        return (ka > kb) - (ka < kb)
    raise FunctionError(f"{fn}: the arguments must be two integers or two strings, "
                        f"not {type_name(a)} and {type_name(b)}")


def culture_key(s: str) -> tuple[str, str]:
    """.NET's invariant-culture order, near enough: letters compare without case first, then a
    lower-case letter comes before its upper-case form ('a' < 'A' < 'b')."""
    return s.casefold(), s.swapcase()


@function("coalesce", 1, None)
def coalesce(*args: Any) -> Any:
    """The first argument that is not null (null when all are)."""
    return next((a for a in args if a is not None), None)
