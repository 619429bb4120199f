"""Logical functions: if (evaluates only the branch it takes), and, or (stop at the first
argument that decides), not, true, false, bool (ARM's reference, "Logical functions")."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from controller.template.errors import FunctionError
from controller.template.functions import function, type_name
from controller.template.functions._common import is_int, want_bool

Thunk = Callable[[], Any]


@function("if", 3, 3, lazy=True)
def if_(condition: Thunk, when_true: Thunk, when_false: Thunk) -> Any:
    return when_true() if want_bool("if", condition(), 0) else when_false()


@function("and", 2, None, lazy=True)
def and_(*args: Thunk) -> bool:
    for i, arg in enumerate(args):
        if not want_bool("and", arg(), i):
            return False
    return True


@function("or", 2, None, lazy=True)
def or_(*args: Thunk) -> bool:
    for i, arg in enumerate(args):
        if want_bool("or", arg(), i):
            return True
    return False


@function("not", 1, 1)
def not_(value: Any) -> bool:
    return not want_bool("not", value, 0)


@function("true", 0, 0)
def true() -> bool:
    return True


@function("false", 0, 0)
def false() -> bool:
    return False


@function("bool", 1, 1)
def bool_(value: Any) -> bool:
    """A boolean from a boolean, a string 'true'/'false' (any case) or an integer (0 is false)."""
    if isinstance(value, bool):
        return value
    if is_int(value):
        return value != 0
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    shown = f"'{value[:40]}'" if isinstance(value, str) else type_name(value)
    raise FunctionError(f"bool: {shown} is not a boolean: give true, false, 'true', 'false', 0 or 1")
