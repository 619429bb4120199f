"""What every handler shares: the lab's paths, one Lab per worker thread, the thread pools
(reads stay short; VM work has its own pool), the operations, and the controller that drives
rolling upgrades started through the API."""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from controller.api.operations import Operations
from controller.core.settings import LabPaths
from controller.ops.lab import Lab
from controller.ops.service import Controller
from controller.virt.accel import Accel

T = TypeVar("T")


@dataclass
class ApiContext:
    paths: LabPaths
    uri: str
    controller: Controller | None = None
    accel: Accel | None = None
    ops: Operations = field(default_factory=Operations)
    readers: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(8, "api-read"))
    workers: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(16, "api-work"))
    _local: threading.local = field(default_factory=threading.local)

    @classmethod
    def of(cls, lab: Lab, controller: Controller | None = None) -> ApiContext:
        return cls(lab.paths, lab.uri, controller, lab._accel)

    def lab(self) -> Lab:
        """This thread's Lab (SQLite connections and libvirt connections stay in their thread)."""
        lab = getattr(self._local, "lab", None)
        if lab is None:
            lab = self._local.lab = Lab(self.paths, self.uri, self.accel)
        return lab

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """fn(lab, *args) on a reader thread: the event loop never waits on SQLite or libvirt."""
        return await asyncio.get_running_loop().run_in_executor(self.readers, lambda: fn(self.lab(), *args))

    async def work(self, fn: Callable[..., T], *args: Any) -> T:
        """fn(lab, *args) on a worker thread: VM work (boots, swaps) that takes minutes."""
        return await asyncio.get_running_loop().run_in_executor(self.workers, lambda: fn(self.lab(), *args))

    def close(self) -> None:
        self.readers.shutdown(wait=False, cancel_futures=True)
        self.workers.shutdown(wait=False, cancel_futures=True)
