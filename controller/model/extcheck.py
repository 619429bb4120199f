"""Validation of a model's extensions: names, types, settings per type, dependency order.

Errors name the JSON path of the setting; values are never echoed (settings and
protectedSettings may hold secrets, fileUris tokens).
"""
from __future__ import annotations

import base64
import binascii
import re
import urllib.parse
from typing import TYPE_CHECKING, Any

from agent.settings import SettingsError, parse_settings
from controller.core.errors import ModelError

if TYPE_CHECKING:
    from controller.model.scaleset import Extension

HEALTH_EXTENSION = ("Microsoft.ManagedServices", "ApplicationHealthLinux")
CUSTOM_SCRIPT = ("Microsoft.Azure.Extensions", "CustomScript")
CLOUD_CONFIG = ("ScaleSetLab", "CloudConfig")  # lab: raw cloud-init modules, settings.cloudConfig
EXTENSION_TYPES = (CUSTOM_SCRIPT, HEALTH_EXTENSION, CLOUD_CONFIG)
MAX_EXTENSIONS = 50
MAX_FILE_URIS = 100
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_HANDLER_VERSION = re.compile(r"[0-9]{1,5}(?:\.[0-9]{1,5}){0,3}")
_URI_BAD = re.compile(r"[\x00-\x20\x7f-\x9f\\\\]")
_CUSTOM_SCRIPT_KEYS = {"commandToExecute": (str, "a string"), "script": (str, "a string"),
                       "fileUris": (list, "a list of URLs"), "timestamp": (int, "an integer"),
                       "skipDos2Unix": (bool, "true or false")}


def shown(value: str, limit: int = 64) -> str:
    """A name for a message: cut, and quoted as Python does when it has odd characters."""
    cut = value[:limit] + ("..." if len(value) > limit else "")
    return cut if cut.isprintable() else repr(cut)[1:-1]


def _custom_script(settings: dict, protected: dict, path: str) -> None:
    merged: dict[str, tuple[Any, str]] = {}
    for where, doc in (("settings", settings), ("protectedSettings", protected)):
        for key, value in doc.items():
            kp = f"{path}.{where}.{shown(key)}"
            if key not in _CUSTOM_SCRIPT_KEYS:
                if where == "protectedSettings":  # storageAccountKey, tokens...: Azure's handler ignores them too
                    continue
                raise ModelError(kp, f"unknown CustomScript setting (known: {', '.join(_CUSTOM_SCRIPT_KEYS)})")
            want, what = _CUSTOM_SCRIPT_KEYS[key]
            if isinstance(value, bool) != (want is bool) or not isinstance(value, want):
                raise ModelError(kp, f"must be {what}")
            if key in merged:
                raise ModelError(kp, "is also in settings: give it in one place")
            merged[key] = (value, kp)
    if ("commandToExecute" in merged) == ("script" in merged):
        raise ModelError(f"{path}.settings", "CustomScript needs exactly one of commandToExecute or script "
                                             "(in settings or protectedSettings)")
    if "commandToExecute" in merged:
        command, kp = merged["commandToExecute"]
        if not command.strip() or "\x00" in command:
            raise ModelError(kp, "must be a non-empty shell command without NUL characters")
    if "script" in merged:
        script, kp = merged["script"]
        try:
            ok = bool(base64.b64decode(script, validate=True))
        except (binascii.Error, ValueError):
            ok = False
        if not ok:
            raise ModelError(kp, "must be a non-empty script in base64 (optionally gzipped)")
    if "timestamp" in merged and not 0 <= merged["timestamp"][0] < 2**63:
        raise ModelError(merged["timestamp"][1], "must be a non-negative integer")
    uris, kp = merged.get("fileUris", ([], ""))
    if len(uris) > MAX_FILE_URIS:
        raise ModelError(kp, f"has more than {MAX_FILE_URIS} entries")
    for j, uri in enumerate(uris):
        if not isinstance(uri, str) or len(uri) > 2048 or _URI_BAD.search(uri):
            raise ModelError(f"{kp}[{j}]", "must be an http or https URL of at most 2048 characters")
        try:
            parts = urllib.parse.urlsplit(uri)
            ok = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
        except ValueError:  # a port that is not a number, a bad IPv6 literal
            ok = False
        if not ok:
            raise ModelError(f"{kp}[{j}]", "must be an http or https URL with a host")


def _no_protected(protected: dict | None, path: str, kind: str) -> None:
    if protected:
        raise ModelError(f"{path}.protectedSettings", f"{kind} takes no protected settings")


def _settings(ext: Extension, path: str) -> None:
    p = ext.properties
    kind = (p.publisher, p.type)
    if kind == CUSTOM_SCRIPT:
        _custom_script(p.settings, p.protectedSettings or {}, path)
    elif kind == HEALTH_EXTENSION:
        try:
            parse_settings(p.settings)
        except SettingsError as exc:
            raise ModelError(f"{path}.settings" + (f".{exc.field}" if exc.field else ""), exc.reason) from None
        _no_protected(p.protectedSettings, path, "ApplicationHealthLinux")
    elif kind == CLOUD_CONFIG:
        extra = sorted(k for k in p.settings if k != "cloudConfig")
        if extra:
            raise ModelError(f"{path}.settings.{shown(extra[0])}", "unknown CloudConfig setting (known: cloudConfig)")
        text = p.settings.get("cloudConfig")
        if not isinstance(text, str) or not text.strip() or "\x00" in text:
            raise ModelError(f"{path}.settings.cloudConfig", "must be the text of a #cloud-config document")
        _no_protected(p.protectedSettings, path, "CloudConfig")


def _type(ext: Extension, path: str) -> None:
    p = ext.properties
    if (p.publisher, p.type) not in EXTENSION_TYPES:
        known = ", ".join(f"{a}.{b}" for a, b in EXTENSION_TYPES)
        raise ModelError(f"{path}.type", f"unknown extension type '{shown(p.publisher)}.{shown(p.type)}' "
                                         f"(known: {known})", "VMExtensionHandlerNotFound")
    if not _HANDLER_VERSION.fullmatch(p.typeHandlerVersion):
        raise ModelError(f"{path}.typeHandlerVersion",
                         f"'{shown(p.typeHandlerVersion)}' is not a version such as 1.0 or 2.1")
    _settings(ext, path)


def validate_extensions(exts: list[Extension], path: str) -> None:
    if len(exts) > MAX_EXTENSIONS:
        raise ModelError(path, f"has {len(exts)} extensions; the limit is {MAX_EXTENSIONS}")
    names: dict[str, int] = {}
    for i, ext in enumerate(exts):
        if not NAME.fullmatch(ext.name):
            raise ModelError(f"{path}[{i}].name", f"'{shown(ext.name)}' is not a valid extension name: 1-64 "
                                                  "letters, digits, '.', '-' or '_', starting with a letter or digit")
        if ext.name in names:
            raise ModelError(f"{path}[{i}].name", f"duplicate extension name '{ext.name}'")
        names[ext.name] = i
    for i, ext in enumerate(exts):
        _type(ext, f"{path}[{i}].properties")
    health = [i for i, e in enumerate(exts) if (e.properties.publisher, e.properties.type) == HEALTH_EXTENSION]
    if len(health) > 1:
        raise ModelError(f"{path}[{health[1]}]", "only one ApplicationHealthLinux extension is allowed")
    for i, ext in enumerate(exts):
        after = ext.properties.provisionAfterExtensions
        if len(after) > MAX_EXTENSIONS:
            raise ModelError(f"{path}[{i}].properties.provisionAfterExtensions", "has too many entries")
        for j, dep in enumerate(after):
            if dep not in names:
                raise ModelError(f"{path}[{i}].properties.provisionAfterExtensions[{j}]",
                                 f"names an unknown extension '{shown(dep)}'")
    _acyclic(exts, names, path)


def _acyclic(exts: list[Extension], names: dict[str, int], path: str) -> None:
    graph = {e.name: e.properties.provisionAfterExtensions for e in exts}
    state: dict[str, int] = {}

    def visit(n: str, trail: list[str]) -> None:  # depth <= MAX_EXTENSIONS
        if state.get(n) == 2:
            return
        if state.get(n) == 1:
            cycle = " -> ".join(trail[trail.index(n):] + [n])
            raise ModelError(f"{path}[{names[n]}].properties.provisionAfterExtensions",
                             f"dependency cycle: {cycle}")
        state[n] = 1
        for d in graph[n]:
            visit(d, trail + [n])
        state[n] = 2

    for n in graph:
        visit(n, [])
