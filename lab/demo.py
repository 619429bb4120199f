"""The demo (`make demo`): a scale set rehearses an automatic OS-image rollout.

v1 -> v2 rolls out by itself in batches of one, health-checked by the in-guest agent; then a
v3 whose application never becomes healthy is rolled back in its first batch and the upgrade
ends Faulted. It runs in its own lab home (`<lab home>/demo`, wiped at each start); the
package-set cache is shared with the main lab, so only the first run builds from scratch.
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import time
from pathlib import Path

P, O, S = "scaleset-lab", "debian", "debian-12"
HERE = Path(__file__).resolve().parent
NAME = "demo"
COUNT = 3


def say(msg: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def prepare_home() -> Path:
    main_home = Path(os.environ.get("SCALESET_HOME") or Path.home() / ".local/share/scaleset-lab")
    home = main_home / "demo"
    os.environ.setdefault("SCALESET_CACHE", str(main_home / "cache"))
    os.environ["SCALESET_HOME"] = str(home)
    if home.exists():  # a previous run: remove its scale set, then its files
        from controller.ops import commands as ops
        from controller.ops.lab import Lab
        lab = Lab.open()
        for ss in lab.models.list():
            ops.delete(lab, ss.name)
        lab.close()
        shutil.rmtree(home)
    return home


def publish(paths, version: str, script: str | None, why: str) -> None:
    """Build and publish a version (in whatever thread: the gallery connection is its own)."""
    from controller.state.db import connect
    from images.builder import build
    from images.gallery import Gallery
    say(f"publishing {P}:{O}:{S}:{version} ({why}) ...")
    t0 = time.monotonic()
    build(Gallery(paths, connect(paths.db)), P, O, S, version, customize=[HERE / "demo" / script] if script else [], log=lambda m: None)
    say(f"  published in {time.monotonic() - t0:.0f} s")


def create(lab) -> None:
    from controller.ops import commands as ops
    from lab.samples import health_extension, sample_app_extension
    say(f"creating scale set '{NAME}': {COUNT} instances, 1 GiB data disk each, the sample app and the "
        "ApplicationHealthLinux agent, automatic OS upgrades on 'latest' ...")
    t0 = time.monotonic()
    ops.create(lab, {
        "name": NAME, "sku": {"capacity": COUNT},
        "properties": {
            "upgradePolicy": {"mode": "Automatic", "automaticOSUpgradePolicy": {"enableAutomaticOSUpgrade": True}},
            "labSettings": {"healthWaitTimeout": "PT2M", "autoUpgradeDelay": "PT5S"},
            "virtualMachineProfile": {
                "storageProfile": {"imageReference": {"publisher": P, "offer": O, "sku": S, "version": "latest"},
                                   "dataDisks": [{"lun": 0, "diskSizeGB": 1}]},
                "osProfile": {"computerNamePrefix": "demo"},
                "extensionProfile": {"extensions": [sample_app_extension(), health_extension(after=["sample-app"])]},
            }}})
    for inst in lab.instances.list(NAME):
        say(f"  instance {inst.instance_id} ({inst.computer_name}): {inst.provisioning_state}, running image "
            f"{inst.stamp.get('version')}, SSH 127.0.0.1:{inst.ssh_port}")
    say(f"  created in {time.monotonic() - t0:.0f} s")


def serve_web_view(lab, controller):
    """The API and the web view on 127.0.0.1 while the story runs; prints a one-time login link."""
    from controller.api import app, tls
    from controller.api.context import ApiContext
    from controller.api.endpoint import configured_port, endpoint
    from controller.core.errors import LabError
    from controller.web import routes, session
    try:
        api = app.ApiThread(ApiContext.of(lab, controller), configured_port(), extra=(routes.register,))
        port = api.start()
    except LabError:  # the port is taken (a controller of the main lab): any free one
        api = app.ApiThread(ApiContext.of(lab, controller), 0, extra=(routes.register,))
        port = api.start()
    say(f"watch it live in a browser (one-time link; trust the lab's CA {tls.ensure_certs(lab.paths).ca} or "
        f"accept the warning): {session.login_link(lab.paths, endpoint(port), 3600)}")
    return api


async def story(lab) -> int:
    from controller.ops.rolling_driver import LibvirtDriver
    from controller.ops.service import Controller
    from controller.ops.upgrade_views import history_item, latest_view
    from controller.state.upgrades import UpgradeStore

    controller = Controller(lab, LibvirtDriver(lab), interval=1.0, say=lambda m: say(f"[controller] {m}"))
    api = serve_web_view(lab, controller)
    watcher = asyncio.create_task(controller.run())
    store = UpgradeStore(lab.db)

    async def rollout(version: str) -> object:
        while True:
            up = store.latest(NAME)
            if up and up.target["version"] == version and up.status != "RollingForward":
                return up
            await asyncio.sleep(1)

    await asyncio.to_thread(publish, lab.paths, "2.0.0", "customize-v2.sh", "a good new version; the controller is watching")
    up = await rollout("2.0.0")
    over = latest_view(lab, up)["lab"]["overhead"]
    say(f"upgrade to 2.0.0: {up.status}; controller overhead {over['overheadSeconds']} s of "
        f"{over['wallSeconds']} s ({over['overheadPercent']} %)")
    await asyncio.to_thread(publish, lab.paths, "3.0.0", "customize-v3-unhealthy.sh", "its application never becomes healthy")
    up3 = await rollout("3.0.0")
    say(f"upgrade to 3.0.0: {up3.status} ({up3.error_code})")
    watcher.cancel()
    api.stop()

    for inst in lab.instances.list(NAME):
        say(f"  instance {inst.instance_id}: running image {inst.stamp.get('version')}, {inst.provisioning_state}")
    history = [history_item(lab, u) for u in store.history(NAME)]
    say("get-os-upgrade-history:")
    print(json.dumps(history, indent=2))
    ok = (up.status == "Completed" and up3.status == "Faulted"
          and all(i.stamp.get("version") == "2.0.0" for i in lab.instances.list(NAME)))
    say("OK: v2 rolled out by itself, bad v3 rolled back; scale set left running "
        f"(SCALESET_HOME={lab.paths.home} .venv/bin/scaleset list-instances -n {NAME} -o table)"
        if ok else "FAILED: see above")
    return 0 if ok else 1


def main() -> int:
    home = prepare_home()
    from controller.ops.lab import Lab
    from controller.virt import accel

    a = accel.detect()
    say(f"demo lab home {home}; acceleration {a.kind} ({a.reason})")
    lab = Lab.open(a)
    try:
        publish(lab.paths, "1.0.0", None, "the first image version")
        create(lab)
        return asyncio.run(story(lab))
    finally:
        lab.close()


if __name__ == "__main__":
    sys.exit(main())
