"""Template deployments: `check()` prepares a template (controller.template) and checks all that can
be checked at once -- parameters, expressions, every resource body by its type's own PUT
validation, references -- creating nothing; `Engine.run()` then deploys its resources level by
level (Prepared.levels()), the resources of a level in parallel (at most MAX_PARALLEL at once),
each through the resource table (ops/resources.py), and records every step (state/deployments.py).

A failed resource fails the deployment; what was created before it stays (ARM's behaviour) and
what has not started does not start. A cancel stops what has not started; the deployment ends
Canceled. Each resource's write is its type's own (validated whole before it writes), so nothing
is half-written; a controller stopped mid-deployment leaves the record Running for the next one
to end (ops/takeup.py: Failed, OperationPreempted, naming what was done)."""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from controller.core.clock import now_iso
from controller.core.errors import LabError, ModelError
from controller.model.armid import SUBSCRIPTION_ID
from controller.model.jsonmap import json_object
from controller.ops.lab import Lab
from controller.ops.resources import LOCATION, Table, parse_id
from controller.state.deployments import DeploymentRecord, DeploymentStore, ResourceOp
from controller.template import template as tpl
from controller.template.errors import TemplateError

log = logging.getLogger("scaleset.deploy")
MAX_PARALLEL = 8  # resources of one deployment under way at once
MODES = ("Incremental",)


class Runner(Protocol):
    """Where blocking work runs (the API's ApiContext): fn(lab, *args) on a thread of its pool."""
    async def read(self, fn: Callable[..., Any], *args: Any) -> Any: ...


class Deferred(TemplateError):
    """reference() of a resource the template itself deploys, while validating: checked at deploy time."""

    default_code = "DeferredReference"


@dataclass
class Checked:
    """A deployment request that passed every check made before its 201."""
    template: dict
    parameters: dict  # as given ({name: {"value": v}}): held in memory only
    mode: str
    prepared: tpl.Prepared


def deployment_id(rg: str, name: str) -> str:
    return f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{rg}/providers/Microsoft.Resources/deployments/{name}"


def template_hash(template: Any) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()
    return str(int(digest[:16], 16))


def environment(table: Table, lab: Lab, rg: str, name: str, pending: set[str] | None = None) -> tpl.Environment:
    """What the template sees: the lab's resources through the table's `read` (ids in `pending`:
    resources of this template, not there yet while validating)."""
    def reference(resource_id: str, api_version: str | None, full: bool) -> dict:
        if pending is not None and resource_id.lower() in pending:
            raise Deferred("reference", f"'{resource_id[:200]}' is deployed by this template (DeferredReference)")
        try:
            found = table.read(lab, resource_id)
        except ModelError as exc:
            raise TemplateError("reference", exc.reason, "InvalidTemplate") from None
        if found is None:
            rg_, type_, name_ = parse_id(resource_id)
            raise TemplateError("reference", f"The Resource '{type_}/{name_}' under resource group '{rg_}' was not "
                                             "found.", "ResourceNotFound")
        return found if full else found.get("properties", {})
    return tpl.Environment(SUBSCRIPTION_ID, rg, LOCATION, name, reference=reference, providers=table.providers)


def check(lab: Lab, table: Table, rg: str, name: str, body: Any) -> Checked:
    """Every check made before a PUT's 201 and by POST validate; nothing is created. Errors:
    InvalidTemplate naming the JSON path, InvalidParameter naming the request's field, or the
    resource type's own error (its target prefixed with the resource's path in the template)."""
    props = json_object(json_object(body, "body").get("properties"), "properties")
    if not props:
        raise ModelError("properties", "is required: {template, parameters, mode}")
    mode = props.get("mode", "Incremental")
    if not isinstance(mode, str) or mode.lower() not in [m.lower() for m in MODES]:
        raise ModelError("properties.mode", f"'{str(mode)[:40]}': the lab deploys in Incremental mode only (Complete "
                                            "would delete the group's resources the template does not name)")
    for key in ("templateLink", "parametersLink"):
        if props.get(key) is not None:
            raise ModelError(f"properties.{key}", "the lab reads no URLs: send the template and parameters inline")
    if props.get("onErrorDeployment") is not None:
        raise ModelError("properties.onErrorDeployment", "the lab does not roll back to an earlier deployment")
    template = props.get("template")
    if not isinstance(template, dict):
        raise ModelError("properties.template", "is required: the template (a JSON object)")
    parameters = json_object(props.get("parameters"), "properties.parameters")
    for key, value in parameters.items():
        if not isinstance(value, dict) or "reference" in value:
            raise ModelError(f"properties.parameters.{key[:80]}", "must be {\"value\": ...} (Key Vault references "
                                                                  "are not supported)")
    pending: set[str] = set()
    env = environment(table, lab, rg, name, pending)
    prepared = tpl.prepare(template, parameters, env)
    pending.update(pr.id.lower() for pr in prepared.resources)
    for pr in prepared.resources:
        rt = table.find(pr.type)
        if rt is None:
            continue  # fails its resource at deploy time (NoRegisteredProviderFound)
        try:
            doc = pr.evaluate(env)
        except Deferred:
            continue
        except TemplateError as exc:
            if exc.code == Deferred.default_code or "DeferredReference" in str(exc):
                continue
            raise
        try:
            rt.validate(lab, rg, pr.name, doc)
        except LabError as exc:
            if exc.status == 404 and pr.depends_on:
                continue  # e.g. an image version this template publishes first: checked at deploy time
            raise LabError(f"{pr.path}.{exc.field}" if exc.field else pr.path,
                           f"resource '{pr.type}/{pr.name}': {exc.reason}", exc.code) from None
    return Checked(template, parameters, mode, prepared)


def new_record(rg: str, name: str, checked: Checked) -> DeploymentRecord:
    return DeploymentRecord(rg, name, uuid.uuid4().hex, checked.template, checked.prepared.parameters_record(),
                            checked.mode, "Accepted", str(uuid.uuid4()), template_hash(checked.template), now_iso(),
                            time.time(), 0, "")


def _failure(exc: BaseException) -> dict:
    if isinstance(exc, LabError):
        return exc.to_json()["error"]
    log.error("deployment resource failed: %s: %s", type(exc).__name__, exc)
    return {"code": "InternalError", "message": f"internal error ({type(exc).__name__})"}


_STATUS_CODE = {400: "BadRequest", 404: "NotFound", 409: "Conflict", 412: "PreconditionFailed",
                500: "InternalServerError", 502: "BadGateway", 507: "InsufficientStorage"}


class Engine:
    """Runs one deployment's resources through `table`, its blocking steps on `runner`."""

    def __init__(self, runner: Runner, table: Table, rec: DeploymentRecord, checked: Checked) -> None:
        self.runner, self.table, self.rec, self.checked = runner, table, rec, checked
        self.slots = asyncio.Semaphore(MAX_PARALLEL)
        self.failed: list[tuple[ResourceOp, dict]] = []
        self.done: list[str] = []  # ids of the resources deployed
        self.canceled = False
        self.seq = 0

    def _store(self, fn: Callable[[DeploymentStore], Any]):
        return self.runner.read(lambda lab: fn(DeploymentStore(lab.db)))

    def _env(self, lab: Lab) -> tpl.Environment:
        return environment(self.table, lab, self.rec.resource_group, self.rec.name)

    async def _stopping(self) -> bool:
        if not self.canceled and await self._store(lambda s: s.cancel_requested(self.rec)):
            self.canceled = True
        return self.canceled or bool(self.failed)

    async def run(self) -> str:
        """Deploy; the state it ended in (the record says it too)."""
        await self._store(lambda s: s.set_state(self.rec, "Running"))
        for level in self.checked.prepared.levels():
            if await self._stopping():
                break
            await asyncio.gather(*(self._one(pr) for pr in level))
        outputs, error = None, None
        if self.failed:
            state = "Failed"
            error = {"code": "DeploymentFailed", "target": deployment_id(self.rec.resource_group, self.rec.name),
                     "message": "At least one resource deployment operation failed. List the deployment's "
                                "operations for details.",
                     "details": [{**err, "message": f"{op.resource_type}/{op.resource_name}: {err.get('message')}",
                                  "target": op.resource_id} for op, err in self.failed]}
        elif self.canceled:
            state = "Canceled"
            error = {"code": "DeploymentCanceled", "message": "The deployment was canceled; "
                     f"{len(self.done)} resource(s) had been deployed."}
        else:
            try:
                outputs = await self.runner.read(lambda lab: self.checked.prepared.outputs(self._env(lab)))
                state = "Succeeded"
            except LabError as exc:
                state, error = "Failed", {"code": "DeploymentOutputEvaluationFailed", "message": str(exc),
                                          "details": [exc.to_json()["error"]]}
        await self._store(lambda s: s.end(self.rec, state, outputs, self.done, error))
        return state

    async def _one(self, pr: tpl.PlannedResource) -> None:
        async with self.slots:
            if await self._stopping():
                return
            self.seq += 1
            op = ResourceOp(uuid.uuid4().hex[:16].upper(), self.seq, pr.id, pr.type, pr.name, "Create", "Running",
                            now_iso(), time.time())
            await self._store(lambda s: s.begin_op(self.rec, op))
            try:
                rt = self.table.get(pr.type)
                body = await self.runner.read(lambda lab: pr.evaluate(self._env(lab)))
                await rt.apply(self.rec.resource_group, pr.name, body)
            except Exception as exc:  # noqa: BLE001 - the resource's failure, recorded
                err = _failure(exc)
                status = exc.status if isinstance(exc, LabError) else 500
                op.state, op.status_code = "Failed", _STATUS_CODE.get(status, "BadRequest")
                op.status_message = {"status": "Failed", "error": err}
                self.failed.append((op, err))
            else:
                op.state, op.status_code, op.status_message = "Succeeded", "OK", {"status": "Succeeded"}
                self.done.append(pr.id)
            await self._store(lambda s: s.end_op(self.rec, op))


def preempt_orphans(lab: Lab, say: Callable[[str], None]) -> None:
    """End every deployment a stopped or killed controller left Accepted or Running: Failed,
    OperationPreempted, saying which resources were deployed, which were cut off (each one's own
    operation is taken up: resumed or ended) and that the rest never started."""
    store = DeploymentStore(lab.db)
    for rec in store.orphans():
        ops = store.operations(rec.resource_group, rec.name)
        done = [op.resource_name for op in ops if op.state == "Succeeded"]
        cut = [op for op in ops if op.state == "Running"]
        for op in cut:
            op.state, op.status_code = "Failed", "Conflict"
            op.status_message = {"status": "Failed", "error": {
                "code": "OperationPreempted", "message": "the controller stopped while this resource was deployed; "
                                                         "its own operation was taken up by the restarted one"}}
            store.end_op(rec, op)
        message = (f"the controller stopped while the deployment ran; deployed: {', '.join(done) or 'none'}; cut off: "
                   f"{', '.join(op.resource_name for op in cut) or 'none'} (taken up on their own); the others were "
                   "not started: deploy it again")
        error = {"code": "OperationPreempted", "message": message,
                 "details": [{"code": "OperationPreempted", "target": op.resource_id,
                              "message": f"{op.resource_type}/{op.resource_name}: cut off"} for op in cut]}
        store.end(rec, "Failed", None, [op.resource_id for op in ops if op.state == "Succeeded"], error)
        say(f"deployment {rec.name} ({rec.resource_group}), left by the last controller: Failed: {message}")
