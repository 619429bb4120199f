"""virtualMachineScaleSets: PUT, PATCH, GET, DELETE, lists, and the actions (start, powerOff,
restart, reimage, manualupgrade, osRollingUpgrade, rollingUpgrades, osUpgradeHistory). Each
calls the use-case function the CLI calls (controller/ops/commands.py, rolling.py)."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web

from controller.api import bodies, operations, responses
from controller.api.context import ApiContext
from controller.api.preconditions import Preconditions, etag
from controller.api.router import Router, cacheable
from controller.api.scope import check_subscription, find_set, group, not_found, resource_id
from controller.core.errors import ModelError
from controller.model.armid import VMSS_TYPE, group_of, vmss_id
from controller.model.instance import resolve_ids, set_action_targets
from controller.model.scaleset import ScaleSet, parse
from controller.ops import commands, views
from controller.ops.lab import Lab
from controller.ops.resources import ResourceType
from controller.ops.rolling import start_upgrade
from controller.ops.upgrade_views import history_item, latest_view
from controller.state.upgrades import ACTIVE, UpgradeStore

SETS = "subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachineScaleSets"
ONE = SETS + "/{name}"
BUSY_STATE = {"create": "Creating", "update": "Updating", "delete": "Deleting"}
API_VERSIONS = ("2024-07-01", "2024-03-01", "2023-09-01", "2023-03-01", "2022-11-01", "2022-03-01", "2021-11-01")


def scale_set_view(lab: Lab, ss: ScaleSet, generation: int, ctx: ApiContext | None = None) -> dict:
    """GET's body: the model without secrets, with its ARM id, etag and provisioningState."""
    doc = bodies.without_secrets(views.show(ss, lab.instances.list(ss.name)))
    doc["etag"] = etag(generation)
    op = ctx.ops.running_on(doc["id"]) if ctx else None
    if op is not None and op.kind in BUSY_STATE:
        doc["properties"]["provisioningState"] = BUSY_STATE[op.kind]
    return doc


def find_versioned(lab: Lab, rg: str, name: str) -> tuple[ScaleSet, int]:
    """find_set's scale set with its generation, read together (the etag matches the body)."""
    stored = lab.models.stored_name(name)
    if stored is None:
        raise not_found(rg, name)
    ss, generation = lab.models.read(stored)
    if group_of(ss.id).lower() != rg.lower():
        raise not_found(rg, name)
    return ss, generation


def expectation(pre: Preconditions) -> Callable[[int | None], None] | None:
    """If-Match / If-None-Match as a write's check of the generation it read (None: no set)."""
    if not pre:
        return None
    return lambda generation: pre.check(None if generation is None else etag(generation))


def instance_ids(body: Any, required: bool = False) -> list[str] | None:
    """`instanceIds` of an action's body: a list of instance ids, or None for all."""
    ids = body.get("instanceIds") if isinstance(body, dict) else None
    if body is not None and not isinstance(body, dict):
        raise ModelError("body", "must be a JSON object")
    if ids is None:
        if required:
            raise ModelError("instanceIds", "is required: the instances to bring to the latest model ('*' for all)")
        return None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ModelError("instanceIds", "must be a list of instance ids (strings)")
    return ids


def check_succeeded(insts, field: str = "instanceIds") -> None:
    """An action's operation fails, naming them, when instances ended Failed."""
    bad = [i for i in insts if i.provisioning_state == "Failed"]
    if bad:
        raise ModelError(field, "; ".join(f"instance {i.instance_id}: {i.error}" for i in bad),
                         "InstanceOperationFailed")


def power(what: str):
    """commands.power as an action: start | stop | restart."""
    return lambda lab, name, ids: commands.power(lab, name, ids, what)


def put_document(rg: str, name: str, body: Any) -> dict:
    """A PUT's body as the document to store (the name and id the URL's)."""
    if not isinstance(body, dict):
        raise ModelError("body", "must be a JSON object (a virtualMachineScaleSets resource)")
    if isinstance(body.get("name"), str) and body["name"].lower() != name.lower():
        raise ModelError("$.name", f"'{body['name'][:80]}' differs from the name in the URL ('{name}')")
    return {**bodies.strip_azure_only(body), "name": name, "id": vmss_id(rg, name)}


def _builder(rg: str, doc: dict) -> Callable[[dict], dict]:
    """The new document from the stored one (lab-only fields kept), refused across groups."""
    def build(stored: dict) -> dict:
        if group_of(stored.get("id")).lower() != rg.lower():
            raise ModelError("name", f"scale set '{stored['name']}' exists in resource group "
                                     f"'{group_of(stored.get('id'))}'; names are unique in the lab", "Conflict")
        return {**bodies.keep_lab_fields(stored, doc), "name": stored["name"],
                "id": stored.get("id") or vmss_id(rg, stored["name"])}
    return build


def put_write(lab: Lab, rg: str, name: str, doc: dict, expect) -> tuple[commands.Written, bool]:
    """The PUT's write: create or replace the model (validated whole); True when created."""
    for _ in range(commands.MODEL_RETRIES):  # a create and a delete racing this PUT: try again
        stored = lab.models.stored_name(name)
        try:
            if stored is None:
                ss = commands.create_model(lab, doc, expect)
                return commands.Written(ss, 1, ss.sku.capacity), True
            return commands.replace_model(lab, stored, _builder(rg, doc), expect), False
        except ModelError as exc:
            now = lab.models.stored_name(name)
            raced = (exc.code == "Conflict" and stored is None and now is not None) or \
                (exc.code == "ResourceNotFound" and stored is not None and now is None)
            if not raced:
                raise
    raise ModelError("name", f"scale set '{name}' kept being created and deleted under this PUT; "
                             "send it again", "ConcurrentUpdate")


def put_check(lab: Lab, rg: str, name: str, body: Any) -> dict:
    """The PUT's validation without its write (a template's validate): the document it would store."""
    doc = put_document(rg, name, body)
    stored = lab.models.stored_name(name)
    new = doc if stored is None else _builder(rg, doc)(lab.models.get(stored).to_json())
    ss = parse(new)
    lab.resolve_image(ss)
    return new


def register(router: Router, ctx: ApiContext) -> None:
    async def lro(request: web.Request, kind: str, ss_id: str, location: str, work, *, status: int = 202,
                  result: dict | None = None) -> web.Response:
        op = ctx.ops.start(kind, ss_id, location, work)
        hdrs = operations.headers(request, op, location=request.method in ("POST", "DELETE"))
        if result is None:
            return web.Response(status=status, headers=hdrs)
        return responses.body(result, status, {**hdrs, "ETag": result["etag"]})

    async def scaled(name: str, capacity: int, created: bool) -> None:
        """The work of a PUT or PATCH: the instances to `capacity` (validated by the write); it
        fails, naming them, when instances it made ended Failed."""
        def run(lab: Lab) -> None:
            before = set() if created else {i.instance_id for i in lab.instances.list(name)}
            insts = commands.scale(lab, name, capacity)
            check_succeeded([i for i in insts if i.instance_id not in before], "sku.capacity")
        await ctx.work(run)

    async def written(request: web.Request, w: commands.Written, created: bool) -> web.Response:
        view = await ctx.read(lambda lab: scale_set_view(lab, w.model, w.generation))
        view["properties"]["provisioningState"] = "Creating" if created else "Updating"
        return await lro(request, "create" if created else "update", view["id"], w.model.location,
                         scaled(w.model.name, w.capacity, created), status=201 if created else 200, result=view)

    @cacheable()
    async def get(request: web.Request, p: dict[str, str]) -> web.Response:
        rg = group(p)
        view = await ctx.read(lambda lab: scale_set_view(lab, *find_versioned(lab, rg, p["name"]), ctx))
        return responses.body(view, headers={"ETag": view["etag"]})

    async def put(request: web.Request, p: dict[str, str]) -> web.Response:
        """Create or replace, in one write whose preconditions are checked on what it read."""
        rg, name = group(p), p["name"]
        expect = expectation(Preconditions.of(request.headers))
        doc = put_document(rg, name, await bodies.read(request))
        return await written(request, *await ctx.read(put_write, rg, name, doc, expect))

    async def deploy(rg: str, name: str, body: dict) -> dict:
        """A template's scale set: the PUT's write and its work (an operation of its own), to the end."""
        doc = put_document(rg, name, body)
        w, created = await ctx.read(put_write, rg, name, doc, None)
        view = await ctx.read(lambda lab: scale_set_view(lab, w.model, w.generation))
        op = ctx.ops.start("create" if created else "update", view["id"], w.model.location,
                           scaled(w.model.name, w.capacity, created))
        await ctx.ops.wait(op)
        if op.status != "Succeeded":
            err = op.error or {}
            raise ModelError(err.get("target") or "", err.get("message") or op.status, err.get("code"))
        return await ctx.read(lambda lab: scale_set_view(lab, *find_versioned(lab, rg, name)))

    def read(lab: Lab, rg: str, name: str) -> dict | None:
        try:
            return scale_set_view(lab, *find_versioned(lab, rg, name), ctx)
        except ModelError as exc:
            if exc.code == "ResourceNotFound":
                return None
            raise
    ctx.resource_types.add(ResourceType(VMSS_TYPE, put_check, deploy, read, API_VERSIONS))

    async def patch(request: web.Request, p: dict[str, str]) -> web.Response:
        """A merge-patch of the model read inside the write (never of an older one)."""
        rg, name = group(p), p["name"]
        expect = expectation(Preconditions.of(request.headers))
        body = await bodies.read(request)
        if not isinstance(body, dict):
            raise ModelError("body", "must be a JSON object (a VirtualMachineScaleSetUpdate)")
        change = bodies.strip_azure_only(body)

        def build(stored: dict) -> dict:
            if group_of(stored.get("id")).lower() != rg.lower():
                raise not_found(rg, name)
            merged = bodies.merge_patch(stored, change)
            return {**merged, "name": stored["name"], "id": stored.get("id") or vmss_id(rg, stored["name"])}

        def write(lab: Lab) -> commands.Written:
            stored = lab.models.stored_name(name)
            if stored is None:
                raise not_found(rg, name)
            return commands.replace_model(lab, stored, build, expect)

        return await written(request, await ctx.read(write), False)

    async def delete(request: web.Request, p: dict[str, str]) -> web.Response:
        """202 and an operation; 204 when there is no such set. A DELETE while another one runs
        answers with that one's operation; one that finds the set already gone succeeds."""
        rg, name = group(p), p["name"]
        expect = expectation(Preconditions.of(request.headers))

        def current(lab: Lab) -> ScaleSet | None:
            try:
                ss, generation = find_versioned(lab, rg, name)
            except ModelError as exc:
                if exc.code != "ResourceNotFound":
                    raise
                ss, generation = None, None
            if expect is not None:
                expect(generation)
            return ss

        ss = await ctx.read(current)
        if ss is None:
            return web.Response(status=204)
        running = ctx.ops.running_on(resource_id(ss))
        if running is not None and running.kind == "delete":
            return web.Response(status=202, headers=operations.headers(request, running, location=True))

        async def work() -> None:
            try:
                await ctx.work(commands.delete, ss.name, expect)
            except ModelError as exc:
                if exc.code != "ResourceNotFound":  # another DELETE (or the CLI) removed it first
                    raise
        return await lro(request, "delete", resource_id(ss), ss.location, work())

    @cacheable()
    async def list_group(request: web.Request, p: dict[str, str]) -> web.Response:
        rg = group(p)
        return responses.page(request, await ctx.read(lambda lab: [
            scale_set_view(lab, ss, gen, ctx) for ss, gen in lab.models.versions()
            if group_of(ss.id).lower() == rg.lower()]))

    @cacheable()
    async def list_all(request: web.Request, p: dict[str, str]) -> web.Response:
        check_subscription(p)
        return responses.page(request, await ctx.read(lambda lab: [scale_set_view(lab, ss, gen, ctx)
                                                                   for ss, gen in lab.models.versions()]))

    def action(kind: str, fn, pick=set_action_targets, required: bool = False):
        """POST of an action on instances: the ids are checked (they exist, protection) before the 202."""
        async def handler(request: web.Request, p: dict[str, str]) -> web.Response:
            rg = group(p)
            ids = instance_ids(await bodies.read(request, required=required), required)

            def target(lab: Lab) -> ScaleSet:
                ss = find_set(lab, rg, p["name"])
                if ids is not None:
                    pick(lab.instances.list(ss.name), ids, "instanceIds")
                return ss
            ss = await ctx.read(target)

            async def work() -> None:
                check_succeeded(await ctx.work(fn, ss.name, ids))
            return await lro(request, kind, resource_id(ss), ss.location, work())
        return handler

    async def os_rolling_upgrade(request: web.Request, p: dict[str, str]) -> web.Response:
        rg = group(p)
        if ctx.controller is None:
            raise ModelError("controller", "rolling upgrades through the API need `scaleset controller`",
                             "OperationNotAllowed")
        ss = await ctx.read(find_set, rg, p["name"])
        up = await ctx.read(lambda lab: start_upgrade(lab, ss, "User"))
        ended = ctx.drive(ss.name, up)

        async def work() -> None:
            await asyncio.shield(ended)
            end = await ctx.read(lambda lab: UpgradeStore(lab.db).get(up.id))
            if end.status == "Cancelled":
                raise asyncio.CancelledError
            if end.status == "Faulted":
                raise ModelError("rollingUpgrade", end.error_message or "the rolling upgrade faulted",
                                 end.error_code or "RollingUpgradeFaulted")
        return await lro(request, "osRollingUpgrade", resource_id(ss), ss.location, work())

    async def cancel(request: web.Request, p: dict[str, str]) -> web.Response:
        rg = group(p)
        ss = await ctx.read(find_set, rg, p["name"])
        up = await ctx.read(lambda lab: UpgradeStore(lab.db).request_cancel(ss.name))

        async def work() -> None:  # done once the in-flight instances settled and the upgrade stopped
            while (await ctx.read(lambda lab: UpgradeStore(lab.db).get(up.id))).status == ACTIVE:
                await asyncio.sleep(0.5)
        return await lro(request, "cancel", resource_id(ss), ss.location, work())

    @cacheable()
    async def latest(request: web.Request, p: dict[str, str]) -> web.Response:
        rg = group(p)

        def view(lab: Lab) -> dict:
            ss = find_set(lab, rg, p["name"])
            up = UpgradeStore(lab.db).latest(ss.name)
            if up is None:
                raise ModelError("name", f"scale set '{ss.name}' has no rolling upgrade yet", "NotFound")
            return views.as_resource(latest_view(lab, up))
        return responses.body(await ctx.read(view))

    @cacheable()
    async def history(request: web.Request, p: dict[str, str]) -> web.Response:
        rg = group(p)

        def items(lab: Lab) -> list[dict]:
            ss = find_set(lab, rg, p["name"])
            return [history_item(lab, up) for up in UpgradeStore(lab.db).history(ss.name)]
        return responses.page(request, await ctx.read(items))

    async def instance_view(request: web.Request, p: dict[str, str]) -> web.Response:
        rg = group(p)

        def view(lab: Lab) -> dict:
            ss = find_set(lab, rg, p["name"])
            insts = lab.instances.list(ss.name)
            return views.aggregate_view(ss, insts, lab.states(insts).states)
        return responses.body(await ctx.guest(view))

    router.add("GET", ONE, get)
    router.add("PUT", ONE, put)
    router.add("PATCH", ONE, patch)
    router.add("DELETE", ONE, delete)
    router.add("GET", SETS, list_group)
    router.add("GET", "subscriptions/{sub}/providers/Microsoft.Compute/virtualMachineScaleSets", list_all)
    router.add("POST", ONE + "/start", action("start", power("start"), resolve_ids))
    router.add("POST", ONE + "/powerOff", action("powerOff", power("stop"), resolve_ids))
    router.add("POST", ONE + "/restart", action("restart", power("restart"), resolve_ids))
    router.add("POST", ONE + "/reimage", action("reimage", commands.reimage))
    # reimageAll (`az vmss reimage --instance-ids`): the OS disk only -- the lab never wipes a data disk
    router.add("POST", ONE + "/reimageall", action("reimage", commands.reimage))
    router.add("POST", ONE + "/manualupgrade", action("manualupgrade", commands.update_instances, required=True))
    router.add("POST", ONE + "/osRollingUpgrade", os_rolling_upgrade)
    router.add("POST", ONE + "/rollingUpgrades/cancel", cancel)
    router.add("GET", ONE + "/rollingUpgrades/latest", latest)
    router.add("GET", ONE + "/osUpgradeHistory", history)
    router.add("GET", ONE + "/instanceView", instance_view)

    async def operation(request: web.Request, p: dict[str, str]) -> web.Response:
        check_subscription(p)
        return operations.status_response(request, ctx.ops.get(p["op"]))
    router.add("GET", "subscriptions/{sub}/providers/Microsoft.Compute/locations/{loc}/operations/{op}", operation)
