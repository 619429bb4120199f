"""A template's `parameters` (declarations checked against the given values: type, allowedValues,
min/max value and length, defaults that may be expressions) and `variables` (evaluated lazily, so
they may refer to each other, with `copy`). Names are case-insensitive. Secure values never appear
in an error or a record."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from controller.template.errors import FunctionError, TemplateError
from controller.template.evaluator import Scope, copy_properties, strings, value
from controller.template.functions import type_name

TYPES = {"string": "String", "securestring": "SecureString", "int": "Int", "bool": "Bool",
         "object": "Object", "secureobject": "SecureObject", "array": "Array"}
SECURE = {"securestring", "secureobject"}


def coerce(kind: str, v: Any) -> Any:
    """`v` read as ARM reads a value of type `kind` (numbers and booleans given as strings); or
    FunctionError naming the types (never the value)."""
    if kind in ("string", "securestring") and isinstance(v, str):
        return v
    if kind == "int":
        if isinstance(v, int) and not isinstance(v, bool):
            return v
        if isinstance(v, str) and v.strip().lstrip("-+").isdigit():
            return int(v.strip())
    if kind == "bool":
        if isinstance(v, bool):
            return v
        if isinstance(v, str) and v.strip().lower() in ("true", "false"):
            return v.strip().lower() == "true"
    if kind in ("object", "secureobject") and isinstance(v, dict):
        return v
    if kind == "array" and isinstance(v, list):
        return v
    raise FunctionError(f"expected a value of type '{TYPES[kind]}', but received a value of type '{type_name(v)}'")


def given_values(given: Any) -> dict:
    """{name: value} from {name: {"value": v}} or a parameter file's whole document."""
    if given is None:
        return {}
    if not isinstance(given, dict):
        raise TemplateError("parameters", f"the parameters must be an object, not {type_name(given)}")
    if isinstance(given.get("parameters"), dict) and ("$schema" in given or "contentVersion" in given):
        given = given["parameters"]
    out = {}
    for name, entry in given.items():
        if not isinstance(entry, dict) or not ("value" in entry or "reference" in entry):
            raise TemplateError(f"parameters.{name}", "a parameter value must be an object {\"value\": ...}")
        if "reference" in entry and "value" not in entry:
            raise TemplateError(f"parameters.{name}", "Key Vault references are not supported by the lab; "
                                "give the value", "InvalidTemplate")
        out[name] = entry["value"]
    return out


class Parameters:
    def __init__(self, decls: Any, given: Any, scope: Callable[[], Scope]) -> None:
        if decls is None:
            decls = {}
        if not isinstance(decls, dict):
            raise TemplateError("parameters", f"the template's parameters must be an object, not {type_name(decls)}")
        self.decls: dict[str, tuple[str, dict]] = {}  # lower -> (name, declaration)
        for name, decl in decls.items():
            at = f"parameters.{name}"
            if not isinstance(decl, dict) or not isinstance(decl.get("type"), str):
                raise TemplateError(at, "a parameter declaration needs a 'type'")
            if decl["type"].lower() not in TYPES:
                raise TemplateError(f"{at}.type", f"the type '{decl['type'][:40]}' is not one of "
                                    f"{', '.join(TYPES.values())}")
            self.decls[name.lower()] = (name, decl)
        self.given = {}
        for name, v in given_values(given).items():
            if name.lower() not in self.decls:
                known = ", ".join(n for n, _ in self.decls.values())
                raise TemplateError(f"parameters.{name}", f"The template parameter '{name[:80]}' is not valid: it is "
                                    f"not present in the template. The template's parameters are '{known}'")
            self.given[name.lower()] = v
        self.scope = scope
        self.values: dict[str, Any] = {}
        self.busy: set[str] = set()
        self.secrets: list[str] = []

    def kind(self, lower: str) -> str:
        return self.decls[lower][1]["type"].lower()

    def get(self, name: str) -> Any:
        lower = name.lower()
        if lower in self.values:
            return self.values[lower]
        if lower not in self.decls:
            raise FunctionError(f"The template parameter '{name[:80]}' is not found")
        if lower in self.busy:
            raise FunctionError(f"the default value of the parameter '{name[:80]}' refers to itself")
        canonical, decl = self.decls[lower]
        at = f"parameters.{canonical}"
        kind = self.kind(lower)
        self.busy.add(lower)
        try:
            if lower in self.given:
                raw, where = self.given[lower], at
            elif "defaultValue" in decl:
                where = f"{at}.defaultValue"
                sc = self.scope().at(where)
                sc.reference_allowed = False
                raw = value(decl["defaultValue"], sc)
            else:
                raise TemplateError(at, f"The value for the template parameter '{canonical}' is not provided")
            if kind in SECURE:  # known as secret before any check can show it
                self.secrets.extend(s for s in strings(raw) if s)
            try:
                v = coerce(kind, raw)
            except FunctionError as e:
                raise TemplateError(where, f"Template parameter '{canonical}' was provided an invalid value: "
                                    f"{e}") from None
            self.check(canonical, decl, kind, v, where)
        finally:
            self.busy.discard(lower)
        self.values[lower] = v
        return v

    def check(self, name: str, decl: dict, kind: str, v: Any, at: str) -> None:
        shown = "the value" if kind in SECURE else f"the value '{str(v)[:200]}'"
        allowed = decl.get("allowedValues")
        if isinstance(allowed, list):
            items = v if kind == "array" else [v]
            if any(item not in allowed for item in items):
                options = "the allowed values" if kind in SECURE else \
                    "the allowed value(s): '" + ", ".join(str(a) for a in allowed)[:300] + "'"
                raise TemplateError(at, f"The provided value for the template parameter '{name}' is not valid: "
                                    f"{shown} is not part of {options}")
        if kind == "int":
            lo, hi = decl.get("minValue"), decl.get("maxValue")
            if isinstance(lo, int) and v < lo:
                raise TemplateError(at, f"The provided value for the template parameter '{name}' is not valid: "
                                    f"{shown} is less than the minimum value {lo}")
            if isinstance(hi, int) and v > hi:
                raise TemplateError(at, f"The provided value for the template parameter '{name}' is not valid: "
                                    f"{shown} is more than the maximum value {hi}")
        if kind in ("string", "securestring", "array"):
            lo, hi = decl.get("minLength"), decl.get("maxLength")
            length = "its length" if kind in SECURE else f"its length {len(v)}"
            if isinstance(lo, int) and len(v) < lo:
                raise TemplateError(at, f"The provided value for the template parameter '{name}' is not valid: "
                                    f"{length} is less than the minimum length {lo}")
            if isinstance(hi, int) and len(v) > hi:
                raise TemplateError(at, f"The provided value for the template parameter '{name}' is not valid: "
                                    f"{length} is more than the maximum length {hi}")

    def resolve_all(self) -> None:
        for lower in self.decls:
            try:
                self.get(lower)
            except FunctionError as e:
                raise TemplateError(f"parameters.{self.decls[lower][0]}", str(e)) from None

    def record(self) -> dict:
        out = {}
        for lower, (name, _) in self.decls.items():
            kind = self.kind(lower)
            out[name] = {"type": TYPES[kind]}
            if kind not in SECURE:
                out[name]["value"] = self.values.get(lower)
        return out


class Variables:
    def __init__(self, decls: Any, scope: Callable[[], Scope]) -> None:
        if decls is None:
            decls = {}
        if not isinstance(decls, dict):
            raise TemplateError("variables", f"the template's variables must be an object, not {type_name(decls)}")
        self.decls: dict[str, tuple[str, Any, str]] = {}  # lower -> (name, raw, path)
        self.loops: dict[str, tuple[str, dict, str]] = {}  # lower -> (name, copy entry, path)
        for name, raw in decls.items():
            if name.lower() == "copy" and isinstance(raw, list):
                for i, loop in enumerate(raw):
                    if not isinstance(loop, dict) or not isinstance(loop.get("name"), str):
                        raise TemplateError(f"variables.copy[{i}]",
                                            "a copy entry needs a 'name', a 'count' and an 'input'")
                    self.loops[loop["name"].lower()] = (loop["name"], loop, f"variables.copy[{i}]")
            else:
                self.decls[name.lower()] = (name, raw, f"variables.{name}")
        self.scope = scope
        self.values: dict[str, Any] = {}
        self.busy: list[str] = []

    def get(self, name: str) -> Any:
        lower = name.lower()
        if lower in self.values:
            return self.values[lower]
        if lower not in self.decls and lower not in self.loops:
            raise FunctionError(f"The template variable '{name[:80]}' is not found")
        if lower in self.busy:
            chain = " -> ".join(self.busy[self.busy.index(lower):] + [lower])
            raise FunctionError(f"the variables refer to themselves: {chain}")
        self.busy.append(lower)
        try:
            if lower in self.decls:
                _, raw, path = self.decls[lower]
                sc = self.scope().at(path)
                sc.reference_allowed = False
                v = value(raw, sc)
            else:
                _, loop, path = self.loops[lower]
                sc = self.scope().at(path)
                sc.reference_allowed = False
                v = next(iter(copy_properties([loop], sc).values()))
        finally:
            self.busy.pop()
        self.values[lower] = v
        return v

    def resolve_all(self) -> None:
        for lower in list(self.decls) + list(self.loops):
            self.get(lower)
