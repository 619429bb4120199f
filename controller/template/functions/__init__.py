"""The table of ARM template functions: one Python function per ARM function, registered by
name (case-insensitive, as ARM's). Modules of this package register on import.

Values are plain JSON values: str, int (64-bit; ARM has no floats in expressions), bool, None,
list, dict. A function gets its evaluated arguments (`fn(*args)`); with `scope=True` it gets the
evaluation scope first (`fn(scope, *args)`: parameters, variables, copy indexes, the deployment's
environment); with `lazy=True` each argument is a zero-argument callable that evaluates it (so
`if` evaluates only the branch it takes). Bad arguments raise FunctionError with the reason."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from controller.template.errors import FunctionError


@dataclass(frozen=True)
class Function:
    name: str  # as ARM's reference spells it
    fn: Callable[..., Any]
    min_args: int
    max_args: int | None  # None: any number
    scope: bool = False
    lazy: bool = False


FUNCTIONS: dict[str, Function] = {}  # lower-case name -> Function


def function(name: str, min_args: int = 0, max_args: int | None = None, *, scope: bool = False,
             lazy: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register `fn` as the ARM function `name` taking min_args..max_args arguments."""
    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        key = name.lower()
        if key in FUNCTIONS:
            raise ValueError(f"template function {name} registered twice")
        FUNCTIONS[key] = Function(name, fn, min_args, max_args, scope, lazy)
        return fn
    return register


def lookup(name: str) -> Function:
    """The function `name` (any case), or FunctionError naming it."""
    found = FUNCTIONS.get(name.lower())
    if found is None:
        raise FunctionError(f"the template function '{name[:80]}' is not valid")
    return found


def check_arity(fn: Function, count: int) -> None:
    if count < fn.min_args or (fn.max_args is not None and count > fn.max_args):
        want = str(fn.min_args) if fn.min_args == fn.max_args else \
            f"{fn.min_args} to {fn.max_args}" if fn.max_args is not None else f"at least {fn.min_args}"
        raise FunctionError(f"the template function '{fn.name}' takes {want} argument(s), got {count}")


def load_all() -> None:
    """Import every module of the table (each registers its functions)."""
    import importlib
    import pkgutil
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")


@dataclass(frozen=True)
class Arg:
    """Type checks for function bodies: ARM's names for the types in its messages."""

    @staticmethod
    def str(fn: str, value: Any, index: int) -> str:
        if not isinstance(value, str):
            raise FunctionError(f"{fn}: argument {index + 1} must be a string, not {type_name(value)}")
        return value

    @staticmethod
    def int(fn: str, value: Any, index: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise FunctionError(f"{fn}: argument {index + 1} must be an integer, not {type_name(value)}")
        return value

    @staticmethod
    def list(fn: str, value: Any, index: int) -> list:
        if not isinstance(value, list):
            raise FunctionError(f"{fn}: argument {index + 1} must be an array, not {type_name(value)}")
        return value

    @staticmethod
    def dict(fn: str, value: Any, index: int) -> dict:
        if not isinstance(value, dict):
            raise FunctionError(f"{fn}: argument {index + 1} must be an object, not {type_name(value)}")
        return value


def type_name(value: Any) -> str:
    """ARM's name of a value's type: String, Integer, Boolean, Array, Object, Null."""
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "Boolean"
    return {str: "String", int: "Integer", list: "Array", dict: "Object"}.get(type(value), type(value).__name__)
