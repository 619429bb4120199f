"""Evaluating expressions: a parsed tree in a `Scope` (the template's parameters and variables,
the copy indexes, the deployment's environment), calling the functions of `functions/`.
Property names, parameter and variable names are case-insensitive, as ARM's. A problem is a
TemplateError (InvalidTemplate) naming the JSON path of the string and the expression."""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from controller.template import functions
from controller.template.errors import FunctionError, TemplateError
from controller.template.functions import type_name
from controller.template.parser import Call, Index, Lit, Member, Node, is_expression, parse, unescape

functions.load_all()
BUILTIN = {"true": True, "false": False, "null": None}  # used when the table has no true()/false()/null()


@dataclass
class Context:
    """What every scope of one template shares."""
    env: Any  # controller.template.template.Environment
    parameter: Callable[[str], Any]  # name (any case) -> value; FunctionError if not declared
    variable: Callable[[str], Any]
    template: dict = field(default_factory=dict)
    parameters_record: Callable[[], dict] = field(default=lambda: {})
    # a resource's name or id -> its full id if it is a resource of this template, else None
    resolve: Callable[[str], str | None] = field(default=lambda name: None)
    secrets: list[str] = field(default_factory=list)


@dataclass
class Scope:
    ctx: Context
    copies: dict[str, int] = field(default_factory=dict)  # loop name (lower) -> index
    current: str | None = None  # the innermost loop's name (lower)
    path: str = ""
    reference_allowed: bool = True  # False where ARM refuses reference() (variables, names, count)
    on_reference: Callable[[str], None] | None = None  # called with the id a reference() resolves

    @property
    def env(self) -> Any:
        return self.ctx.env

    def with_copy(self, name: str, index: int) -> "Scope":
        return replace(self, copies={**self.copies, name.lower(): index}, current=name.lower())

    def at(self, path: str) -> "Scope":
        return replace(self, path=path)


@functools.lru_cache(maxsize=4096)
def parsed(text: str) -> Node:
    return parse(text)


def get_member(value: Any, name: str) -> Any:
    if not isinstance(value, dict):
        raise FunctionError(f"the property '{name[:80]}' cannot be read from a value of type {type_name(value)}")
    if name in value:
        return value[name]
    lower = name.lower()
    for key, item in value.items():
        if key.lower() == lower:
            return item
    available = ", ".join(list(value)[:20])
    raise FunctionError(f"the property '{name[:80]}' doesn't exist, available properties are '{available}'")


def evaluate(node: Node, scope: Scope) -> Any:
    if isinstance(node, Lit):
        return node.value
    if isinstance(node, Call):
        try:
            fn = functions.lookup(node.name)
        except FunctionError:
            if node.name.lower() in BUILTIN and not node.args:
                return BUILTIN[node.name.lower()]
            raise
        functions.check_arity(fn, len(node.args))
        if fn.lazy:
            args: list[Any] = [functools.partial(evaluate, arg, scope) for arg in node.args]
        else:
            args = [evaluate(arg, scope) for arg in node.args]
        return fn.fn(scope, *args) if fn.scope else fn.fn(*args)
    if isinstance(node, Member):
        return get_member(evaluate(node.target, scope), node.name)
    target, index = evaluate(node.target, scope), evaluate(node.index, scope)
    if isinstance(target, list):
        if isinstance(index, bool) or not isinstance(index, int):
            raise FunctionError(f"an array is indexed by an integer, not {type_name(index)}")
        if not 0 <= index < len(target):
            raise FunctionError(f"the index {index} is out of bounds of an array of length {len(target)}")
        return target[index]
    if isinstance(target, dict):
        if not isinstance(index, str):
            raise FunctionError(f"an object is indexed by a string, not {type_name(index)}")
        return get_member(target, index)
    raise FunctionError(f"a value of type {type_name(target)} cannot be indexed")


def redact(message: str, secrets: list[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            message = message.replace(secret, "***")
    return message


def expression(text: str, scope: Scope) -> Any:
    """The value of the JSON string `text` (an expression, an escaped or a plain literal)."""
    if not is_expression(text):
        return unescape(text)
    try:
        return evaluate(parsed(text), scope)
    except TemplateError:
        raise
    except FunctionError as e:
        reason = str(e)
    except RecursionError:
        reason = "the expression is nested too deeply"
    except (TypeError, ValueError, KeyError, IndexError, ZeroDivisionError, OverflowError, AttributeError) as e:
        reason = f"{type(e).__name__}: {e}"
    shown = text if len(text) <= 300 else text[:300] + "..."
    message = f"The template language expression '{shown}' is not valid: {reason}"
    raise TemplateError(scope.path, redact(message, scope.ctx.secrets)) from None


def value(obj: Any, scope: Scope) -> Any:
    """`obj` (any JSON value) with its expressions evaluated and property copy loops expanded;
    `scope.path` is obj's JSON path."""
    if isinstance(obj, str):
        return expression(obj, scope)
    if isinstance(obj, list):
        return [value(item, scope.at(f"{scope.path}[{i}]")) for i, item in enumerate(obj)]
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for key, item in obj.items():
            sub = scope.at(f"{scope.path}.{key}" if scope.path else key)
            if key.lower() == "copy" and isinstance(item, list):
                out.update(copy_properties(item, sub))
                continue
            name = expression(key, sub) if is_expression(key) else unescape(key)
            if not isinstance(name, str):
                raise TemplateError(sub.path, f"a property name must be a string, not {type_name(name)}")
            out[name] = value(item, sub)
        return out
    return obj


def count_of(raw: Any, scope: Scope, limit: int = 800) -> int:
    """A copy loop's `count`: an integer 0..limit (ARM's limit is 800)."""
    n = value(raw, scope)
    if isinstance(n, str) and n.strip().lstrip("-").isdigit():
        n = int(n)
    if isinstance(n, bool) or not isinstance(n, int):
        raise TemplateError(scope.path, f"the copy count must be an integer, not {type_name(n)}")
    if not 0 <= n <= limit:
        raise TemplateError(scope.path, f"the copy count must be between 0 and {limit}, not {n}")
    return n


def copy_properties(loops: list, scope: Scope) -> dict[str, list]:
    """A `copy` array inside an object (property iteration, variable iteration): each entry's
    `name` becomes an array of `count` evaluations of its `input`."""
    out: dict[str, list] = {}
    for i, loop in enumerate(loops):
        at = scope.at(f"{scope.path}[{i}]")
        if not isinstance(loop, dict) or not isinstance(loop.get("name"), str) or "input" not in loop:
            raise TemplateError(at.path, "a copy entry needs a 'name', a 'count' and an 'input'")
        if "count" not in loop:
            raise TemplateError(f"{at.path}.count", "the copy count is missing")
        name = loop["name"]
        n = count_of(loop["count"], at.at(f"{at.path}.count"))
        out[name] = [value(loop["input"], at.with_copy(name, k).at(f"{at.path}.input")) for k in range(n)]
    return out


def calls(node: Node, name: str) -> list[Call]:
    """Every call of the function `name` (any case; `list*` for every list function) in the tree."""
    found: list[Call] = []
    stack = [node]
    prefix = name[:-1] if name.endswith("*") else None
    while stack:
        n = stack.pop()
        if isinstance(n, Call):
            low = n.name.lower()
            if low == name or (prefix is not None and low.startswith(prefix)):
                found.append(n)
            stack.extend(n.args)
        elif isinstance(n, Member):
            stack.append(n.target)
        elif isinstance(n, Index):
            stack.extend((n.target, n.index))
    return found


def strings(obj: Any) -> list[str]:
    """Every string (values and keys) in a JSON value."""
    out: list[str] = []
    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, str):
            out.append(o)
        elif isinstance(o, list):
            stack.extend(o)
        elif isinstance(o, dict):
            out.extend(o)
            stack.extend(o.values())
    return out
