"""An in-process fake of the orchestrator's VM work: disks are volumes of the lab's pool on
libvirt's test driver (tests/fakepool.py; no bytes in them), health is scripted,
and a kill can be injected at any step (raised as a BaseException, like a SIGKILL: nothing
after it runs)."""
from __future__ import annotations

import asyncio
import posixpath
import time
import uuid
from contextlib import contextmanager

from controller.core.clock import now_iso
from controller.model.instance import AGENT_PORT, Instance
from controller.model.scaleset import parse
from controller.ops.lab import Lab
from controller.ops.provision import plan_instance
from controller.state.health import Reading
from controller.virt import disks, vm
from controller.virt.readiness import Readiness
from tests.fakepool import KEPT_GB, FakeDisks


def data_disk(inst: Instance, lun: int) -> str:
    """The path of the instance's data disk at `lun` (beside its OS disk, in its pool)."""
    return posixpath.join(posixpath.dirname(inst.os_disk), disks.data_disk_name(inst.domain, lun))


class Killed(BaseException):
    pass


class FakeDriver:
    def __init__(self, bad_versions=(), boot_fails_versions=(), kill_at: str | None = None, kill_nth: int = 1,
                 failing_extensions=()):
        self.bad_versions, self.boot_fails_versions = set(bad_versions), set(boot_fails_versions)
        self.failing_extensions = set(failing_extensions)  # names whose in-place run fails
        self.ran_in_place: list[tuple[int, list[str], list[str]]] = []  # (instance, run, removed)
        self.kill_at, self.kill_nth = kill_at, kill_nth
        self.attached_disks: dict[str, str] = {}
        self.steps: list[tuple[str, int]] = []
        self.on_step = None  # optional hook(step, inst)
        self.cpu = 0.0  # process time of the fake's own work (the VM side's, not the controller's)
        self.record = None  # optional HealthStore.record: readings recorded as LibvirtDriver records them
        self.room: int | None = None  # MaxSurge: how many more guests the host holds (None: no limit)

    @contextmanager
    def _vm_side(self):
        t0 = time.process_time()
        try:
            yield
        finally:
            self.cpu += time.process_time() - t0

    def _step(self, step: str, inst: Instance) -> None:
        """Every call of the driver starts here (its CPU is the VM side's, not the controller's)."""
        self.steps.append((step, inst.instance_id))
        if self.on_step:
            self.on_step(step, inst)
        if step == self.kill_at and sum(s == step for s, _ in self.steps) == self.kill_nth:
            raise Killed(step)

    async def write_disks(self, inst: Instance) -> None:
        self._step("write", inst)
        with self._vm_side():
            for p in (inst.os_disk, inst.seed):
                FakeDisks.make(p)
            for d in inst.profile["vm"]["storageProfile"].get("dataDisks", []):  # as disks.ensure_data_disks
                FakeDisks.make(data_disk(inst, d["lun"]), d["diskSizeGB"])

    async def switch(self, inst: Instance) -> None:
        self._step("switch", inst)
        with self._vm_side():
            assert FakeDisks.exists(inst.os_disk), "switching to a missing OS disk"
            self.attached_disks[inst.domain] = inst.os_disk

    def attached(self, inst: Instance) -> str | None:
        return self.attached_disks.get(inst.domain)

    async def wait_booted(self, inst: Instance, timeout: float) -> vm.Booted:
        self._step("boot", inst)
        await asyncio.sleep(0)
        if inst.image["version"] in self.boot_fails_versions:
            raise TimeoutError("no SSH in time")
        with self._vm_side():
            exts = inst.profile["vm"].get("extensionProfile", {}).get("extensions", [])
            return vm.Booted(Readiness("done", str(uuid.uuid4()), {"version": inst.image["version"]}, {}),
                             [{"name": e["name"], "provisioningState": "Succeeded"} for e in exts])

    async def remove(self, inst: Instance) -> None:
        self._step("remove", inst)
        with self._vm_side():
            self.attached_disks.pop(inst.domain, None)
            FakeDisks.delete_of(inst.os_disk, inst.domain)

    def surge_refusal(self, ss, count: int) -> str | None:
        if self.room is None or count <= self.room:
            return None
        return f"the fake host holds {self.room} more"

    async def update_extensions(self, inst: Instance, change, timeout: float) -> vm.Booted:
        """The runner in the guest, scripted: the same boot id (no reboot), statuses as it writes them."""
        self._step("extensions", inst)
        await asyncio.sleep(0)
        with self._vm_side():
            self.ran_in_place.append((inst.instance_id, list(change.run), [r["name"] for r in change.removed]))
            gone = {r["name"] for r in change.removed}
            old = {s["name"]: s for s in inst.extensions if s["name"] not in gone}
            for name in change.run:
                old[name] = {"name": name, "message": "ran in place", "provisioningState":
                             "Failed" if name in self.failing_extensions else "Succeeded"}
            return vm.Booted(Readiness("done", inst.boot_id or "boot-0", {"version": inst.image["version"]}, {}),
                             [old[n] for n in sorted(old)])

    def state_of(self, inst: Instance) -> str:
        disk = self.attached_disks.get(inst.domain)
        if disk != inst.os_disk:
            return "Unknown"
        return "Unhealthy" if inst.image["version"] in self.bad_versions else "Healthy"

    async def health(self, ss, inst: Instance) -> Reading:
        self._step("health", inst)
        with self._vm_side():
            stamp = now_iso()
            reading = Reading(self.state_of(inst), "agent", "scripted", None if self.record else stamp, stamp)
        if self.record is not None:
            self.record(ss.name, {inst.instance_id: reading})
        return reading

    async def health_all(self, ss, insts: list[Instance]) -> dict[int, str]:
        with self._vm_side():  # the agents' answers; the controller's part is the checks on them
            states = {i.instance_id: self.state_of(i) for i in insts}
        if self.record is not None:
            stamp = now_iso()
            self.record(ss.name, {iid: Reading(st, "agent", "scripted", checked_at=stamp) for iid, st in states.items()})
        return states


def make_scale_set(lab: Lab, doc: dict, driver: FakeDriver, version: str) -> list[Instance]:
    """Model and instance rows with their disks as volumes (a KEPT_GB data disk at LUN 0), attached in the fake."""
    ss = parse(doc)
    lab.models.create(ss.to_json())
    image = lab.gallery.get(*(doc["properties"]["virtualMachineProfile"]["storageProfile"]["imageReference"][k]
                              for k in ("publisher", "offer", "sku")), version)
    out = []
    for iid in range(ss.sku.capacity):
        inst = plan_instance(lab, ss, iid, image)
        inst.provisioning_state, inst.boot_id = "Succeeded", f"boot-{iid}"
        inst.extensions = [{"name": e.name, "provisioningState": "Succeeded"}
                           for e in ss.properties.virtualMachineProfile.extensionProfile.extensions]
        for p in (inst.os_disk, inst.seed):
            FakeDisks.make(p)
        FakeDisks.make(data_disk(inst, 0), KEPT_GB)
        lab.instances.insert(inst)
        driver.attached_disks[inst.domain] = inst.os_disk
        out.append(inst)
    assert AGENT_PORT in out[0].ports
    return out
