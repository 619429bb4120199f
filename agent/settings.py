"""ApplicationHealthLinux settings, validated as Azure does."""
from __future__ import annotations

from dataclasses import dataclass

PROTOCOLS = ("http", "https", "tcp")


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
        raise SettingsError(key, f"must be an integer, not {value!r}")
    if not lo <= value <= hi:
        raise SettingsError(key, f"{value} is out of range ({lo}..{hi})")
    return value


def parse_settings(settings: dict) -> HealthSettings:
    if not isinstance(settings, dict):
        raise SettingsError("", "must be an object")
    known = {"protocol", "port", "requestPath", "intervalInSeconds", "numberOfProbes", "gracePeriod"}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise SettingsError(unknown[0], "unknown setting")
    protocol = settings.get("protocol")
    if not isinstance(protocol, str) or protocol.lower() not in PROTOCOLS:
        raise SettingsError("protocol", f"{protocol!r} is not one of http, https, tcp")
    protocol = protocol.lower()
    if protocol == "tcp" and "port" not in settings:
        raise SettingsError("port", "is required for tcp")
    port = _int(settings, "port", 80 if protocol == "http" else 443, 1, 65535)
    path = settings.get("requestPath", "/" if protocol != "tcp" else "")
    if protocol == "tcp" and "requestPath" in settings:
        raise SettingsError("requestPath", "is not allowed with tcp")
    if protocol != "tcp" and (not isinstance(path, str) or not path.startswith("/")):
        raise SettingsError("requestPath", f"{path!r} must be a path starting with '/'")
    interval = _int(settings, "intervalInSeconds", 5, 5, 60)
    probes = _int(settings, "numberOfProbes", 1, 1, 24)
    grace = _int(settings, "gracePeriod", interval * probes, 0, 14400)
    return HealthSettings(protocol, port, path, interval, probes, grace)
