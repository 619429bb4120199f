"""The orchestrator's VM work on real libvirt guests (blocking calls run in threads)."""
from __future__ import annotations

import asyncio
import os
import time

from controller.model.instance import Instance
from controller.model.modeldiff import Change
from controller.model.scaleset import ScaleSet
from controller.ops import commands, extupdate, provision
from controller.ops.health import Monitor
from controller.ops.lab import Lab
from controller.ops.upgrade_plan import surge_refusal
from controller.state.health import HealthStore, Reading
from controller.virt.hypervisor import attached_os_disk
from controller.virt.vm import Booted


class LibvirtDriver:
    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self._started: dict[str, float] = {}
        self._monitors: dict[str, Monitor] = {}

    def _monitor(self, ss: ScaleSet) -> Monitor:
        mon = self._monitors.get(ss.name)
        if mon is None or mon.ss != ss:
            mon = self._monitors[ss.name] = Monitor(ss)
        return mon

    async def write_disks(self, inst: Instance) -> None:
        await asyncio.to_thread(provision.write_disks, self.lab, inst, self.lab.image(inst.image))

    async def switch(self, inst: Instance) -> None:
        self._started[inst.domain] = await asyncio.to_thread(provision.switch, self.lab, inst)

    def attached(self, inst: Instance) -> str | None:
        return attached_os_disk(self.lab.hv_of(inst), inst.domain)

    async def wait_booted(self, inst: Instance, timeout: float) -> Booted:
        started = self._started.pop(inst.domain, time.monotonic())
        return await asyncio.to_thread(provision.wait_booted, self.lab, inst, started, timeout)

    async def health(self, ss: ScaleSet, inst: Instance) -> Reading:
        """One instance's reading, recorded (the web view shows an upgrading instance's health live)."""
        reading = (await self._monitor(ss).poll([inst], {inst.instance_id: True}, self.lab.route))[inst.instance_id]
        return HealthStore(self.lab.db).record(ss.name, {inst.instance_id: reading})[inst.instance_id]

    async def health_all(self, ss: ScaleSet, insts: list[Instance]) -> dict[int, str]:
        readings = await commands.read_health(self.lab, ss, self._monitor(ss), insts)
        return {iid: r.state for iid, r in readings.items()}

    async def remove(self, inst: Instance) -> None:
        await asyncio.to_thread(provision.purge_domain, self.lab, inst.domain, ((inst.host_uri, inst.host_pool),))

    def surge_refusal(self, ss: ScaleSet, count: int) -> str | None:
        limit = os.environ.get("SCALESET_MAX_GUESTS")
        return surge_refusal(count, ss.properties.labSettings.memoryMiB, self.lab.hv.active_count(),
                             int(limit) if limit and limit.isdigit() else None, self.lab.hv.available_mib())

    async def update_extensions(self, inst: Instance, change: Change, timeout: float) -> Booted:
        """An extension-only change in the running guest (extupdate.py): no new disk, no reboot."""
        return await asyncio.to_thread(extupdate.run, self.lab, inst, change, timeout)
