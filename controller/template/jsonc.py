"""JSON as ARM reads it (Json.NET): `//` and `/* */` comments outside strings, and a trailing
comma before `]` or `}`. `az` sends a template file's text as written, so the deployments route
parses the whole request body with `loads`. Errors name the line and column."""
from __future__ import annotations

import json
from typing import Any

from controller.template.errors import TemplateError


def strip(text: str) -> str:
    """`text` with comments and trailing commas blanked out (same length, same lines and columns)."""
    out = list(text)
    i, n = 0, len(text)
    last_comma = -1  # index of a comma not yet followed by anything but blanks/comments
    while i < n:
        c = text[i]
        if c == '"':
            last_comma = -1
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
        elif c == "/" and text.startswith("//", i):
            while i < n and text[i] not in "\r\n":
                out[i] = " "
                i += 1
        elif c == "/" and text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise TemplateError("", _where(text, i, "a comment that is not closed"), "InvalidTemplate")
            for j in range(i, end + 2):
                if out[j] not in "\r\n":
                    out[j] = " "
            i = end + 2
        elif c == ",":
            last_comma = i
            i += 1
        elif c in "]}":
            if last_comma >= 0:
                out[last_comma] = " "
            last_comma = -1
            i += 1
        else:
            if not c.isspace():
                last_comma = -1
            i += 1
    return "".join(out)


def loads(text: str | bytes, field: str = "", code: str = "InvalidTemplate") -> Any:
    """Parse `text`; TemplateError(`code`) naming the line and column of what is wrong."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise TemplateError(field, f"the content is not UTF-8 text (byte {e.start})", code) from None
    elif text.startswith("\ufeff"):
        text = text[1:]
    try:
        cleaned = strip(text)
    except TemplateError as e:
        raise TemplateError(field, e.reason, code) from None
    try:
        return json.loads(cleaned, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise TemplateError(field, f"the JSON is not valid: {e.msg} at line {e.lineno} column {e.colno}",
                            code) from None
    except ValueError as e:
        raise TemplateError(field, f"the JSON is not valid: {e}", code) from None
    except RecursionError:
        raise TemplateError(field, "the JSON is nested too deeply", code) from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _where(text: str, index: int, what: str) -> str:
    line = text.count("\n", 0, index) + 1
    col = index - (text.rfind("\n", 0, index) + 1) + 1
    return f"the JSON is not valid: {what} at line {line} column {col}"
