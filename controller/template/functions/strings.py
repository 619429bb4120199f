"""String functions: concat, string, toLower, toUpper, trim, padLeft, replace, substring, split,
join, startsWith, endsWith, indexOf, lastIndexOf, uri (ARM's reference, "String functions")."""
from __future__ import annotations

import re
from typing import Any
from urllib.parse import urljoin, urlsplit

from controller.template.errors import FunctionError
from controller.template.functions import Arg, function, type_name
from controller.template.functions._common import MAX_TEXT, bounded, is_int, same, text, to_json


@function("concat", 1, None)
def concat(*args: Any) -> Any:
    """Arrays joined into one array, or strings (and integers, booleans) into one string; nulls
    are skipped."""
    if all(isinstance(a, list) for a in args):
        out: list = []
        for a in args:
            out.extend(a)
        return out
    parts = []
    for i, a in enumerate(args):
        if isinstance(a, (list, dict)):
            raise FunctionError(f"concat: argument {i + 1} is {type_name(a)}: the arguments must be "
                                "all arrays, or strings and integers")
        parts.append(text(a))
    return bounded("concat", "".join(parts))


@function("string", 1, 1)
def string(value: Any) -> str:
    """Objects and arrays as compact JSON, other values as .NET prints them."""
    if isinstance(value, (list, dict)):
        return to_json(value)
    return text(value)


@function("toLower", 1, 1)
def to_lower(value: Any) -> str:
    return Arg.str("toLower", value, 0).lower()


@function("toUpper", 1, 1)
def to_upper(value: Any) -> str:
    return Arg.str("toUpper", value, 0).upper()


@function("trim", 1, 1)
def trim(value: Any) -> str:
    return Arg.str("trim", value, 0).strip()


@function("padLeft", 2, 3)
def pad_left(value: Any, total: Any, pad: Any = " ") -> str:
    """`padLeft(valueToPad, totalLength, paddingCharacter=' ')`: unchanged when long enough."""
    if is_int(value):
        value = str(value)
    value = Arg.str("padLeft", value, 0)
    total = Arg.int("padLeft", total, 1)
    pad = Arg.str("padLeft", pad, 2)
    if len(pad) != 1:
        raise FunctionError(f"padLeft: the padding character must be one character, not '{pad[:20]}'")
    if total < 0 or total > MAX_TEXT:
        raise FunctionError(f"padLeft: the total length must be 0 to {MAX_TEXT}, not {total}")
    return value.rjust(total, pad)


@function("replace", 3, 3)
def replace(value: Any, old: Any, new: Any) -> str:
    value, old = Arg.str("replace", value, 0), Arg.str("replace", old, 1)
    new = Arg.str("replace", new, 2)
    if not old:
        raise FunctionError("replace: the string to replace (argument 2) must not be empty")
    if value.count(old) * max(len(new) - len(old), 0) + len(value) > MAX_TEXT:
        raise FunctionError(f"replace: the result is longer than {MAX_TEXT} characters")
    return value.replace(old, new)


@function("substring", 2, 3)
def substring(value: Any, start: Any, length: Any = None) -> str:
    """`substring(stringToParse, startIndex, length=rest)`; out of range is ARM's error."""
    value, start = Arg.str("substring", value, 0), Arg.int("substring", start, 1)
    if length is None:
        if not 0 <= start <= len(value):
            raise FunctionError(f"substring: the index parameter '{start}' must refer to a location "
                                f"within the string (the length of the string parameter: '{len(value)}')")
        return value[start:]
    length = Arg.int("substring", length, 2)
    if start < 0 or length < 0 or start + length > len(value):
        raise FunctionError("substring: the index and length parameters must refer to a location within "
                            f"the string. The index parameter: '{start}', the length parameter: "
                            f"'{length}', the length of the string parameter: '{len(value)}'")
    return value[start:start + length]


@function("split", 2, 2)
def split(value: Any, delimiters: Any) -> list[str]:
    """`split(inputString, delimiter)`: a string or an array of strings (.NET's String.Split:
    at each position the first delimiter of the array that matches)."""
    value = Arg.str("split", value, 0)
    if isinstance(delimiters, str):
        delimiters = [delimiters]
    elif isinstance(delimiters, list):
        for i, d in enumerate(delimiters):
            if not isinstance(d, str):
                raise FunctionError(f"split: delimiter {i + 1} must be a string, not {type_name(d)}")
    else:
        raise FunctionError(f"split: argument 2 must be a string or an array of strings, "
                            f"not {type_name(delimiters)}")
    seps = [d for d in delimiters if d]
    if not seps:  # .NET: no non-empty separator means white space
        return re.split(r"\s", value)
    out, start, i = [], 0, 0
    while i < len(value):
        for sep in seps:
            if value.startswith(sep, i):
                out.append(value[start:i])
                i = start = i + len(sep)
                break
        else:
            i += 1
    out.append(value[start:])
    return out


@function("join", 2, 2)
def join(items: Any, delimiter: Any) -> str:
    """`join(inputArray, delimiter)`: an array of strings."""
    items, delimiter = Arg.list("join", items, 0), Arg.str("join", delimiter, 1)
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise FunctionError(f"join: element {i} of the array must be a string, not {type_name(item)}")
    return bounded("join", delimiter.join(items))


@function("startsWith", 2, 2)
def starts_with(value: Any, prefix: Any) -> bool:
    """Case-insensitive, as ARM's."""
    value, prefix = Arg.str("startsWith", value, 0), Arg.str("startsWith", prefix, 1)
    return value.casefold().startswith(prefix.casefold())


@function("endsWith", 2, 2)
def ends_with(value: Any, suffix: Any) -> bool:
    """Case-insensitive, as ARM's."""
    value, suffix = Arg.str("endsWith", value, 0), Arg.str("endsWith", suffix, 1)
    return value.casefold().endswith(suffix.casefold())


@function("indexOf", 2, 2)
def index_of(container: Any, item: Any) -> int:
    """The first position of `item` in a string (case-insensitive) or an array, or -1."""
    return _find("indexOf", container, item, last=False)


@function("lastIndexOf", 2, 2)
def last_index_of(container: Any, item: Any) -> int:
    """The last position of `item` in a string (case-insensitive) or an array, or -1."""
    return _find("lastIndexOf", container, item, last=True)


def _find(fn: str, container: Any, item: Any, last: bool) -> int:
    if isinstance(container, list):
        found = [i for i, x in enumerate(container) if same(x, item)]
        return (found[-1] if last else found[0]) if found else -1
    container = Arg.str(fn, container, 0)
    item = Arg.str(fn, item, 1).lower()
    return container.lower().rfind(item) if last else container.lower().find(item)


@function("uri", 2, 2)
def uri(base: Any, relative: Any) -> str:
    """`uri(baseUri, relativeUri)`: the relative reference resolved against an absolute URI."""
    base, relative = Arg.str("uri", base, 0), Arg.str("uri", relative, 1)
    if not urlsplit(base).scheme or not urlsplit(base).netloc:
        raise FunctionError(f"uri: the base '{base[:80]}' is not an absolute URI")
    return bounded("uri", urljoin(base, relative))
