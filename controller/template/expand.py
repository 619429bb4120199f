"""prepare(): a template's resources expanded (copy loops with mode/batchSize, conditions, child
resources nested or by type/name segments, full ids), their dependencies (dependsOn by name, id
or loop name; reference() of a resource of the template; a parent before its children; serial
batches), ordered in levels (a cycle is InvalidTemplate naming it), and the outputs."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from controller.template.errors import FunctionError, TemplateError
from controller.template.evaluator import Context, Scope, calls, count_of, parsed, redact, value
from controller.template.functions import type_name
from controller.template.params import SECURE, TYPES, Parameters, Variables, coerce
from controller.template.parser import is_expression
from controller.template.template import Environment, PlannedResource, Prepared

UNSUPPORTED = {"existing": "a reference to a resource deployed elsewhere"}
TEMPLATE_KEYS = {"name", "type", "apiversion", "dependson", "copy", "condition", "resources", "comments"}
MAX_RESOURCES = 800


@dataclass
class _Item:
    res: PlannedResource
    raw: dict
    scope: Scope
    loop: str | None = None  # the copy loop's name (lower)
    depends_raw: list = field(default_factory=list)


def _resource_id(env: Environment, rtype: str, name: str) -> str:
    types, names = rtype.split("/"), name.split("/")
    parts = [types[0]]
    for t, n in zip(types[1:], names):
        parts += [t, n]
    return f"/subscriptions/{env.subscription_id}/resourceGroups/{env.resource_group}/providers/{'/'.join(parts)}"


def _string(raw: Any, scope: Scope, what: str) -> str:
    v = value(raw, scope)
    if not isinstance(v, str) or not v:
        raise TemplateError(scope.path, f"the resource's {what} must be a non-empty string, not {type_name(v)}")
    return v


class _Builder:
    def __init__(self, template: dict, env: Environment, ctx: Context) -> None:
        self.template, self.env, self.ctx = template, env, ctx
        self.items: list[_Item] = []
        self.skipped: list[tuple[str, str, str, str | None]] = []  # (id, type/name, name, loop) left out
        self.loops: dict[str, list[_Item]] = {}
        self.ids: set[str] = set()

    def expand(self, raw: Any, path: str, scope: Scope, parent: _Item | None) -> None:
        if not isinstance(raw, dict):
            raise TemplateError(path, f"a resource must be an object, not {type_name(raw)}")
        base = scope.at(path)
        base.reference_allowed = False
        loop = raw.get("copy")
        if loop is None:
            self.instance(raw, path, base, parent, None, None)
            return
        if not isinstance(loop, dict) or not isinstance(loop.get("name"), str) or "count" not in loop:
            raise TemplateError(f"{path}.copy", "a resource's copy needs a 'name' and a 'count'")
        name = loop["name"]
        n = count_of(loop["count"], base.at(f"{path}.copy.count"), MAX_RESOURCES)
        mode = str(loop.get("mode", "parallel")).lower()
        if mode not in ("serial", "parallel"):
            raise TemplateError(f"{path}.copy.mode",
                                f"the copy mode must be 'Serial' or 'Parallel', not '{mode[:40]}'")
        batch = n or 1
        if mode == "serial":
            batch = loop.get("batchSize", 1)
            batch = value(batch, base.at(f"{path}.copy.batchSize"))
            if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
                raise TemplateError(f"{path}.copy.batchSize", "the batch size must be a positive integer")
        made: list[_Item] = []
        for k in range(n):
            item = self.instance(raw, path, base.with_copy(name, k), parent, name, k)
            if item is not None:
                made.append(item)
        self.loops.setdefault(name.lower(), []).extend(made)
        if mode == "serial":
            for item in made:
                k = item.res.index or 0
                if k >= batch:
                    item.res.depends_on += [o.res.id for o in made if (o.res.index or 0) // batch == k // batch - 1]

    def instance(self, raw: dict, path: str, scope: Scope, parent: _Item | None, loop: str | None,
                 index: int | None) -> _Item | None:
        rtype = _string(raw.get("type"), scope.at(f"{path}.type"), "type")
        name = _string(raw.get("name"), scope.at(f"{path}.name"), "name")
        for key in raw:
            if key.lower() in UNSUPPORTED:
                raise TemplateError(f"{path}.{key}", f"'{key}' ({UNSUPPORTED[key.lower()]}) is not supported by the lab")
        if parent is not None and "/" not in rtype:
            rtype, name = f"{parent.res.type}/{rtype}", f"{parent.res.name}/{name}"
        segments = len(rtype.strip("/").split("/"))
        if segments < 2 or len(name.split("/")) != segments - 1:
            raise TemplateError(f"{path}.name", f"The template resource '{name[:120]}' for type '{rtype[:120]}' has "
                                "incorrect segment lengths: a resource type needs one more segment than its name")
        rid = _resource_id(self.env, rtype, name)
        keep = True
        if "condition" in raw:
            cond = value(raw["condition"], scope.at(f"{path}.condition"))
            if isinstance(cond, str) and cond.lower() in ("true", "false"):
                cond = cond.lower() == "true"
            if not isinstance(cond, bool):
                raise TemplateError(f"{path}.condition", f"the condition must be a boolean, not {type_name(cond)}")
            keep = cond
        if not keep:
            self.skipped.append((rid.lower(), f"{rtype}/{name}".lower(), name.lower(), loop.lower() if loop else None))
            return None
        if "apiVersion" not in raw:
            raise TemplateError(f"{path}.apiVersion", "the resource has no apiVersion")
        api = _string(raw["apiVersion"], scope.at(f"{path}.apiVersion"), "apiVersion")
        depends = raw.get("dependsOn", [])
        if not isinstance(depends, list):
            raise TemplateError(f"{path}.dependsOn", f"dependsOn must be an array, not {type_name(depends)}")
        res = PlannedResource(id=rid, type=rtype, name=name, api_version=api, depends_on=[], path=path,
                              copy=loop, index=index)
        item = _Item(res, raw, scope, loop.lower() if loop else None, depends)
        if rid.lower() in self.ids:
            raise TemplateError(f"{path}.name", f"The resource '{rtype}/{name[:200]}' is defined multiple times "
                                "in the template")
        self.ids.add(rid.lower())
        if len(self.items) >= MAX_RESOURCES:
            raise TemplateError("resources", f"the template has more than {MAX_RESOURCES} resources")
        self.items.append(item)
        res._evaluate = self.evaluator(item)
        children = raw.get("resources", [])
        if not isinstance(children, list):
            raise TemplateError(f"{path}.resources", f"resources must be an array, not {type_name(children)}")
        for j, child in enumerate(children):
            self.expand(child, f"{path}.resources[{j}]", scope, item)
        return item

    def evaluator(self, item: _Item):
        body = {k: v for k, v in item.raw.items() if k.lower() not in TEMPLATE_KEYS}

        def evaluate(env: Environment) -> dict:
            sc = replace(item.scope, ctx=replace(self.ctx, env=env), reference_allowed=True)
            return _bounded(lambda: value(body, sc), item.res.path)
        return evaluate

    # -- names to ids

    def matches(self, text: str) -> list[str] | None:
        """The ids of the template's resources `text` names (id, type/name, name or loop), [] if
        it names only resources left out by their condition, None if it names nothing."""
        lower = text.lower().rstrip("/")
        for key in (lambda r: r.id.lower(), lambda r: r.id.lower().split("/providers/", 1)[1],
                    lambda r: f"{r.type}/{r.name}".lower(), lambda r: r.name.lower()):
            found = [i.res.id for i in self.items if key(i.res) == lower]
            if found:
                return found
        if lower in self.loops:
            return [i.res.id for i in self.loops[lower]]
        if any(lower in (s[0], s[1], s[2], s[3]) for s in self.skipped):
            return []
        return None

    def resolve(self, text: str) -> str | None:
        found = self.matches(text)
        return found[0] if found else None

    def dependencies(self) -> None:
        ids = {i.res.id.lower(): i.res.id for i in self.items}
        for item in self.items:
            res, deps = item.res, item.res.depends_on
            for j, entry in enumerate(item.depends_raw):
                at = item.scope.at(f"{res.path}.dependsOn[{j}]")
                text = value(entry, at)
                if not isinstance(text, str):
                    raise TemplateError(at.path, f"a dependsOn entry must be a string, not {type_name(text)}")
                found = self.matches(text)
                if found is None:
                    raise TemplateError(at.path, f"The resource '{text[:200]}' is not defined in the template")
                deps += found
            for parent in _parents(res.id):
                if parent.lower() in ids:
                    deps.append(ids[parent.lower()])
            deps += self.referenced(item)
            seen: set[str] = set()
            res.depends_on = [d for d in deps if not (d.lower() in seen or seen.add(d.lower()))]

    def referenced(self, item: _Item) -> list[str]:
        """Ids of this template's resources that the body's reference()/list*() calls name."""
        out = []
        body = {k: v for k, v in item.raw.items() if k.lower() not in TEMPLATE_KEYS}
        for path, text in _expressions(body, item.res.path):
            try:
                tree = parsed(text)
            except FunctionError as e:
                raise TemplateError(path, f"The template language expression '{text[:300]}' is not valid: "
                                    f"{e}") from None
            found = [c for c in calls(tree, "reference") if c.args]
            found += [c for c in calls(tree, "list*") if c.args]
            for call in found:
                sc = item.scope.at(path)
                sc.reference_allowed = False
                try:
                    from controller.template.evaluator import evaluate
                    target = evaluate(call.args[0], sc)
                except (FunctionError, TemplateError):
                    continue
                # as ARM: a reference by name (not by id) to a resource of the template waits for it
                named = isinstance(target, str) and not target.startswith("/")
                rid = self.resolve(target) if named else None
                if rid is not None:
                    out.append(rid)
        return out


def _expressions(obj: Any, path: str):
    """(path, text) of every expression string in a JSON value."""
    if isinstance(obj, str):
        if is_expression(obj):
            yield path, obj
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _expressions(v, f"{path}[{i}]")
    elif isinstance(obj, dict):
        for k, v in obj.items():
            if is_expression(k):
                yield f"{path}.{k}", k
            yield from _expressions(v, f"{path}.{k}")


def _parents(rid: str) -> list[str]:
    parts = rid.split("/")  # '', subscriptions, s, resourceGroups, g, providers, ns, t1, n1, t2, n2...
    return ["/".join(parts[:end]) for end in range(len(parts) - 2, 8, -2)]


def levels(resources: list[PlannedResource]) -> list[list[PlannedResource]]:
    """Topological levels; TemplateError naming the cycle if there is one."""
    by_id = {r.id.lower(): r for r in resources}
    level: dict[str, int] = {}
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(r: PlannedResource, stack: list[PlannedResource]) -> int:
        key = r.id.lower()
        if state.get(key) == 2:
            return level[key]
        if state.get(key) == 1:
            cycle = stack[[s.id.lower() for s in stack].index(key):] + [r]
            names = " -> ".join(f"{s.type}/{s.name}" for s in cycle)
            raise TemplateError(r.path + ".dependsOn", f"Circular dependency detected on resource: "
                                f"'{r.type}/{r.name}' (a cycle: {names})")
        state[key] = 1
        stack.append(r)
        deps = [by_id[d.lower()] for d in r.depends_on if d.lower() in by_id]
        level[key] = 1 + max((visit(d, stack) for d in deps), default=-1)
        stack.pop()
        state[key] = 2
        return level[key]

    for r in resources:
        visit(r, [])
    out: list[list[PlannedResource]] = [[] for _ in range(1 + max(level.values(), default=-1))]
    for r in resources:
        out[level[r.id.lower()]].append(r)
    return out


def _redacted(v: Any, secrets: list[str]) -> Any:
    if isinstance(v, str):
        return redact(v, secrets)
    if isinstance(v, list):
        return [_redacted(x, secrets) for x in v]
    if isinstance(v, dict):
        return {k: _redacted(x, secrets) for k, x in v.items()}
    return v


def _outputs(decls: Any, ctx: Context, env: Environment) -> dict:
    out = {}
    scope = Scope(replace(ctx, env=env))
    for name, decl in (decls or {}).items():
        at = f"outputs.{name}"
        kind = str(decl.get("type", "")).lower() if isinstance(decl, dict) else ""
        if kind not in TYPES:
            raise TemplateError(f"{at}.type", f"an output needs a type, one of {', '.join(TYPES.values())}")
        if "condition" in decl and value(decl["condition"], scope.at(f"{at}.condition")) in (False, "false", "False"):
            continue
        if isinstance(decl.get("copy"), dict):
            loop = decl["copy"]
            n = count_of(loop.get("count"), scope.at(f"{at}.copy.count"))
            v: Any = [value(loop.get("input"), scope.with_copy(name, k).at(f"{at}.copy.input")) for k in range(n)]
        elif "value" in decl:
            v = value(decl["value"], scope.at(f"{at}.value"))
        else:
            raise TemplateError(at, "an output needs a 'value' or a 'copy'")
        try:
            v = coerce(kind, v)
        except FunctionError as e:
            raise TemplateError(at, f"The template output '{name}' is not valid: {e}") from None
        if kind not in SECURE:  # and no secure parameter's value shown in any other output
            out[name] = {"type": TYPES[kind], "value": _redacted(v, ctx.secrets)}
    return out


def _bounded(work: Callable[[], Any], path: str) -> Any:
    try:
        return work()
    except RecursionError:
        raise TemplateError(path, "the template is nested too deeply") from None


def prepare(template: Any, parameters: Any, env: Environment) -> Prepared:
    return _bounded(lambda: _prepare(template, parameters, env), "template")


def _prepare(template: Any, parameters: Any, env: Environment) -> Prepared:
    if not isinstance(template, dict):
        raise TemplateError("template", f"the template must be an object, not {type_name(template)}")
    if template.get("functions"):
        raise TemplateError("functions", "user-defined functions are not supported by the lab")
    resources = template.get("resources", [])
    if not isinstance(resources, list):
        raise TemplateError("resources", "resources must be an array (languageVersion 2.0 is not supported)")
    outputs = template.get("outputs") or {}
    if not isinstance(outputs, dict):
        raise TemplateError("outputs", f"outputs must be an object, not {type_name(outputs)}")
    holder: dict[str, Any] = {}
    ctx = Context(env, parameter=lambda n: holder["p"].get(n), variable=lambda n: holder["v"].get(n),
                  template=template)
    params = Parameters(template.get("parameters"), parameters, lambda: Scope(ctx))
    holder["p"], holder["v"] = params, Variables(template.get("variables"), lambda: Scope(ctx))
    ctx.secrets = params.secrets
    ctx.parameters_record = params.record
    params.resolve_all()
    holder["v"].resolve_all()
    builder = _Builder(template, env, ctx)
    ctx.resolve = builder.resolve
    for i, raw in enumerate(resources):
        builder.expand(raw, f"resources[{i}]", Scope(ctx), None)
    builder.dependencies()
    planned = [i.res for i in builder.items]
    ordered = levels(planned)
    for name, decl in outputs.items():  # syntax errors now, values at the end
        for path, text in _expressions(decl, f"outputs.{name}"):
            try:
                parsed(text)
            except FunctionError as e:
                raise TemplateError(path, f"The template language expression '{text[:300]}' is not valid: "
                                    f"{e}") from None
    return Prepared(planned, _levels=lambda: ordered,
                    _outputs=lambda e: _bounded(lambda: _outputs(outputs, ctx, e), "outputs"),
                    _record=params.record)
