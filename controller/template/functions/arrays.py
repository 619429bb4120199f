"""Array functions (most take strings and objects too): array, createArray, length, empty,
contains, first, last, take, skip, range, flatten, union, intersection (ARM's reference, "Array
functions" and "Object functions")."""
from __future__ import annotations

from typing import Any

from controller.template.errors import FunctionError
from controller.template.functions import Arg, function, type_name
from controller.template.functions._common import is_int, same, unique

MAX_RANGE = 10000  # ARM's limit on range()'s count


@function("array", 1, 1)
def array(value: Any) -> list:
    """An array as it is; any other value as an array of one."""
    return value if isinstance(value, list) else [value]


@function("createArray", 0, None)
def create_array(*items: Any) -> list:
    return list(items)


@function("flatten", 1, 1)
def flatten(value: Any) -> list:
    """An array of arrays as one array (one level)."""
    out: list = []
    for i, item in enumerate(Arg.list("flatten", value, 0)):
        if not isinstance(item, list):
            raise FunctionError(f"flatten: element {i} must be an array, not {type_name(item)}")
        out.extend(item)
    return out


@function("length", 1, 1)
def length(value: Any) -> int:
    """Characters of a string, elements of an array, properties of an object (null: 0)."""
    if value is None:
        return 0
    if isinstance(value, (str, list, dict)):
        return len(value)
    raise FunctionError(f"length: the argument must be a string, an array or an object, not {type_name(value)}")


@function("empty", 1, 1)
def empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, (str, list, dict)):
        return not value
    raise FunctionError(f"empty: the argument must be a string, an array or an object, not {type_name(value)}")


@function("contains", 2, 2)
def contains(container: Any, item: Any) -> bool:
    """A substring (case-sensitive), an object's key (case-insensitive), an array's element."""
    if isinstance(container, list):
        return any(same(x, item) for x in container)
    if is_int(item):
        item = str(item)
    if isinstance(container, dict):
        key = Arg.str("contains", item, 1).lower()
        return any(k.lower() == key for k in container)
    if isinstance(container, str):
        return Arg.str("contains", item, 1) in container
    raise FunctionError(f"contains: argument 1 must be an array, an object or a string, not {type_name(container)}")


@function("first", 1, 1)
def first(value: Any) -> Any:
    """The first element of an array (null when empty) or the first character of a string."""
    return _end("first", value, 0)


@function("last", 1, 1)
def last(value: Any) -> Any:
    """The last element of an array (null when empty) or the last character of a string."""
    return _end("last", value, -1)


def _end(fn: str, value: Any, at: int) -> Any:
    if value is None:
        return None
    if isinstance(value, list):
        return value[at] if value else None
    value = Arg.str(fn, value, 0)
    return value[at] if value else ""


@function("take", 2, 2)
def take(value: Any, count: Any) -> Any:
    """The first `count` elements or characters (all of them when fewer; none when negative)."""
    count = Arg.int("take", count, 1)
    return _seq("take", value)[:max(count, 0)] if value is not None else None


@function("skip", 2, 2)
def skip(value: Any, count: Any) -> Any:
    """All but the first `count` elements or characters."""
    count = Arg.int("skip", count, 1)
    return _seq("skip", value)[max(count, 0):] if value is not None else None


def _seq(fn: str, value: Any) -> Any:
    if not isinstance(value, (list, str)):
        raise FunctionError(f"{fn}: argument 1 must be an array or a string, not {type_name(value)}")
    return value


@function("range", 2, 2)
def range_(start: Any, count: Any) -> list[int]:
    """`range(startIndex, count)`: count 0..10000, the last value within 32-bit integers."""
    start, count = Arg.int("range", start, 0), Arg.int("range", count, 1)
    if not 0 <= count <= MAX_RANGE:
        raise FunctionError(f"range: the count must be 0 to {MAX_RANGE}, not {count}")
    if start + count - 1 > 2**31 - 1 or start < -(2**31):
        raise FunctionError("range: the sum of the start index and the count must be no greater "
                            f"than {2**31 - 1}")
    return list(range(start, start + count))


@function("union", 2, None)
def union(*args: Any) -> Any:
    """Arrays: every element once, in order. Objects: merged left to right, nested objects
    merged too (key names case-insensitive), any other value replaced by the later one."""
    kind = _same_kind("union", args)
    if kind is list:
        return unique([x for a in args for x in a])
    out: dict = {}
    for a in args:
        out = _merge(out, a)
    return out


def _merge(base: dict, patch: dict) -> dict:
    out = dict(base)
    names = {k.lower(): k for k in out}
    for key, value in patch.items():
        name = names.get(key.lower(), key)
        old = out.get(name)
        out[name] = _merge(old, value) if isinstance(old, dict) and isinstance(value, dict) else value
        names[key.lower()] = name
    return out


@function("intersection", 2, None)
def intersection(*args: Any) -> Any:
    """Arrays: the elements in every array, in the first one's order. Objects: the properties
    (same name, same value) in every object."""
    kind = _same_kind("intersection", args)
    if kind is list:
        return [x for x in unique(args[0]) if all(any(same(x, y) for y in a) for a in args[1:])]
    return {k: v for k, v in args[0].items() if all(k in a and same(a[k], v) for a in args[1:])}


def _same_kind(fn: str, args: tuple) -> type:
    kind = list if isinstance(args[0], list) else dict if isinstance(args[0], dict) else None
    for i, a in enumerate(args):
        if kind is None or not isinstance(a, kind):
            raise FunctionError(f"{fn}: the arguments must be all arrays or all objects; argument {i + 1} "
                                f"is {type_name(a)}")
    return kind  # type: ignore[return-value]

