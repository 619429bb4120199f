"""A stand-in for controller.template.prepare() (tests of the deployment engine and API that need
no expression): parameters checked for presence and type, resources and outputs taken as
written (no `[...]` evaluated), dependsOn by full id, levels in dependency order."""
from __future__ import annotations

import copy

from controller.template import template as tpl
from controller.template.errors import TemplateError

TEMPLATE_KEYS = ("type", "name", "apiVersion", "dependsOn", "copy", "condition", "resources", "comments")


def _id(env: tpl.Environment, type_: str, name: str) -> str:
    ns, *types = type_.split("/")
    names = name.split("/")
    tail = "/".join(f"{t}/{n}" for t, n in zip(types, names))
    return f"/subscriptions/{env.subscription_id}/resourceGroups/{env.resource_group}/providers/{ns}/{tail}"


def prepare(template, parameters: dict, env: tpl.Environment) -> tpl.Prepared:
    decls = template.get("parameters", {})
    for name in parameters:
        if name not in decls:
            raise TemplateError(f"parameters.{name}", f"the parameter '{name}' is not declared by the template")
    values = {}
    for name, decl in decls.items():
        if name in parameters:
            values[name] = parameters[name]["value"]
        elif "defaultValue" in decl:
            values[name] = decl["defaultValue"]
        else:
            raise TemplateError(f"parameters.{name}", f"the parameter '{name}' has no value")
    planned = []
    for n, res in enumerate(template.get("resources", [])):
        body = {k: v for k, v in res.items() if k not in TEMPLATE_KEYS}
        planned.append(tpl.PlannedResource(_id(env, res["type"], res["name"]), res["type"], res["name"],
                                           res.get("apiVersion", ""), list(res.get("dependsOn", [])),
                                           f"resources[{n}]", _evaluate=lambda _env, b=body: copy.deepcopy(b)))
    ids = {p.id.lower() for p in planned}
    for p in planned:
        for dep in p.depends_on:
            if dep.lower() not in ids:
                raise TemplateError(f"{p.path}.dependsOn", f"'{dep}' is not a resource of the template")

    def levels():
        done: set[str] = set()
        left, out = list(planned), []
        while left:
            ready = [p for p in left if all(d.lower() in done for d in p.depends_on)]
            if not ready:
                raise TemplateError("resources", "dependsOn cycle")
            out.append(ready)
            done |= {p.id.lower() for p in ready}
            left = [p for p in left if p not in ready]
        return out

    def outputs(_env):
        return {k: {"type": v.get("type", "string"), "value": v.get("value")}
                for k, v in template.get("outputs", {}).items() if not v.get("type", "").lower().startswith("secure")}

    def record():
        return {k: {"type": d.get("type", "string"), **({} if d.get("type", "").lower().startswith("secure")
                                                        else {"value": values[k]})} for k, d in decls.items()}
    return tpl.Prepared(planned, _levels=levels, _outputs=outputs, _record=record)
