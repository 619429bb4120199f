"""JSON <-> typed dataclasses, strictly: unknown fields and wrong types are errors naming the path
(numbers and booleans given as strings are read as ARM reads them: read_int, read_bool).

Dataclass attribute names are the ARM JSON names (camelCase), so the shape carries over as is.
Every JSON text the CLI reads goes through `load_json` (size, depth, duplicate keys checked).
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
import types
import typing
from typing import Any, get_args, get_origin, get_type_hints

from controller.core.errors import ModelError

MAX_DEPTH = 64  # of any document: objects and lists nested inside each other
MAX_JSON_BYTES = 1 << 20
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _kind(value: Any) -> str:
    """A value's JSON kind, never the value itself (it may be a secret or huge)."""
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "an object"}.get(type(value), type(value).__name__)


def check_depth(value: Any, path: str, limit: int = MAX_DEPTH, finite: bool = False) -> None:
    """Raise if lists/objects nest deeper than `limit` (iterative: safe on any depth); with
    `finite`, also if a number in it is out of range (JSON's 1e400 reads as infinity)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if finite and isinstance(node, float) and not math.isfinite(node):
            raise ModelError(path, "holds a number out of range (larger than about 1.8e308)")
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            raise ModelError(path, f"is nested deeper than {MAX_DEPTH} levels")
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list, float) if finite else (dict, list)))


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise ValueError(f"duplicate key '{dup[:64]}'")
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _int(text: str) -> int:
    if len(text) > 100:
        raise ValueError("an integer of more than 100 digits")
    return int(text)


# ARM reads a resource's body as Newtonsoft's JSON.NET does: an integer field takes a JSON string
# holding an integer ("1023", " -5 "), a boolean field the strings "true"/"false" in any case.
# Nothing else converts: "five", "1.5", "1e3", 1.5 and true stay refused for an integer.
_INTEGER = re.compile(r"\s*[+-]?[0-9]{1,100}\s*", re.ASCII)


def read_int(value: Any) -> int | None:
    """`value` as ARM reads an integer (an int, or a string holding one); None if it is not one."""
    if isinstance(value, str) and _INTEGER.fullmatch(value):
        return int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def read_bool(value: Any) -> bool | None:
    """`value` as ARM reads a boolean (true/false, or "true"/"false" in any case); None if it is not one."""
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return value if isinstance(value, bool) else None


class NotJson(ModelError):
    """The text is not JSON at all (as opposed to JSON that is too big or too deep)."""


def json_object(value: Any, field: str) -> dict:
    """A request's object at `field` ({} when absent or null)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ModelError(field, "must be a JSON object")
    return value


def load_json(text: str | bytes, field: str, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Parse JSON a user gave (file, flag, --set value); errors name `field`, never echo the text."""
    if len(text) > max_bytes:
        raise ModelError(field, f"is larger than the limit of {max_bytes} bytes")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise NotJson(field, "is not UTF-8 text") from None
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant, parse_int=_int)
    except json.JSONDecodeError as exc:
        raise NotJson(field, f"is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise ModelError(field, f"is nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # duplicate keys, NaN, an integer of a hundred digits
        raise NotJson(field, f"is not valid JSON ({exc})") from None
    check_depth(value, field)
    return value


@functools.cache
def _schema(cls: type) -> tuple[dict[str, Any], dict[str, dataclasses.Field], frozenset[str]]:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    required = frozenset(n for n, f in fields.items()
                         if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
    return get_type_hints(cls), fields, required


def from_json(cls: type, data: Any, path: str, depth: int = 1) -> Any:
    """Build `cls` (a dataclass, list[...], dict[...], Optional, or a scalar type) from JSON.
    Free-form values (dict[str, Any], Any) are checked for depth, so nothing below recurses without end."""
    if dataclasses.is_dataclass(cls):
        if not isinstance(data, dict):
            raise ModelError(path, f"must be an object, not {_kind(data)}")
        hints, fields, required = _schema(cls)
        unknown = [k for k in data if k not in fields]
        if unknown:
            bad = sorted(str(k) for k in unknown)[0]
            shown = bad if len(bad) <= 64 and not _CONTROL.search(bad) else repr(bad[:64])
            raise ModelError(f"{path}.{shown}", f"unknown field (known: {', '.join(sorted(fields))})")
        missing = required - data.keys()
        if missing:
            raise ModelError(f"{path}.{sorted(missing)[0]}", "is required")
        return cls(**{name: from_json(hints[name], value, f"{path}.{name}", depth + 1)
                      for name, value in data.items()})
    if cls is str:
        if not isinstance(data, str):
            raise ModelError(path, f"must be a string, not {_kind(data)}")
        if _CONTROL.search(data):
            raise ModelError(path, "must not contain control characters (newline, tab, NUL, ...)")
        return data
    if cls is bool:
        value = read_bool(data)
        if value is None:
            raise ModelError(path, f"must be true or false, not {_kind(data)}")
        return value
    if cls is int:
        value = read_int(data)
        if value is None:
            raise ModelError(path, f"must be an integer, not {_kind(data)}" +
                             (" holding no integer" if isinstance(data, str) else ""))
        return value
    origin = get_origin(cls)
    if origin in (typing.Union, types.UnionType):
        if data is None:
            return None
        args = [a for a in get_args(cls) if a is not type(None)]
        return from_json(args[0], data, path, depth)
    if origin is list:
        if not isinstance(data, list):
            raise ModelError(path, f"must be a list, not {_kind(data)}")
        (item,) = get_args(cls)
        return [from_json(item, v, f"{path}[{i}]", depth + 1) for i, v in enumerate(data)]
    if origin is dict:
        if not isinstance(data, dict):
            raise ModelError(path, f"must be an object, not {_kind(data)}")
        if not all(isinstance(k, str) for k in data):
            raise ModelError(path, "keys must be strings")
        check_depth(data, path, MAX_DEPTH - depth + 1, finite=True)
        return dict(data)
    if cls is float:
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            raise ModelError(path, f"must be a number, not {_kind(data)}")
        if isinstance(data, float) and not math.isfinite(data):
            raise ModelError(path, "is a number out of range (larger than about 1.8e308)")
        return float(data)
    if cls is Any:
        check_depth(data, path, MAX_DEPTH - depth + 1, finite=True)
        return data
    raise TypeError(f"unsupported model type {_type_name(cls)} at {path}")


def to_json(obj: Any) -> Any:
    """Dataclasses to plain JSON, leaving out None values."""
    if dataclasses.is_dataclass(obj):
        out = {}
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            if v is not None:
                out[f.name] = to_json(v)
        return out
    if isinstance(obj, list):
        return [to_json(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_json(v) for k, v in obj.items()}
    return obj


_DURATION = re.compile(r"P(?:([0-9]{1,5})D)?(?:T(?:([0-9]{1,6})H)?(?:([0-9]{1,8})M)?(?:([0-9]{1,9}(?:\.[0-9]{1,6})?)S)?)?")
MAX_DURATION = 366 * 86400.0


def parse_duration(text: Any, path: str, max_seconds: float = MAX_DURATION) -> float:
    """ISO-8601 duration (PnDTnHnMnS) in seconds, at most `max_seconds`."""
    m = _DURATION.fullmatch(text) if isinstance(text, str) else None
    if not m or text in ("P", "PT") or text.endswith("T"):
        shown = repr(text[:40]) if isinstance(text, str) else _kind(text)
        raise ModelError(path, f"{shown} is not an ISO-8601 duration such as PT5M or PT30S")
    d, h, mi, s = m.groups()
    seconds = int(d or 0) * 86400 + int(h or 0) * 3600 + int(mi or 0) * 60 + float(s or 0)
    if seconds > max_seconds:
        raise ModelError(path, f"'{text}' is longer than the limit of {max_seconds:.0f} seconds")
    return seconds
