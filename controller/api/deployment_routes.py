"""Microsoft.Resources/deployments at resource-group scope: PUT (checked whole before its 201, then
run by ops/deploy.py; Azure-AsyncOperation points at `operationStatuses/{id}`), GET, list, DELETE
(the record, not its resources), POST validate (the same checks, nothing created), cancel,
exportTemplate, and the per-resource operations. Bodies are JSON with comments, as `az` sends a
template file's text. Records: state/deployments.py (etags: their generation)."""
from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

from aiohttp import web

from controller.api import operations, responses
from controller.api.context import ApiContext
from controller.api.preconditions import Preconditions, etag
from controller.api.router import Router
from controller.api.scope import group
from controller.core.errors import LabError, ModelError
from controller.ops import deploy
from controller.ops.resources import LOCATION
from controller.state.deployments import ACTIVE, DeploymentRecord, DeploymentStore, ResourceOp, not_found
from controller.template import jsonc

log = logging.getLogger("scaleset.api")
DEPLOYMENTS = "subscriptions/{sub}/resourcegroups/{rg}/providers/Microsoft.Resources/deployments"
ONE = DEPLOYMENTS + "/{name}"
LEGACY = "subscriptions/{sub}/resourcegroups/{rg}/deployments/{name}"
TYPE = "Microsoft.Resources/deployments"
_NAME = re.compile(r"[-\w._()]{1,64}", re.ASCII)


class Refused(LabError):
    """A deployment refused by its checks: 400, InvalidTemplateDeployment (or InvalidTemplate) with the
    check's own error as its detail."""

    def __init__(self, name: str, inner: LabError) -> None:
        super().__init__(inner.field, f"The template deployment '{name}' is not valid: {inner}", inner.code)
        self.inner = inner

    @property
    def status(self) -> int:
        return 400  # as ARM's preflight answers, whatever the inner error

    def to_json(self) -> dict:
        detail = self.inner.to_json()["error"]
        return {"error": {"code": "InvalidTemplateDeployment" if self.inner.code != "InvalidTemplate" else
                          "InvalidTemplate", "target": self.field, "message": str(self), "details": [detail]}}


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ModelError("deploymentName", f"'{name[:64]}' is not a valid deployment name: 1-64 letters, digits, "
                                           "'-', '_', '.', '(' or ')'", "InvalidDeploymentName")
    return name


def _az_key(text: str) -> str:
    """az's JsonCTemplatePolicy sends `{"properties": {..., template:<the file's text>}}` (the key
    unquoted): quote it, found outside strings, before the JSONC parse."""
    if text.find(", template:") < 0 or not text.lstrip().startswith('{"properties"'):
        return text
    in_string = escaped = False
    for n, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif text.startswith(", template:", n):
            return text[:n] + ', "template":' + text[n + len(", template:"):]
    return text


async def read_body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw.strip():
        raise ModelError("body", "a JSON body is required")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ModelError("body", "is not UTF-8 text", "InvalidRequestContent") from None
    return jsonc.loads(_az_key(text), "body", "InvalidRequestContent")


def _duration(seconds: float) -> str:
    return f"PT{seconds:.3f}S"


def view(rec: DeploymentRecord) -> dict:
    """ARM's DeploymentExtended."""
    props: dict[str, Any] = {
        "templateHash": rec.template_hash, "parameters": rec.parameters, "mode": rec.mode,
        "provisioningState": rec.state, "timestamp": rec.timestamp, "correlationId": rec.correlation_id,
        "duration": _duration(rec.duration if rec.duration is not None else time.time() - rec.started_epoch),
        "outputResources": [{"id": i} for i in rec.output_resources], "providers": [], "dependencies": []}
    if rec.outputs is not None:
        props["outputs"] = rec.outputs
    if rec.error:
        props["error"] = rec.error
    return {"id": deploy.deployment_id(rec.resource_group, rec.name), "name": rec.name, "type": TYPE,
            "etag": etag(rec.generation), "properties": props}


def op_view(rec: DeploymentRecord, op: ResourceOp) -> dict:
    props: dict[str, Any] = {
        "provisioningOperation": op.provisioning_operation, "provisioningState": op.state,
        "timestamp": op.timestamp, "trackingId": rec.correlation_id,
        "duration": _duration(op.duration if op.duration is not None else time.time() - op.started_epoch),
        "targetResource": {"id": op.resource_id, "resourceType": op.resource_type, "resourceName": op.resource_name}}
    if op.status_code is not None:
        props["statusCode"] = op.status_code
    if op.status_message is not None:
        props["statusMessage"] = op.status_message
    return {"id": f"{deploy.deployment_id(rec.resource_group, rec.name)}/operations/{op.operation_id}",
            "operationId": op.operation_id, "properties": props}


def register(router: Router, ctx: ApiContext) -> None:
    tasks: set[asyncio.Task] = set()  # the deployments this process runs

    def found(lab, rg: str, name: str) -> DeploymentRecord:
        rec = DeploymentStore(lab.db).get(rg, name)
        if rec is None:
            raise not_found(rg, name)
        return rec

    async def checked(rg: str, name: str, body: Any) -> deploy.Checked:
        try:
            return await ctx.read(deploy.check, ctx.resource_types, rg, name, body)
        except LabError as exc:
            if exc.code in ("InsufficientStorage", "ReadOnlyStorage", "StateCorrupt", "InternalError"):
                raise
            raise Refused(name, exc) from None

    async def drive(rec: DeploymentRecord, spec: deploy.Checked) -> None:
        engine = deploy.Engine(ctx, ctx.resource_types, rec, spec)
        try:
            await engine.run()
        except Exception as exc:  # noqa: BLE001 - the deployment ends Failed, said once in the log
            log.error("deployment %s: %s: %s", rec.name, type(exc).__name__, exc)
            err = {"code": "InternalError", "message": f"internal error ({type(exc).__name__})"}
            await ctx.read(lambda lab: DeploymentStore(lab.db).end(rec, "Failed", None, engine.done, err))

    async def put(request: web.Request, p: dict[str, str]) -> web.Response:
        rg, name = group(p), check_name(p["name"])
        pre = Preconditions.of(request.headers)
        spec = await checked(rg, name, await read_body(request))
        rec = deploy.new_record(rg, name, spec)
        check = (lambda gen: pre.check(None if gen is None else etag(gen))) if pre else None
        rec = await ctx.read(lambda lab: DeploymentStore(lab.db).begin(rec, check))
        task = asyncio.ensure_future(drive(rec, spec))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        status_url = responses.origin(request).with_path(
            "/" + ONE.replace("{sub}", p["sub"]).replace("{rg}", p["rg"]).replace("{name}", rec.name)
            + f"/operationStatuses/{rec.run_id}").with_query({"api-version": request.query.get("api-version", "")})
        out = view(rec)
        return responses.body(out, 201 if rec.generation == 1 else 200,
                              {"Azure-AsyncOperation": str(status_url), "Retry-After": responses.RETRY_AFTER,
                               "ETag": out["etag"]})

    async def get(request: web.Request, p: dict[str, str]) -> web.Response:
        rg = group(p)
        out = view(await ctx.read(found, rg, p["name"]))
        return responses.body(out, headers={"ETag": out["etag"]})

    async def list_group(request: web.Request, p: dict[str, str]) -> web.Response:
        rg = group(p)
        return responses.page(request, [view(r) for r in await ctx.read(lambda lab: DeploymentStore(lab.db).list(rg))])

    async def delete(request: web.Request, p: dict[str, str]) -> web.Response:
        rg, name = group(p), p["name"]
        pre = Preconditions.of(request.headers)
        check = (lambda gen: pre.check(None if gen is None else etag(gen))) if pre else None
        if not await ctx.read(lambda lab: DeploymentStore(lab.db).delete(rg, name, check)):
            return web.Response(status=204)
        op = ctx.ops.start("delete", deploy.deployment_id(rg, name), LOCATION, asyncio.sleep(0))
        return web.Response(status=202, headers=operations.headers(request, op, location=True))

    async def validate(request: web.Request, p: dict[str, str]) -> web.Response:
        rg, name = group(p), check_name(p["name"])
        spec = await checked(rg, name, await read_body(request))
        rec = deploy.new_record(rg, name, spec)
        out = view(rec)
        out.pop("etag")
        out["properties"].update(provisioningState="Succeeded", duration=_duration(0),
                                 validatedResources=[{"id": pr.id} for pr in spec.prepared.resources])
        return responses.body(out)

    async def cancel(request: web.Request, p: dict[str, str]) -> web.Response:
        rg = group(p)
        await ctx.read(lambda lab: DeploymentStore(lab.db).request_cancel(rg, p["name"]))
        return web.Response(status=204)

    async def export(request: web.Request, p: dict[str, str]) -> web.Response:
        rg = group(p)
        return responses.body({"template": (await ctx.read(found, rg, p["name"])).template})

    async def list_ops(request: web.Request, p: dict[str, str]) -> web.Response:
        rg = group(p)

        def items(lab) -> list[dict]:
            rec = found(lab, rg, p["name"])
            return [op_view(rec, op) for op in DeploymentStore(lab.db).operations(rec.resource_group, rec.name)]
        return responses.page(request, await ctx.read(items))

    async def get_op(request: web.Request, p: dict[str, str]) -> web.Response:
        rg = group(p)

        def item(lab) -> dict:
            rec = found(lab, rg, p["name"])
            for op in DeploymentStore(lab.db).operations(rec.resource_group, rec.name):
                if op.operation_id.lower() == p["op"].lower():
                    return op_view(rec, op)
            raise ModelError("operationId", f"operation '{p['op'][:64]}' of deployment '{rec.name}' not found",
                             "NotFound")
        return responses.body(await ctx.read(item))

    async def status(request: web.Request, p: dict[str, str]) -> web.Response:
        rg = group(p)
        rec = await ctx.read(found, rg, p["name"])
        if rec.run_id != p["id"].lower():
            raise ModelError("operationId", f"operation '{p['id'][:64]}' of deployment '{rec.name}' not found "
                                            "(a newer PUT replaced it)", "NotFound")
        out: dict[str, Any] = {"status": rec.state}
        if rec.error:
            out["error"] = rec.error
        return responses.body(out, headers={"Retry-After": responses.RETRY_AFTER} if rec.state in ACTIVE else None)

    router.add("PUT", ONE, put)
    router.add("GET", ONE, get)
    router.add("DELETE", ONE, delete)
    router.add("GET", DEPLOYMENTS, list_group)
    router.add("POST", ONE + "/validate", validate)
    router.add("POST", ONE + "/cancel", cancel)
    router.add("POST", ONE + "/exportTemplate", export)
    for one in (ONE, LEGACY):  # the SDK's and az's deployment operations use the older path
        router.add("GET", one + "/operations", list_ops)
        router.add("GET", one + "/operations/{op}", get_op)
    router.add("GET", ONE + "/operationStatuses/{id}", status)
