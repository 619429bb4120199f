"""Numeric functions on ARM's 64-bit integers: add, sub, mul, div (truncating toward zero, as
.NET), mod (the sign of the dividend, as .NET), int, min, max (ARM's reference, "Numeric
functions"). A result beyond 64 bits is an error, as ARM's checked arithmetic."""
from __future__ import annotations

import re
from typing import Any

from controller.template.errors import FunctionError
from controller.template.functions import Arg, function, type_name
from controller.template.functions._common import INT_MIN, checked, is_int

_INTEGER = re.compile(r"\s*[+-]?\d+\s*")


@function("add", 2, 2)
def add(a: Any, b: Any) -> int:
    return checked("add", Arg.int("add", a, 0) + Arg.int("add", b, 1))


@function("sub", 2, 2)
def sub(a: Any, b: Any) -> int:
    return checked("sub", Arg.int("sub", a, 0) - Arg.int("sub", b, 1))


@function("mul", 2, 2)
def mul(a: Any, b: Any) -> int:
    return checked("mul", Arg.int("mul", a, 0) * Arg.int("mul", b, 1))


@function("div", 2, 2)
def div(a: Any, b: Any) -> int:
    a, b = Arg.int("div", a, 0), _divisor("div", b)
    q = abs(a) // abs(b)
    return checked("div", q if (a < 0) == (b < 0) else -q)


@function("mod", 2, 2)
def mod(a: Any, b: Any) -> int:
    a, b = Arg.int("mod", a, 0), _divisor("mod", b)
    if a == INT_MIN and b == -1:  # .NET: long.MinValue % -1 overflows
        raise FunctionError("mod: the result overflows a 64-bit integer")
    r = abs(a) % abs(b)
    return -r if a < 0 else r


def _divisor(fn: str, b: Any) -> int:
    if Arg.int(fn, b, 1) == 0:
        raise FunctionError(f"{fn}: division by zero")
    return b


@function("int", 1, 1)
def int_(value: Any) -> int:
    """An integer from an integer or a string of decimal digits."""
    if is_int(value):
        return checked("int", value)
    if isinstance(value, str) and _INTEGER.fullmatch(value):
        return checked("int", int(value))
    shown = f"'{value[:40]}'" if isinstance(value, str) else type_name(value)
    raise FunctionError(f"int: {shown} cannot be converted to an integer")


@function("min", 1, None)
def min_(*args: Any) -> int:
    """The smallest of integers given one by one or in arrays."""
    return min(_integers("min", args))


@function("max", 1, None)
def max_(*args: Any) -> int:
    """The largest of integers given one by one or in arrays."""
    return max(_integers("max", args))


def _integers(fn: str, args: tuple) -> list[int]:
    out = []
    for i, a in enumerate(args):
        for x in a if isinstance(a, list) else [a]:
            if not is_int(x):
                raise FunctionError(f"{fn}: argument {i + 1} must be an integer or an array of integers, "
                                    f"not {type_name(x)}")
            out.append(x)
    if not out:
        raise FunctionError(f"{fn}: there are no integers to compare")
    return out
