"""Object functions: createObject, json, null, items, tryGet, objectKeys, shallowMerge (ARM's
reference, "Object functions"). `json()` reads JSON as Newtonsoft does: single-quoted strings,
bare property names and comments are accepted, anything after the value is not."""
from __future__ import annotations

import re
from typing import Any

from controller.template.errors import FunctionError
from controller.template.functions import Arg, function, type_name
from controller.template.functions._common import INT_MAX, INT_MIN, is_int

MAX_DEPTH = 64  # Newtonsoft's default


@function("createObject", 0, None)
def create_object(*args: Any) -> dict:
    """`createObject(key1, value1, key2, value2, ...)`."""
    if len(args) % 2:
        raise FunctionError(f"createObject: the arguments must be key and value pairs, got {len(args)}")
    out: dict = {}
    for i in range(0, len(args), 2):
        key = Arg.str("createObject", args[i], i)
        if key in out:
            raise FunctionError(f"createObject: the key '{key[:80]}' is given twice")
        out[key] = args[i + 1]
    return out


@function("null", 0, 0)
def null() -> None:
    return None


@function("items", 1, 1)
def items(value: Any) -> list[dict]:
    """An object as an array of {key, value}, sorted by key."""
    value = Arg.dict("items", value, 0)
    return [{"key": k, "value": value[k]} for k in sorted(value, key=lambda k: (k.lower(), k))]


@function("tryGet", 2, None)
def try_get(value: Any, *keys: Any) -> Any:
    """`tryGet(itemToTest, keyOrIndex, ...)`: the value at the path, or null where it stops."""
    for i, key in enumerate(keys):
        if isinstance(value, dict) and isinstance(key, str):
            value = member(value, key)
        elif isinstance(value, list) and is_int(key):
            value = value[key] if 0 <= key < len(value) else None
        elif value is None:
            return None
        elif not (isinstance(key, str) or is_int(key)):
            raise FunctionError(f"tryGet: argument {i + 2} must be a string or an integer, not {type_name(key)}")
        else:
            return None
    return value


@function("objectKeys", 1, 1)
def object_keys(value: Any) -> list[str]:
    return list(Arg.dict("objectKeys", value, 0))


@function("shallowMerge", 1, 1)
def shallow_merge(objects: Any) -> dict:
    """An array of objects merged left to right, top-level properties only."""
    out: dict = {}
    for i, obj in enumerate(Arg.list("shallowMerge", objects, 0)):
        if not isinstance(obj, dict):
            raise FunctionError(f"shallowMerge: element {i} must be an object, not {type_name(obj)}")
        out.update(obj)
    return out


def member(obj: dict, key: str) -> Any:
    """`obj`'s property `key` as ARM finds it: the exact name first, then any case; else None."""
    if key in obj:
        return obj[key]
    folded = key.lower()
    return next((v for k, v in obj.items() if k.lower() == folded), None)


@function("json", 1, 1)
def json_(value: Any) -> Any:
    """The value of a JSON text."""
    return parse_json("json", Arg.str("json", value, 0))


def parse_json(fn: str, source: str) -> Any:
    reader = _Reader(fn, source)
    value = reader.value(0)
    reader.space()
    if reader.i < len(source):
        reader.fail("more text after the JSON value")
    return value


_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?")
_NAME = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "/": "/", "\\": "\\", '"': '"', "'": "'"}


class _Reader:
    def __init__(self, fn: str, s: str) -> None:
        self.fn, self.s, self.i = fn, s, 0

    def fail(self, why: str) -> None:
        raise FunctionError(f"{self.fn}: the argument is not valid JSON: {why} at position {self.i}")

    def space(self) -> None:
        s = self.s
        while self.i < len(s):
            if s[self.i].isspace():
                self.i += 1
            elif s.startswith("//", self.i):
                end = s.find("\n", self.i)
                self.i = len(s) if end < 0 else end
            elif s.startswith("/*", self.i):
                end = s.find("*/", self.i + 2)
                if end < 0:
                    self.fail("an unclosed comment")
                self.i = end + 2
            else:
                return

    def value(self, depth: int) -> Any:
        if depth > MAX_DEPTH:
            self.fail(f"nesting deeper than {MAX_DEPTH}")
        self.space()
        s, c = self.s, self.s[self.i:self.i + 1]
        if c == "{":
            return self.members(depth)
        if c == "[":
            return self.elements(depth)
        if c in "\"'" and c:
            return self.string()
        m = _NUMBER.match(s, self.i)
        if m:
            self.i = m.end()
            if m.group(1) or m.group(2):
                return float(m.group(0))
            n = int(m.group(0))
            if not INT_MIN <= n <= INT_MAX:
                self.fail("an integer beyond 64 bits")
            return n
        for word, v in (("true", True), ("false", False), ("null", None)):
            if s.startswith(word, self.i):
                self.i += len(word)
                return v
        self.fail("an unexpected character" if c else "an unexpected end")

    def members(self, depth: int) -> dict:
        out: dict = {}
        self.i += 1
        while True:
            self.space()
            if self.s.startswith("}", self.i):
                self.i += 1
                return out
            if self.s[self.i:self.i + 1] in ("'", '"') and self.i < len(self.s):
                key = self.string()
            else:
                m = _NAME.match(self.s, self.i)
                if not m:
                    self.fail("a property name expected")
                key, self.i = m.group(0), m.end()
            self.space()
            if not self.s.startswith(":", self.i):
                self.fail("':' expected")
            self.i += 1
            out[key] = self.value(depth + 1)
            self.space()
            if self.s.startswith(",", self.i):
                self.i += 1
            elif not self.s.startswith("}", self.i):
                self.fail("',' or '}' expected")

    def elements(self, depth: int) -> list:
        out: list = []
        self.i += 1
        while True:
            self.space()
            if self.s.startswith("]", self.i):
                self.i += 1
                return out
            out.append(self.value(depth + 1))
            self.space()
            if self.s.startswith(",", self.i):
                self.i += 1
            elif not self.s.startswith("]", self.i):
                self.fail("',' or ']' expected")

    def string(self) -> str:
        s, quote = self.s, self.s[self.i]
        self.i += 1
        out = []
        while True:
            if self.i >= len(s):
                self.fail("an unclosed string")
            c = s[self.i]
            if c == quote:
                self.i += 1  # \u escapes may be surrogate pairs: join them
                return "".join(out).encode("utf-16", "surrogatepass").decode("utf-16", "surrogatepass")
            if c == "\\":
                e = s[self.i + 1:self.i + 2]
                if e == "u" and re.fullmatch(r"[0-9A-Fa-f]{4}", s[self.i + 2:self.i + 6]):
                    out.append(chr(int(s[self.i + 2:self.i + 6], 16)))
                    self.i += 6
                    continue
                if e not in _ESCAPES:
                    self.fail("a bad escape")
                out.append(_ESCAPES[e])
                self.i += 2
                continue
            out.append(c)
            self.i += 1
