"""A rehearsal Backend on libvirt's test driver and the fake VM driver: the controller runs in
a thread of its own (as `scaleset controller` would in a process), run-command knows the few
scripts the runner sends (markers, the unhealthy flag, echo)."""
from __future__ import annotations

import asyncio
import re
import threading
import time

from controller.core.errors import Interrupted
from controller.model.scaleset import parse
from controller.ops import commands as ops
from controller.ops.lab import Lab
from controller.ops.provision import apply_booted, plan_instance, remove_instance, target_of
from controller.ops.service import Controller
from controller.state.health import HealthStore
from controller.virt.ssh import CommandResult
from tests.fakedriver import FakeDriver, make_scale_set

_WRITE = re.compile(r"printf %s '(.*)' \| dd of=/dev/disk/by-id/virtio-lun-(\d+)")
_READ = re.compile(r"head -c (\d+) /dev/disk/by-id/virtio-lun-(\d+)")


class ScenarioDriver(FakeDriver):
    """The fake, plus apps made unhealthy by run-command (until the instance gets a new OS disk)."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.unhealthy: set[str] = set()

    async def write_disks(self, inst) -> None:
        self.unhealthy.discard(inst.domain)
        await super().write_disks(inst)

    def state_of(self, inst) -> str:
        state = super().state_of(inst)
        return "Unhealthy" if state == "Healthy" and inst.domain in self.unhealthy else state


class FakeBackend:
    def __init__(self, lab: Lab, driver: ScenarioDriver, interrupt_on: str | None = None) -> None:
        self.lab, self.driver = lab, driver
        self.messages: list[str] = []
        self.markers: dict[tuple[str, int], str] = {}
        self.interrupt_on = interrupt_on  # a run-command script that raises Interrupted (Ctrl-C)
        self._thread: threading.Thread | None = None
        self._stop: dict = {}
        self.kills = 0

    # -- the controller, in a thread with its own loop and Lab ------------------------------------
    async def start_controller(self) -> None:
        ready = threading.Event()
        box: dict = {}

        async def main() -> None:
            lab = Lab(self.lab.paths, self.lab.uri, self.lab._accel)
            self.driver.record = HealthStore(lab.db).record
            box["controller"] = controller = Controller(lab, self.driver, interval=0.02, say=self.messages.append)
            box["task"] = task = asyncio.ensure_future(controller.run())
            box["loop"] = asyncio.get_running_loop()
            ready.set()
            try:
                await task
            except asyncio.CancelledError:
                pass
            await asyncio.gather(*controller.tasks.values(), return_exceptions=True)

        self._thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
        self._thread.start()
        ready.wait(10)
        self._stop = box

    def _halt(self) -> None:
        if self._thread is None:
            return
        box = self._stop

        def cancel() -> None:
            box["task"].cancel()
            for t in box["controller"].tasks.values():
                t.cancel()
        box["loop"].call_soon_threadsafe(cancel)
        self._thread.join(10)
        self._thread = None

    async def kill_controller(self) -> None:
        """As SIGKILL leaves it: tasks gone mid-step, the upgrade's owner no longer alive."""
        self._halt()
        self.kills += 1
        self.lab.db.execute("UPDATE rolling_upgrades SET owner='0:killed' WHERE status='RollingForward'")

    def stop_controller(self) -> None:
        self._halt()

    def controller_log(self, chars: int = 3000) -> str:
        return "\n".join(self.messages)[-chars:]

    def web_link(self) -> str | None:
        return None

    # -- the use cases, on fake disks --------------------------------------------------------------
    async def build(self, publisher, offer, sku, version, customize, recipe, held) -> None:
        src = next(iter(self.lab.gallery.list())).path
        self.lab.gallery.import_file(publisher, offer, sku, version, src, exclude_from_latest=held)

    async def create(self, document: dict) -> None:
        ss = parse(document)
        version = self.lab.resolve_image(ss).version
        for inst in make_scale_set(self.lab, document, self.driver, version):
            apply_booted(inst, await self.driver.wait_booted(inst, 10))
            self.lab.instances.save(inst)

    async def reimage(self, name, ids) -> None:
        await self._swap(name, ids, to_model=False)

    async def update_instances(self, name, ids, update_domain) -> None:
        await self._swap(name, ids, to_model=True, update_domain=update_domain)

    async def _swap(self, name, ids, to_model, update_domain=None) -> None:
        ss = self.lab.models.get(name)
        image = self.lab.resolve_image(ss) if to_model else None
        for inst in self._select(name, ids):
            if update_domain is not None and inst.update_domain != update_domain:
                continue
            new = target_of(self.lab, ss, inst, to_model, image)
            await self.driver.write_disks(new)
            await self.driver.switch(new)
            apply_booted(new, await self.driver.wait_booted(new, 10))
            self.lab.instances.save(new)

    def _select(self, name, ids):
        insts = self.lab.instances.list(name)
        return insts if ids is None or ids == ["*"] else [i for i in insts if str(i.instance_id) in ids]

    async def scale(self, name, capacity) -> None:
        ss = self.lab.models.get(name)
        insts = self.lab.instances.list(name)
        for inst in insts[capacity:]:
            remove_instance(self.lab, inst)
        image = self.lab.resolve_image(ss)
        for iid in range(len(insts), capacity):
            inst = plan_instance(self.lab, ss, iid, image)
            self.lab.instances.insert(inst)
            await self.driver.write_disks(inst)
            await self.driver.switch(inst)
            apply_booted(inst, await self.driver.wait_booted(inst, 10))
            self.lab.instances.save(inst)

    async def stop(self, name, ids) -> None:
        for inst in self._select(name, ids):
            self.driver.attached_disks.pop(inst.domain, None)

    async def run_command(self, name, instance_id, script) -> CommandResult:
        if self.interrupt_on and self.interrupt_on in script:
            raise Interrupted(2)
        inst = self._select(name, [instance_id])[0]
        if self.driver.attached(inst) != inst.os_disk:
            return CommandResult(255, "", "not running")
        if m := _WRITE.search(script):
            self.markers[(name, inst.instance_id)] = m.group(1)
            return CommandResult(0, "", "")
        if m := _READ.search(script):
            return CommandResult(0, self.markers.get((name, inst.instance_id), "\0" * int(m.group(1))), "")
        if "sample-app/unhealthy" in script:
            self.driver.unhealthy.add(inst.domain)
            return CommandResult(0, "", "")
        if script.startswith("echo "):
            return CommandResult(0, script[5:] + "\n", "")
        if script.startswith("exit "):
            return CommandResult(int(script[5:]), "", "")
        return CommandResult(127, "", f"fake: {script}: not found")

    async def health(self, name) -> dict[int, str]:
        return {i.instance_id: self.driver.state_of(i) for i in self.lab.instances.list(name)}

    def delete(self, name: str) -> None:
        ops.delete(self.lab, name)


def leftovers(lab: Lab) -> dict:
    """What a rehearsal may leave in a lab: rows, disk volumes (of the lab's own pool), upgrades."""
    disks = [v.name for v in lab.pool_at(None).volumes()]
    return {"sets": [s.name for s in lab.models.list()],
            "instances": lab.db.execute("SELECT COUNT(*) FROM instances").fetchone()[0],
            "disks": disks, "versions": sorted(iv.version for iv in lab.gallery.list())}


def wait_for(pred, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return False
