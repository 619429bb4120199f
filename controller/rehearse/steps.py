"""What each step of a scenario does; an expectation that does not hold raises Unmet.

Actions go through the Backend (real guests or the fake) and the use cases of controller/ops;
expectations poll the lab's state until they hold or their timeout passes.
"""
from __future__ import annotations

import asyncio
import shlex
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from controller.core import signals
from controller.model.instance import Instance
from controller.ops import commands as ops
from controller.ops import fileserver
from controller.ops.rolling import start_upgrade
from controller.ops.upgrade_views import history_item
from controller.ops.views import latest_model_applied
from controller.rehearse.backend import Backend, marker_text
from controller.rehearse.scenario import FILE_URL, Scenario, Step
from controller.state.upgrades import Upgrade, UpgradeStore

POLL = 1.0
UNHEALTHY_FLAG = "/var/lib/sample-app/unhealthy"  # the sample app (lab/samples.py) answers Unhealthy


class Unmet(Exception):
    """An expectation that did not hold: the message says what was seen."""


@dataclass
class Context:
    scenario: Scenario
    backend: Backend
    say: Callable[[str], None]
    poll: float = POLL
    upgrades_seen: int = 0  # expectUpgrade looks at upgrades with a larger id
    markers: dict[int, str] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)  # chaos and other marks for the report's timeline

    @property
    def lab(self):
        return self.backend.lab

    @property
    def name(self) -> str:
        return self.scenario.scale_set

    def instances(self, ids: list | None = None) -> list[Instance]:
        insts = self.lab.instances.list(self.name)
        if ids is None or "*" in ids:
            return insts
        wanted = {int(i) for i in ids}
        found = [i for i in insts if i.instance_id in wanted]
        missing = wanted - {i.instance_id for i in found}
        if missing:
            raise Unmet(f"no instance {sorted(missing)} in scale set '{self.name}'")
        return found

    def expand(self, value: Any) -> Any:
        """`{{ fileUrl NAME DURATION }}` in any string: a file-server URL whose token expires then."""
        from controller.model.jsonmap import parse_duration
        if isinstance(value, str):
            return FILE_URL.sub(lambda m: fileserver.url(self.lab.paths, m.group(1),
                                                          parse_duration(m.group(2), "fileUrl")), value)
        if isinstance(value, list):
            return [self.expand(v) for v in value]
        if isinstance(value, dict):
            return {k: self.expand(v) for k, v in value.items()}
        return value


async def until(check: Callable[[], Awaitable[str | None]], timeout: float, poll: float) -> None:
    """Call `check` until it returns None (held); Unmet with its last answer at the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        signals.check()
        why = await check()
        if why is None:
            return
        if time.monotonic() >= deadline:
            raise Unmet(f"{why} (after {timeout:g} s)")
        await asyncio.sleep(min(poll, max(0.0, deadline - time.monotonic())))


def _ids(step: Step) -> list[str] | None:
    ids = step.get("instanceIds")
    return None if ids is None else [str(i) for i in ids]


# -- actions ----------------------------------------------------------------------------------
async def create(ctx: Context, step: Step) -> str:
    await ctx.backend.create(ctx.expand(ctx.scenario.model))
    bad = [f"instance {i.instance_id}: {i.provisioning_state} ({i.error})" for i in ctx.instances()
           if i.provisioning_state != "Succeeded"]
    if bad:
        raise Unmet("; ".join(bad))
    return f"{len(ctx.instances())} instance(s) Succeeded"


def _marker_script(lun: int, text: str) -> str:
    return f"printf %s {shlex.quote(text)} | dd of=/dev/disk/by-id/virtio-lun-{lun} conv=fsync status=none"


async def write_markers(ctx: Context, step: Step) -> str:
    lun = step.get("lun", 0)
    for inst in ctx.instances():
        text = marker_text(ctx.scenario.name, inst.instance_id)
        res = await ctx.backend.run_command(ctx.name, str(inst.instance_id), _marker_script(lun, text))
        if res.exit_status != 0:
            raise Unmet(f"instance {inst.instance_id}: writing the marker failed: {res.stderr.strip()[-300:]}")
        ctx.markers[inst.instance_id] = text
    return f"markers on lun {lun} of instances {sorted(ctx.markers)}"


async def expect_markers(ctx: Context, step: Step) -> str:
    lun = step.get("lun", 0)
    if not ctx.markers:
        raise Unmet("no marker was written before (add a writeMarkers step)")
    present = {i.instance_id for i in ctx.instances()}
    for iid, text in sorted(ctx.markers.items()):
        if iid not in present:
            continue
        res = await ctx.backend.run_command(ctx.name, str(iid), f"head -c {len(text.encode())} "
                                                                f"/dev/disk/by-id/virtio-lun-{lun}")
        if res.stdout != text:
            raise Unmet(f"instance {iid}: lun {lun} holds {res.stdout[:80]!r}, not its marker {text!r}")
    return f"markers intact on instances {sorted(present & set(ctx.markers))}"


async def publish(ctx: Context, step: Step) -> str:
    s = ctx.scenario
    await asyncio.to_thread(_release, ctx.lab.paths, s.publisher, s.offer, s.sku, step.args["version"])
    return f"{s.publisher}:{s.offer}:{s.sku}:{step.args['version']} is in latest"


def _release(paths, publisher: str, offer: str, sku: str, version: str) -> None:
    from controller.state.db import connect
    from images.gallery import Gallery
    Gallery(paths, connect(paths.db)).update(publisher, offer, sku, version, exclude_from_latest=False)


async def begin_upgrade(ctx: Context, step: Step) -> str:
    """`rolling-upgrade start --no-wait`: recorded here, driven by the controller."""
    up = start_upgrade(ctx.lab, ctx.lab.models.get(ctx.name), "User", owned=False)
    return f"rolling upgrade {up.id} to {up.target['version']} started (User)"


async def reimage(ctx: Context, step: Step) -> str:
    await ctx.backend.reimage(ctx.name, _ids(step))
    return _states(ctx, _ids(step))


async def update_instances(ctx: Context, step: Step) -> str:
    await ctx.backend.update_instances(ctx.name, _ids(step) if "instanceIds" in step.args else None,
                                       step.get("updateDomain"))
    return _states(ctx, _ids(step))


def _states(ctx: Context, ids: list[str] | None) -> str:
    return ", ".join(f"{i.instance_id}: {i.provisioning_state}" for i in ctx.instances(ids))


async def update_model(ctx: Context, step: Step) -> str:
    ops.update_model(ctx.lab, ctx.name, ctx.expand(step.args["set"]))
    return f"{len(step.args['set'])} change(s)"


async def set_extension(ctx: Context, step: Step) -> str:
    ops.set_extension(ctx.lab, ctx.name, step.args["name"], ctx.expand(step.args["properties"]))
    return f"extension {step.args['name']} in the model"


async def put_file(ctx: Context, step: Step) -> str:
    src = (ctx.scenario.path.parent / step.args["file"]).resolve()
    name = fileserver.put(ctx.lab.paths, src, step.get("name"))
    ctx.files.append(name)
    return f"files/{name}"


async def pause(ctx: Context, step: Step) -> str:
    await asyncio.sleep(step.args["seconds"])
    return ""


async def scale(ctx: Context, step: Step) -> str:
    await ctx.backend.scale(ctx.name, step.args["capacity"])
    return _states(ctx, None)


async def stop_instance(ctx: Context, step: Step) -> str:
    await ctx.backend.stop(ctx.name, _ids(step))
    ctx.events.append({"kind": "stopInstance", "at": time.time(), "instances": step.args["instanceIds"]})
    return f"stopped {step.args['instanceIds']}"


async def make_unhealthy(ctx: Context, step: Step) -> str:
    for inst in ctx.instances(_ids(step)):
        res = await ctx.backend.run_command(ctx.name, str(inst.instance_id),
                                            f"mkdir -p {UNHEALTHY_FLAG.rsplit('/', 1)[0]} && touch {UNHEALTHY_FLAG}")
        if res.exit_status != 0:
            raise Unmet(f"instance {inst.instance_id}: {res.stderr.strip()[-300:]}")
    ctx.events.append({"kind": "makeUnhealthy", "at": time.time(), "instances": step.args["instanceIds"]})
    return f"the app of {step.args['instanceIds']} answers Unhealthy"


async def kill_controller(ctx: Context, step: Step) -> str:
    """SIGKILL the controller while batch `duringBatch` (default 1) of an upgrade is in flight,
    then start it again (it must resume: a later expectUpgrade says whether it did)."""
    store = UpgradeStore(ctx.lab.db)
    batch = step.get("duringBatch", 1)
    found: dict = {}

    async def in_flight() -> str | None:
        up = store.active(ctx.name)
        if up is None:
            return f"no rolling upgrade of '{ctx.name}' was in flight"
        rows = [r for r in store.instances(up) if r["batch"] >= batch and r["state"] == "InProgress"]
        if not rows:
            return f"upgrade {up.id} had no instance of batch {batch} or later in flight"
        found.update(up=up, rows=rows)
        return None
    await until(in_flight, step.timeout, ctx.poll / 4)
    await ctx.backend.kill_controller()
    ctx.events.append({"kind": "killController", "at": time.time(), "upgradeId": found["up"].id})
    ids = [r["instanceId"] for r in found["rows"]]
    ctx.say(f"  controller killed (SIGKILL) with instances {ids} of batch {found['rows'][0]['batch']} in flight")
    await ctx.backend.start_controller()
    return f"killed during batch {found['rows'][0]['batch']} (instances {ids}) and started again"


# -- expectations -----------------------------------------------------------------------------
async def expect_upgrade(ctx: Context, step: Step) -> str:
    store = UpgradeStore(ctx.lab.db)
    version = step.get("version")
    seen: dict[str, Upgrade] = {}

    async def ended() -> str | None:
        ups = [u for u in store.history(ctx.name) if u.id > ctx.upgrades_seen
               and (version is None or u.target["version"] == version)]
        done = [u for u in ups if u.status != "RollingForward"]
        if done:
            seen["up"] = min(done, key=lambda u: u.id)
            return None
        what = f"to {version} " if version else ""
        if ups:
            u = ups[-1]
            return f"upgrade {u.id} {what}still RollingForward after {u.batches_done} batch(es)"
        return f"no rolling upgrade {what}started"
    await until(ended, step.timeout, ctx.poll)
    up = seen["up"]
    ctx.upgrades_seen = up.id
    props = history_item(ctx.lab, up)["properties"]
    rb = props["rollbackInfo"]
    got = {"status": up.status, "errorCode": up.error_code, "startedBy": up.started_by,
           "rolledBack": rb["successfullyRolledbackInstanceCount"], "rollbackFailed": rb["failedRolledbackInstanceCount"],
           "failed": props["progress"]["failedInstanceCount"]}
    wrong = [f"{k} {got[k]} (expected {step.args[k]})" for k in got if k in step.args and got[k] != step.args[k]]
    summary = (f"upgrade {up.id} to {up.target['version']} ({up.started_by}): {up.status}"
               + (f" {up.error_code}" if up.error_code else "")
               + f", {up.batches_done} batch(es), rolled back {got['rolledBack']}, failed {got['failed']}")
    if wrong:
        raise Unmet(f"{summary}; " + "; ".join(wrong) + (f"; error: {up.error_message}" if up.error_message else ""))
    return summary


async def run_command(ctx: Context, step: Step) -> str:
    iid = str(step.args["instanceId"])
    ctx.instances([iid])
    res = await asyncio.wait_for(ctx.backend.run_command(ctx.name, iid, step.args["script"]), step.timeout)
    code = step.get("expectExitCode", 0)
    if res.exit_status != code:
        raise Unmet(f"instance {iid}: exit code {res.exit_status} (expected {code}); "
                    f"stderr: {res.stderr.strip()[-300:]!r}")
    want = step.get("expectOutput")
    if want is not None and want not in res.stdout:
        raise Unmet(f"instance {iid}: output {res.stdout.strip()[-300:]!r} does not contain {want!r}")
    return f"exit {res.exit_status}" + (f", output contains {want!r}" if want is not None else "")


async def _every(ctx: Context, step: Step, want: Any, read: Callable[[list[Instance]], Awaitable[dict]],
                 what: str) -> None:
    """Poll until `read` gives `want` for every instance the step names: Unmet says which did not."""
    async def check() -> str | None:
        off = {iid: v for iid, v in (await read(ctx.instances(step.get("instanceIds")))).items() if v != want}
        return f"{what}: {off}" if off else None
    await until(check, step.timeout, ctx.poll)


async def expect_health(ctx: Context, step: Step) -> str:
    async def read(insts: list[Instance]) -> dict:
        states = await ctx.backend.health(ctx.name)
        return {i.instance_id: states.get(i.instance_id) for i in insts}
    await _every(ctx, step, step.args["state"], read, f"not {step.args['state']}")
    return step.args["state"]


async def expect_version(ctx: Context, step: Step) -> str:
    async def read(insts: list[Instance]) -> dict:  # what the guest's image stamp says it runs
        return {i.instance_id: i.stamp.get("version") for i in insts}
    await _every(ctx, step, step.args["version"], read, f"instances not running {step.args['version']}")
    return f"every instance runs {step.args['version']}"


async def expect_model_applied(ctx: Context, step: Step) -> str:
    want = step.args["applied"]

    async def read(insts: list[Instance]) -> dict:
        ss = ctx.lab.models.get(ctx.name)
        return {i.instance_id: latest_model_applied(ss, i) for i in insts}
    await _every(ctx, step, want, read, f"latestModelApplied is not {str(want).lower()}")
    return f"latestModelApplied {str(want).lower()}"


ACTIONS: dict[str, Callable[[Context, Step], Awaitable[str]]] = {
    "create": create, "writeMarkers": write_markers, "expectMarkers": expect_markers, "publish": publish,
    "startUpgrade": begin_upgrade, "expectUpgrade": expect_upgrade, "reimage": reimage,
    "updateInstances": update_instances, "updateModel": update_model, "setExtension": set_extension,
    "putFile": put_file, "sleep": pause, "scale": scale, "runCommand": run_command,
    "expectHealth": expect_health, "expectVersion": expect_version, "expectModelApplied": expect_model_applied,
    "killController": kill_controller, "stopInstance": stop_instance, "makeUnhealthy": make_unhealthy,
}

