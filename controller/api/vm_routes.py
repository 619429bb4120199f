"""virtualMachineScaleSets/{name}/virtualMachines: list, get, PUT / PATCH (protectionPolicy),
instanceView, and the per-instance actions (start, powerOff, restart, reimage, runCommand)."""
from __future__ import annotations

from functools import partial

from aiohttp import web

from controller.api import bodies, operations, responses, vm_bodies
from controller.api.context import ApiContext
from controller.api.preconditions import Preconditions, etag
from controller.api.router import Router, cacheable
from controller.api.scope import find_set, group
from controller.api.vmss_routes import ONE, check_succeeded, power
from controller.core.errors import ModelError
from controller.model.armid import group_of, vm_id
from controller.model.instance import profile_digest, record_version, resolve_ids
from controller.ops import commands, views
from controller.ops.lab import Lab
from controller.ops.protection import set_protection
from controller.state.health import HealthStore

VMS = ONE + "/virtualMachines"
VM = VMS + "/{iid}"
TOP = ("id", "name", "type", "location", "instanceId")


def vm_resource(lab: Lab, ss, inst, health, expand: bool = False, digest: str | None = None) -> dict:
    """A VirtualMachineScaleSetVM: ARM's shape (properties nested), the last recorded health, the
    etag of the instance's record."""
    res = views.as_resource(bodies.without_secrets(views.instance(ss, inst, health, digest)), TOP)
    res["etag"] = etag(record_version(inst))
    if expand:
        res["properties"]["instanceView"] = _view(lab, ss, inst, health)
    return res


def _view(lab: Lab, ss, inst, health) -> dict:
    hs = lab.states([inst])
    return views.instance_view(ss, inst, hs.states.get(inst.domain), views.vm_health(health),
                               hs.unreachable.get(inst.domain))


def register(router: Router, ctx: ApiContext) -> None:
    def one(lab: Lab, p: dict[str, str]):
        ss = find_set(lab, group(p), p["name"])
        inst = resolve_ids(lab.instances.list(ss.name), [p["iid"]], "instanceId")[0]
        return ss, inst

    @cacheable(lambda r: "$expand" not in r.query)
    async def list_vms(request: web.Request, p: dict[str, str]) -> web.Response:
        expand = request.query.get("$expand", "").lower() == "instanceview"

        def items(lab: Lab) -> list[dict]:
            ss = find_set(lab, group(p), p["name"])
            health, digest = HealthStore(lab.db).get(ss.name), profile_digest(ss)
            return [vm_resource(lab, ss, i, health.get(i.instance_id), expand, digest)
                    for i in lab.instances.list(ss.name)]
        return responses.page(request, await ctx.read(items))

    @cacheable(lambda r: "$expand" not in r.query)
    async def get_vm(request: web.Request, p: dict[str, str]) -> web.Response:
        expand = request.query.get("$expand", "").lower() == "instanceview"

        def item(lab: Lab) -> dict:
            ss, inst = one(lab, p)
            return vm_resource(lab, ss, inst, HealthStore(lab.db).get(ss.name).get(inst.instance_id), expand)
        res = await ctx.read(item)
        return responses.body(res, headers={"ETag": res["etag"]})

    async def update_vm(request: web.Request, p: dict[str, str]) -> web.Response:
        """PUT and PATCH: the protectionPolicy changes (If-Match / If-None-Match checked on the
        row the write reads); the answer is an operation that has ended."""
        pre = Preconditions.of(request.headers)
        body = await bodies.read(request)

        def write(lab: Lab):
            ss, inst = one(lab, p)
            scale_in, set_actions = vm_bodies.protection_change(body, vm_resource(lab, ss, inst, None))
            inst = set_protection(lab, ss.name, str(inst.instance_id), scale_in, set_actions, vm_bodies.FIELDS,
                                  (lambda row: pre.check(etag(record_version(row)))) if pre else None)
            return ss, vm_resource(lab, ss, inst, HealthStore(lab.db).get(ss.name).get(inst.instance_id))
        ss, view = await ctx.read(write)

        async def done() -> dict:
            return view
        op = ctx.ops.start("update", view["id"], ss.location, done())
        return responses.body(view, 200, {**operations.headers(request, op, location=False), "ETag": view["etag"]})

    async def instance_view(request: web.Request, p: dict[str, str]) -> web.Response:
        def view(lab: Lab) -> dict:  # read again from the guest, as the CLI does (a worker: it may wait)
            ss, inst = one(lab, p)
            inst = commands.refresh(lab, inst)
            health = commands.poll_health(lab, ss, insts=[inst]).get(inst.instance_id)
            return _view(lab, ss, inst, health)
        return responses.body(await ctx.guest(view))

    def action(kind: str, fn):
        async def handler(request: web.Request, p: dict[str, str]) -> web.Response:
            ss, inst = await ctx.read(one, p)

            async def work() -> None:
                check_succeeded(await ctx.work(fn, ss.name, [str(inst.instance_id)]), "instanceId")
            op = ctx.ops.start(kind, vm_id(group_of(ss.id), ss.name, inst.instance_id), ss.location, work())
            return web.Response(status=202, headers=operations.headers(request, op, location=True))
        return handler

    async def run_command(request: web.Request, p: dict[str, str]) -> web.Response:
        body = await bodies.read(request)
        if not isinstance(body, dict):
            raise ModelError("body", "must be a JSON object (RunCommandInput)")
        if body.get("commandId") != "RunShellScript":
            raise ModelError("commandId", f"'{str(body.get('commandId'))[:40]}': the lab runs 'RunShellScript' only")
        lines = body.get("script")
        if not isinstance(lines, list) or not all(isinstance(x, str) for x in lines):
            raise ModelError("script", "must be a list of shell lines")
        script = "\n".join(lines) + "\n"
        commands.check_script(script, "script")
        ss, inst = await ctx.read(one, p)

        async def work() -> dict:
            res = await ctx.guest(lambda lab: commands.run_command(lab, ss.name, str(inst.instance_id), script))
            return views.run_command_result(res)
        op = ctx.ops.start("runCommand", vm_id(group_of(ss.id), ss.name, inst.instance_id), ss.location, work())
        return web.Response(status=202, headers=operations.headers(request, op, location=True))

    router.add("GET", VMS, list_vms)
    router.add("GET", VM, get_vm)
    router.add("PUT", VM, update_vm)
    router.add("PATCH", VM, update_vm)
    router.add("GET", VM + "/instanceView", instance_view)
    router.add("POST", VM + "/start", action("start", power("start")))
    router.add("POST", VM + "/powerOff", action("powerOff", power("stop")))
    router.add("POST", VM + "/restart", action("restart", power("restart")))
    router.add("POST", VM + "/reimage", action("reimage", partial(commands.reimage, on_instance=True)))
    router.add("POST", VM + "/runCommand", run_command)
