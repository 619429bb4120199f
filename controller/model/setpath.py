"""az's generic update: `--set PATH=VALUE` on a JSON document.

PATH is dot-separated segments, each `key` or `key[N]` (N a list index, also on the last
segment: `key[N]=VALUE` replaces that item). Missing objects on the way are created; anything
else (descending into a string, an index past the end, an empty segment) is a ModelError.
"""
from __future__ import annotations

import json
import re
from typing import Any

from controller.core.errors import ModelError
from controller.model.jsonmap import NotJson, load_json

_SEGMENT = re.compile(r"([A-Za-z0-9_$-]{1,128})((?:\[(?:0|[1-9][0-9]{0,5})\])*)")
_INDEX = re.compile(r"\[([0-9]+)\]")
MAX_PATH = 1024


def _kind(v: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number"}.get(type(v), "null")


def parse_path(path: str) -> list[str | int]:
    """`a.b[0].c` -> ['a', 'b', 0, 'c']; raises ModelError('--set') naming what is wrong."""
    if not path:
        raise ModelError("--set", "the path before '=' is empty")
    if len(path) > MAX_PATH:
        raise ModelError("--set", f"the path is longer than {MAX_PATH} characters")
    steps: list[str | int] = []
    for seg in path.split("."):
        m = _SEGMENT.fullmatch(seg)
        if not m:
            shown = json.dumps(seg)[:80]
            raise ModelError("--set", f"'{json.dumps(path)[1:-1][:200]}': segment {shown} is not KEY or KEY[N] "
                                      "(KEY: letters, digits, '_', '-', '$'; N: a list index 0, 1, ...)")
        steps.append(m.group(1))
        steps.extend(int(i) for i in _INDEX.findall(m.group(2)))
    return steps


def _show(steps: list[str | int]) -> str:
    return "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in steps).lstrip(".")


def set_path(document: dict, assignment: str) -> dict:
    """Apply one `--set PATH=VALUE` (az's generic update): VALUE is JSON when it parses, else a string."""
    if not isinstance(assignment, str) or "=" not in assignment:
        raise ModelError("--set", "expected PATH=VALUE")
    path, raw = assignment.split("=", 1)
    steps = parse_path(path)
    try:
        value = load_json(raw, "--set")
    except NotJson:  # az's rule: not JSON, so a string (JSON too big or too deep is an error)
        value = raw
    node: Any = document
    for i, step in enumerate(steps[:-1]):
        nxt_is_index = isinstance(steps[i + 1], int)
        if isinstance(step, int):
            if not isinstance(node, list) or step >= len(node):
                raise ModelError("--set", f"'{_show(steps)}': {_show(steps[:i + 1])} does not exist "
                                          f"({_show(steps[:i]) or 'the document'} has {len(node) if isinstance(node, list) else 0} items)")
            child = node[step]
        elif isinstance(node, dict):
            child = node.get(step)
            if child is None:
                if nxt_is_index:
                    raise ModelError("--set", f"'{_show(steps)}': {_show(steps[:i + 1])} is not a list")
                child = node[step] = {}
        else:
            raise ModelError("--set", f"'{_show(steps)}': {_show(steps[:i]) or 'the document'} is "
                                      f"{_kind(node)}, not an object")
        if nxt_is_index and not isinstance(child, list):
            raise ModelError("--set", f"'{_show(steps)}': {_show(steps[:i + 1])} is {_kind(child)}, not a list")
        node = child
    last = steps[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last >= len(node):
            raise ModelError("--set", f"'{_show(steps)}': index {last} is past the end of "
                                      f"{_show(steps[:-1])} ({len(node) if isinstance(node, list) else 0} items)")
        node[last] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ModelError("--set", f"'{_show(steps)}': {_show(steps[:-1]) or 'the document'} is "
                                  f"{_kind(node)}, not an object")
    return document
