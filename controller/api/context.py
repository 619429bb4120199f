"""What every handler shares: the lab's paths, one Lab per worker thread, the thread pools
(reads stay short; VM work has its own pool; guest I/O, which waits on booting guests, a third,
so it never starves the others), the operations, and the controller that drives rolling
upgrades started through the API. SQLite and file errors leave the pools as the lab's errors
(a full disk is InsufficientStorage, as in the CLI)."""
from __future__ import annotations

import asyncio
import errno
import logging
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from controller.api.cache import ResponseCache
from controller.api.operations import Operations
from controller.core.errors import from_db_error, from_os_error
from controller.core.settings import LabPaths
from controller.ops.lab import Lab
from controller.ops.resources import Table
from controller.ops.service import Controller
from controller.virt.accel import Accel

T = TypeVar("T")
log = logging.getLogger("scaleset.api")
GUEST_THREADS = 8  # instance views and run-commands at once; more wait their turn
_STORAGE = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


@dataclass
class ApiContext:
    paths: LabPaths
    uri: str
    controller: Controller | None = None
    accel: Accel | None = None
    ops: Operations = field(init=False)  # recorded in the lab's database (__post_init__)
    cache: ResponseCache | None = None  # made by app.serve()
    controller_loop: asyncio.AbstractEventLoop | None = None  # the controller's, when the API has its own
    readers: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(8, "api-read"))
    workers: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(16, "api-work"))
    guests: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(GUEST_THREADS, "api-guest"))
    power_states: Callable[[Lab, Any], dict] | None = None  # domain -> state; None: libvirt's listing
    on_shutdown: list[Callable[[], None]] = field(default_factory=list)  # run in the API's loop as it stops
    resource_types: Table = field(default_factory=Table)  # what templates deploy: each route module adds its own
    _local: threading.local = field(default_factory=threading.local)

    def __post_init__(self) -> None:
        self.ops = Operations(self.paths.db)

    @classmethod
    def of(cls, lab: Lab, controller: Controller | None = None) -> ApiContext:
        """From the controller's loop (it drives the rolling upgrades started through the API)."""
        loop = asyncio.get_running_loop() if controller is not None else None
        return cls(lab.paths, lab.uri, controller, lab._accel, controller_loop=loop)

    def drive(self, name: str, up) -> asyncio.Future:
        """Start the rolling upgrade `up` in the controller's loop; a future (of this loop) of its end."""
        assert self.controller is not None and self.controller_loop is not None
        controller = self.controller

        async def run():
            return await controller.drive(name, up)
        if self.controller_loop is asyncio.get_running_loop():
            return asyncio.ensure_future(run())
        return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(run(), self.controller_loop))

    def lab(self) -> Lab:
        """This thread's Lab (SQLite connections and libvirt connections stay in their thread)."""
        lab = getattr(self._local, "lab", None)
        if lab is None:
            lab = self._local.lab = Lab(self.paths, self.uri, self.accel)
        return lab

    def _call(self, fn: Callable[..., T], args: tuple) -> T:
        try:
            return fn(self.lab(), *args)
        except sqlite3.Error as exc:
            err = from_db_error(exc, self.paths.db)
        except OSError as exc:
            if exc.filename is None and exc.errno not in _STORAGE:
                raise
            err = from_os_error(exc, str(exc.filename or self.paths.home))
        if err.code == "InternalError":
            log.error("%s: %s", getattr(fn, "__name__", "work"), err)
        raise err from None

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """fn(lab, *args) on a reader thread: the event loop never waits on SQLite or libvirt."""
        return await asyncio.get_running_loop().run_in_executor(self.readers, self._call, fn, args)

    async def work(self, fn: Callable[..., T], *args: Any) -> T:
        """fn(lab, *args) on a worker thread: VM work (boots, swaps) that takes minutes."""
        return await asyncio.get_running_loop().run_in_executor(self.workers, self._call, fn, args)

    async def guest(self, fn: Callable[..., T], *args: Any) -> T:
        """fn(lab, *args) on a guest thread: what waits on a guest (SSH to a booting instance)."""
        return await asyncio.get_running_loop().run_in_executor(self.guests, self._call, fn, args)

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()
        self.readers.shutdown(wait=False, cancel_futures=True)
        self.workers.shutdown(wait=False, cancel_futures=True)
        self.guests.shutdown(wait=False, cancel_futures=True)
