"""ApplicationHealthLinux settings, validated as Azure does."""
from __future__ import annotations

import re
from dataclasses import dataclass

PROTOCOLS = ("http", "https", "tcp")
MAX_REQUEST_PATH = 2048
# RFC 3986 path and query characters, without '@' (userinfo), '#', '\\', spaces and controls.
_REQUEST_PATH = re.compile(r"/(?:[A-Za-z0-9\-._~!$&'()*+,;=:/]|%[0-9A-Fa-f]{2})*"
                           r"(?:\?(?:[A-Za-z0-9\-._~!$&'()*+,;=:/?]|%[0-9A-Fa-f]{2})*)?")


def request_path_problem(path: object) -> str | None:
    """Why `path` is not a probe request path (an absolute path, optionally ?query), or None."""
    if not isinstance(path, str):
        return "must be a string"
    if len(path) > MAX_REQUEST_PATH:
        return f"is longer than {MAX_REQUEST_PATH} characters"
    if not _REQUEST_PATH.fullmatch(path):
        return ("must be a path starting with '/' of URL characters (letters, digits, -._~!$&'()*+,;=:/ "
                "and %XX), optionally with a ?query; no '@', '#', '\\', spaces or control characters")
    return None


class SettingsError(ValueError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"settings.{field}: {reason}")
        self.field, self.reason = field, reason


@dataclass(frozen=True)
class HealthSettings:
    protocol: str
    port: int
    request_path: str
    interval: int
    probes: int
    grace_period: int


def _int(settings: dict, key: str, default: int, lo: int, hi: int) -> int:
    value = settings.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SettingsError(key, f"must be an integer, not {type(value).__name__}")
    if not lo <= value <= hi:
        raise SettingsError(key, f"{value} is out of range ({lo}..{hi})")
    return value


def parse_settings(settings: dict) -> HealthSettings:
    if not isinstance(settings, dict):
        raise SettingsError("", "must be an object")
    known = {"protocol", "port", "requestPath", "intervalInSeconds", "numberOfProbes", "gracePeriod"}
    unknown = sorted(str(k) for k in set(settings) - known)
    if unknown:
        key = unknown[0] if len(unknown[0]) <= 64 and unknown[0].isprintable() else repr(unknown[0][:64])
        raise SettingsError(key, f"unknown setting (known: {', '.join(sorted(known))})")
    protocol = settings.get("protocol")
    if protocol is None:
        raise SettingsError("protocol", "is required: http, https or tcp")
    if not isinstance(protocol, str) or protocol.lower() not in PROTOCOLS:
        shown = repr(protocol)[:40] if isinstance(protocol, str) else "it"
        raise SettingsError("protocol", f"{shown} is not one of http, https, tcp")
    protocol = protocol.lower()
    if protocol == "tcp" and "port" not in settings:
        raise SettingsError("port", "is required for tcp")
    port = _int(settings, "port", 80 if protocol == "http" else 443, 1, 65535)
    path = settings.get("requestPath", "/" if protocol != "tcp" else "")
    if protocol == "tcp" and "requestPath" in settings:
        raise SettingsError("requestPath", "is not allowed with tcp")
    problem = request_path_problem(path) if protocol != "tcp" else None
    if problem:
        raise SettingsError("requestPath", problem)
    interval = _int(settings, "intervalInSeconds", 5, 5, 60)
    probes = _int(settings, "numberOfProbes", 1, 1, 24)
    grace = _int(settings, "gracePeriod", interval * probes, 0, 14400)
    return HealthSettings(protocol, port, path, interval, probes, grace)
