"""JSON <-> typed dataclasses, strictly: unknown fields and wrong types are errors naming the path.

Dataclass attribute names are the ARM JSON names (camelCase), so the shape carries over as is.
"""
from __future__ import annotations

import dataclasses
import re
import types
import typing
from typing import Any, get_args, get_origin, get_type_hints

from controller.core.errors import ModelError


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def from_json(cls: type, data: Any, path: str) -> Any:
    """Build `cls` (a dataclass, list[...], dict[...], Optional, or a scalar type) from JSON."""
    origin = get_origin(cls)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(cls) if a is not type(None)]
        if data is None:
            return None
        return from_json(args[0], data, path)
    if origin is list:
        if not isinstance(data, list):
            raise ModelError(path, f"must be a list, not {type(data).__name__}")
        (item,) = get_args(cls)
        return [from_json(item, v, f"{path}[{i}]") for i, v in enumerate(data)]
    if origin is dict:
        if not isinstance(data, dict):
            raise ModelError(path, f"must be an object, not {type(data).__name__}")
        return dict(data)
    if dataclasses.is_dataclass(cls):
        if not isinstance(data, dict):
            raise ModelError(path, f"must be an object, not {type(data).__name__}")
        hints = get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ModelError(f"{path}.{unknown[0]}", f"unknown field (known: {', '.join(sorted(fields))})")
        kwargs = {}
        for name, f in fields.items():
            if name in data:
                kwargs[name] = from_json(hints[name], data[name], f"{path}.{name}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ModelError(f"{path}.{name}", "is required")
        return cls(**kwargs)
    if cls is bool:
        if not isinstance(data, bool):
            raise ModelError(path, f"must be true or false, not {data!r}")
        return data
    if cls is int:
        if isinstance(data, bool) or not isinstance(data, int):
            raise ModelError(path, f"must be an integer, not {data!r}")
        return data
    if cls is float:
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            raise ModelError(path, f"must be a number, not {data!r}")
        return float(data)
    if cls is str:
        if not isinstance(data, str):
            raise ModelError(path, f"must be a string, not {data!r}")
        return data
    if cls is Any:
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


_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


def parse_duration(text: Any, path: str) -> float:
    """ISO-8601 duration (PnDTnHnMnS) in seconds."""
    m = _DURATION.match(text) if isinstance(text, str) else None
    if not m or text in ("P", "PT") or text.endswith("T"):
        raise ModelError(path, f"'{text}' is not an ISO-8601 duration such as PT5M or PT30S")
    d, h, mi, s = m.groups()
    return int(d or 0) * 86400 + int(h or 0) * 3600 + int(mi or 0) * 60 + float(s or 0)
