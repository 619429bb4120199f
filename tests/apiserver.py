"""The lab's API served for a test as `scaleset controller` serves it: the controller (on the fake
driver) in an event loop of its own thread, the HTTPS server on 127.0.0.1 in another; Azure's
SDK pointed at it."""
from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from controller.api import app, tls, tokens
from controller.api.context import ApiContext
from controller.api.endpoint import endpoint
from controller.model.armid import DEFAULT_RESOURCE_GROUP, SUBSCRIPTION_ID
from controller.ops.lab import Lab
from controller.ops.service import Controller
from controller.state.health import HealthStore
from controller.web import routes as web_routes


class LabCredential:
    """What a user of azure-identity would write for the lab: hands out a lab token."""

    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self, *scopes, **kwargs):
        from azure.core.credentials import AccessToken
        return AccessToken(self.token, int(time.time()) + 3000)


@dataclass
class Served:
    lab: Lab
    port: int
    ca: Path
    loop: asyncio.AbstractEventLoop
    controller: Controller
    messages: list[str] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return endpoint(self.port)

    def token(self, ttl: float = 3600) -> str:
        return tokens.mint(self.lab.paths, ttl)

    def client(self, token: str | None = None, **kw):
        from azure.mgmt.compute import ComputeManagementClient
        return ComputeManagementClient(LabCredential(token or self.token()), SUBSCRIPTION_ID, base_url=self.endpoint,
                                       connection_verify=str(self.ca), **kw)

    def resources_client(self, token: str | None = None, **kw):
        """azure-mgmt-resource's ResourceManagementClient (deployments) on the lab's endpoint."""
        from azure.mgmt.resource import ResourceManagementClient
        kw.setdefault("polling_interval", 0.05)
        return ResourceManagementClient(LabCredential(token or self.token()), SUBSCRIPTION_ID, base_url=self.endpoint,
                                        connection_verify=str(self.ca), **kw)

    def url(self, path: str) -> str:
        return f"{self.endpoint}/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{DEFAULT_RESOURCE_GROUP}/" \
               f"providers/Microsoft.Compute/{path}"


def serve(base: Lab, driver, interval: float = 0.2, port: int = 0):
    """Start controller + API; yields Served; stops both afterwards."""
    ready: dict = {}
    loop = asyncio.new_event_loop()
    messages: list[str] = []

    async def main() -> None:
        lab = Lab(base.paths, base.uri, base._accel)  # its SQLite connection is made in this thread
        controller = Controller(lab, driver, interval=interval, say=messages.append)
        ctx = ApiContext.of(lab, controller)
        if hasattr(driver, "attached_disks"):  # the fake: power states and health readings from it
            ctx.power_states = lambda _lab, domains: {d: "running" if driver.attached_disks.get(d) else None
                                                      for d in domains}
            driver.record = HealthStore(lab.db).record
        api = app.ApiThread(ctx, port, extra=(web_routes.register,))  # its own thread and loop, as in the CLI
        ready.update(lab=lab, controller=controller, port=api.start(), stop=asyncio.Event())
        loop_task = asyncio.ensure_future(controller.run())
        await ready["stop"].wait()
        loop_task.cancel()
        await asyncio.gather(loop_task, return_exceptions=True)
        api.stop()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    for _ in range(500):
        if "stop" in ready:
            break
        time.sleep(0.01)
    assert "stop" in ready, "the API did not start"
    served = Served(base, ready["port"], tls.ensure_certs(base.paths).ca, loop, ready["controller"], messages)
    try:
        yield served
    finally:
        loop.call_soon_threadsafe(ready["stop"].set)
        thread.join(10)
