"""What a rehearsal does to the lab: the use cases of controller/ops on real guests, and
`scaleset controller` as a process of its own (so a chaos step can kill it with SIGKILL).

The runner talks to a Backend; the fast tests give it one on libvirt's test driver and the
fake VM driver instead.
"""
from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Protocol

from controller.api.endpoint import configured_port, endpoint, recorded_port
from controller.core.errors import LabError
from controller.ops import commands as ops
from controller.ops.lab import Lab
from controller.virt.ssh import CommandResult
from controller.web.session import login_link


class Backend(Protocol):
    lab: Lab  # the runner's own (its thread's) lab: reads and model changes

    async def start_controller(self) -> None: ...
    async def kill_controller(self) -> None: ...
    def stop_controller(self) -> None: ...
    def controller_log(self, chars: int = 3000) -> str: ...
    def web_link(self) -> str | None: ...
    async def build(self, publisher: str, offer: str, sku: str, version: str, customize: list[Path],
                    recipe: str | None, held: bool) -> None: ...
    async def create(self, document: dict) -> None: ...
    async def reimage(self, name: str, ids: list[str] | None) -> None: ...
    async def update_instances(self, name: str, ids: list[str] | None, update_domain: int | None) -> None: ...
    async def scale(self, name: str, capacity: int) -> None: ...
    async def stop(self, name: str, ids: list[str]) -> None: ...
    async def run_command(self, name: str, instance_id: str, script: str) -> CommandResult: ...
    async def health(self, name: str) -> dict[int, str]: ...
    def delete(self, name: str) -> None: ...


def marker_text(scenario: str, instance_id: int) -> str:
    return f"scaleset-lab rehearsal {scenario} marker of instance {instance_id}"


def free_port(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class ControllerProcess:
    """`scaleset controller --interval 1` of the lab at `paths`, its output in `log`."""

    def __init__(self, paths, log: Path) -> None:
        self.paths, self.log = paths, log
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None

    async def start(self) -> None:
        if self.proc is None and recorded_port(self.paths) is not None:
            raise LabError("controller", f"a `scaleset controller` already serves {self.paths.home}: stop it, or "
                                         "rehearse in another SCALESET_HOME", "OperationNotAllowed")
        port = configured_port() if self.port is None else self.port
        if not free_port(port):  # a controller of another lab has it: any free port
            port = 0
        with open(self.log, "a") as f:  # its own session: the runner decides when it stops
            self.proc = subprocess.Popen([sys.executable, "-m", "controller.cli", "controller", "--interval", "1",
                                          "--api-port", str(port)], stdout=f, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 60
        while (found := recorded_port(self.paths)) is None or found == 0:
            if self.proc.poll() is not None:
                raise LabError("controller", f"`scaleset controller` ended at start: {self.tail(400)}", "InternalError")
            if time.monotonic() > deadline:
                raise LabError("controller", "`scaleset controller` did not serve its API within 60 s",
                               "InternalError")
            await asyncio.sleep(0.2)
        self.port = found

    async def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            await asyncio.to_thread(self.proc.wait)
        record = self.paths.run / "api.json"
        while recorded_port(self.paths) is not None and record.exists():
            await asyncio.sleep(0.1)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


class LabBackend:
    """Real guests: every use case runs in a worker thread with a Lab of its own (SQLite)."""

    def __init__(self, lab: Lab, log: Path) -> None:
        self.lab = lab
        self.controller = ControllerProcess(lab.paths, log)

    async def _ops(self, fn: Callable[..., Any], *args: Any) -> Any:
        def call() -> Any:
            lab = Lab(self.lab.paths, self.lab.uri, self.lab.accel)
            try:
                return fn(lab, *args)
            finally:
                lab.close()
        return await asyncio.to_thread(call)

    async def start_controller(self) -> None:
        await self.controller.start()

    async def kill_controller(self) -> None:
        await self.controller.kill()

    def stop_controller(self) -> None:
        self.controller.stop()

    def controller_log(self, chars: int = 3000) -> str:
        return self.controller.tail(chars)

    def web_link(self) -> str | None:
        port = recorded_port(self.lab.paths)
        return login_link(self.lab.paths, endpoint(port), 3600) if port else None

    async def build(self, publisher, offer, sku, version, customize, recipe, held) -> None:
        from images.builder import build

        def call(lab: Lab) -> None:
            build(lab.gallery, publisher, offer, sku, version, customize=customize, recipe_name=recipe,
                  log=lambda _m: None, exclude_from_latest=held)
        await self._ops(call)

    async def create(self, document: dict) -> None:
        await self._ops(ops.create, document)

    async def reimage(self, name, ids) -> None:
        await self._ops(ops.reimage, name, ids)

    async def update_instances(self, name, ids, update_domain) -> None:
        await self._ops(ops.update_instances, name, ids, update_domain)

    async def scale(self, name, capacity) -> None:
        await self._ops(ops.scale, name, capacity)

    async def stop(self, name, ids) -> None:
        await self._ops(ops.power, name, ids, "stop")

    async def run_command(self, name, instance_id, script) -> CommandResult:
        return await self._ops(ops.run_command, name, instance_id, script)

    async def health(self, name: str) -> dict[int, str]:
        def call(lab: Lab) -> dict[int, str]:
            return {iid: r.state for iid, r in ops.poll_health(lab, lab.models.get(name)).items()}
        return await self._ops(call)

    def delete(self, name: str) -> None:
        ops.delete(self.lab, name)

