"""Encodings: base64, base64ToString, base64ToJson, uriComponent, uriComponentToString, dataUri,
dataUriToString (ARM's reference, "String functions"). Text is UTF-8."""
from __future__ import annotations

import base64 as b64
import binascii
import re
from typing import Any
from urllib.parse import quote, unquote, unquote_to_bytes

from controller.template.errors import FunctionError
from controller.template.functions import Arg, function
from controller.template.functions._common import bounded, to_json
from controller.template.functions.objects import parse_json


@function("base64", 1, 1)
def base64(value: Any) -> str:
    return bounded("base64", b64.b64encode(Arg.str("base64", value, 0).encode()).decode("ascii"))


def _decode64(fn: str, value: Any) -> str:
    value = Arg.str(fn, value, 0)
    try:
        return b64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise FunctionError(f"{fn}: the argument is not valid base64 of UTF-8 text") from None


@function("base64ToString", 1, 1)
def base64_to_string(value: Any) -> str:
    return _decode64("base64ToString", value)


@function("base64ToJson", 1, 1)
def base64_to_json(value: Any) -> Any:
    return parse_json("base64ToJson", _decode64("base64ToJson", value))


@function("uriComponent", 1, 1)
def uri_component(value: Any) -> str:
    """Percent-encoding as .NET's Uri.EscapeDataString: all but A-Z a-z 0-9 - _ . ~"""
    return bounded("uriComponent", quote(Arg.str("uriComponent", value, 0), safe="-_.~"))


@function("uriComponentToString", 1, 1)
def uri_component_to_string(value: Any) -> str:
    try:
        return unquote(Arg.str("uriComponentToString", value, 0), errors="strict")
    except UnicodeDecodeError:
        raise FunctionError("uriComponentToString: the escapes are not UTF-8") from None


@function("dataUri", 1, 1)
def data_uri(value: Any) -> str:
    """A data URI of a string (text/plain) or of an object or array (application/json)."""
    if isinstance(value, (dict, list)):
        kind, data = "application/json", to_json(value)
    else:
        kind, data = "text/plain", Arg.str("dataUri", value, 0)
    return bounded("dataUri", f"data:{kind};charset=utf8;base64,{b64.b64encode(data.encode()).decode('ascii')}")


@function("dataUriToString", 1, 1)
def data_uri_to_string(value: Any) -> str:
    value = Arg.str("dataUriToString", value, 0)
    m = re.fullmatch(r"data:([^,]*),(.*)", value, re.S | re.I)
    if not m:
        raise FunctionError("dataUriToString: the argument is not a data URI ('data:[type][;base64],data')")
    meta = [t.strip() for t in m.group(1).split(";")] if m.group(1) else []
    charset = next((t.split("=", 1)[1] for t in meta if t.lower().startswith("charset=")), "utf-8")
    if charset.lower() not in ("utf-8", "utf8"):
        raise FunctionError(f"dataUriToString: the charset '{charset[:40]}' is not supported (utf-8 only)")
    try:
        raw = b64.b64decode(m.group(2), validate=True) if meta and meta[-1].lower() == "base64" \
            else unquote_to_bytes(m.group(2))
        return raw.decode("utf-8")
    except (binascii.Error, ValueError):
        raise FunctionError("dataUriToString: the data is not valid base64 of UTF-8 text") from None
