"""JSON as ARM reads it (Json.NET): `//` and `/* */` comments outside strings, and a trailing
comma before `]` or `}`. `az` sends a template file's text as written, so the deployments route
parses the whole request body with `loads`. Errors name the line and column."""
from __future__ import annotations

import json
import re
from typing import Any

from controller.template.errors import TemplateError


_STRINGS_AND_COMMENTS = re.compile(r'"(?:[^"\\\r\n]|\\.)*"|//[^\r\n]*|/\*[\s\S]*?\*/|/\*')
_STRINGS_AND_TRAILING_COMMAS = re.compile(r'"(?:[^"\\\r\n]|\\.)*"|,(?=\s*[\]}])')


def strip(text: str) -> str:
    """`text` with comments and trailing commas blanked out (same length, same lines and columns)."""
    def comment(m: re.Match) -> str:
        found = m.group()
        if found[0] == '"':
            return found
        if found == "/*":
            raise TemplateError("", _where(text, m.start(), "a comment that is not closed"), "InvalidTemplate")
        return re.sub(r"[^\r\n]", " ", found)
    text = _STRINGS_AND_COMMENTS.sub(comment, text)
    return _STRINGS_AND_TRAILING_COMMAS.sub(lambda m: m.group() if m.group()[0] == '"' else " ", text)


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
