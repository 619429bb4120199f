"""A capacity watcher for real rollouts: every second, which of a set's domains libvirt runs
(its own domain list, not the lab's rows) and which of those the health source calls Healthy."""
from __future__ import annotations

import asyncio
import itertools
import threading
import time

import libvirt

from controller.ops import commands
from controller.ops.health import Monitor
from controller.ops.lab import Lab


class CapacityWatch(threading.Thread):
    def __init__(self, name: str, interval: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.name_, self.interval = name, interval
        self.samples: list[tuple[float, list[int]]] = []  # (monotonic time, healthy running instance ids)
        self.errors: list[str] = []
        self._halt = threading.Event()

    def run(self) -> None:
        asyncio.run(self._every_second())

    async def _every_second(self) -> None:
        """A sample starts each second, whether or not the one before has its answers yet."""
        lab = Lab.open()  # its own database and libvirt connections
        tasks = []
        try:
            while not self._halt.is_set():
                t = time.monotonic()
                tasks.append(asyncio.create_task(self._sample(lab, t)))
                await asyncio.sleep(max(0.0, t + self.interval - time.monotonic()))
            for result in await asyncio.gather(*tasks, return_exceptions=True):
                if isinstance(result, BaseException):  # a sample that could not be taken is not a pass
                    self.errors.append(f"{type(result).__name__}: {result}")
        finally:
            lab.close()

    async def _sample(self, lab: Lab, t: float) -> None:
        ss = lab.models.get(self.name_)
        insts = lab.instances.list(ss.name)
        running = await asyncio.to_thread(self._running, lab, ss.name)
        up = [i for i in insts if i.domain in running]
        readings = await Monitor(ss).poll(up, {i.instance_id: True for i in up})
        self.samples.append((t, sorted(iid for iid, r in readings.items() if r.state == "Healthy")))

    @staticmethod
    def _running(lab: Lab, name: str) -> set[str]:
        running = set()
        for d in lab.hv.lab_domains(str(lab.paths.home)):
            try:
                if (tag := d.lab_tag()) and tag.scale_set == name and d.state() == "running":
                    running.add(d.name)
            except libvirt.libvirtError:  # undefined since the listing (an old instance deleted)
                pass
        return running

    def stop(self) -> None:
        self._halt.set()
        if self.ident is not None:
            self.join(30)

    @property
    def low(self) -> int:
        return min((len(h) for _, h in self.samples), default=0)

    @property
    def widest_gap(self) -> float:
        times = sorted(t for t, _ in self.samples)
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


def wait_healthy(lab: Lab, name: str, timeout: float = 180.0) -> None:
    """Until every instance of the set reads Healthy (a new set's apps take a while to start)."""
    deadline, states = time.monotonic() + timeout, {}
    while time.monotonic() < deadline:
        states = {i: r.state for i, r in commands.poll_health(lab, lab.models.get(name)).items()}
        if set(states.values()) == {"Healthy"}:
            return
        time.sleep(2)
    raise AssertionError(f"not every instance of {name} is healthy after {timeout:g} s: {states}")
