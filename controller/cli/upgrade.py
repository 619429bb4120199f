"""`scaleset controller`, `rolling-upgrade start|cancel|get-latest`, `get-os-upgrade-history`."""
from __future__ import annotations

import argparse
import asyncio
import signal
import sqlite3
import sys
from datetime import datetime

from controller.api import app
from controller.api.context import ApiContext
from controller.api.endpoint import configured_port, endpoint
from controller.cli.inputs import check_range, check_seconds
from controller.cli.vmss import out
from controller.core import signals
from controller.core.errors import ModelError
from controller.ops import views
from controller.ops.lab import Lab
from controller.ops.rolling import Orchestrator, start_upgrade
from controller.ops.rolling_driver import LibvirtDriver
from controller.ops.service import Controller
from controller.ops.upgrade_views import history_item, latest_view
from controller.state.upgrades import UpgradeStore
from controller.web import routes as web_routes


def _say(msg: str) -> None:
    print(f"{datetime.now().strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def cmd_controller(args) -> int:
    check_seconds("--interval", args.interval)
    check_range("--api-port", args.api_port, 0, 65535)
    lab = Lab.open()
    _say(f"controller watching {lab.paths.home} (every {args.interval:g} s; Ctrl-C stops)")
    controller = Controller(lab, LibvirtDriver(lab), interval=args.interval, say=_say)

    async def run() -> None:
        api = None
        if not args.no_api:
            api = app.ApiThread(ApiContext.of(lab, controller), args.api_port, extra=(web_routes.register,))
            url = endpoint(api.start())
            _say(f"ARM API on {url} (`scaleset api env` prints what a client needs); "
                 f"web view on {url}/lab/ (`scaleset dashboard` logs you in)")
        try:
            await controller.run(once=args.once, files=not args.no_files)
        finally:
            if api is not None:
                api.stop()

    def farewell(signum: int) -> str | None:
        """A stop that cut nothing off says so (from any thread: a connection of its own); one that
        did says the ERROR line (repair, or the next controller, finishes it)."""
        db = sqlite3.connect(f"file:{lab.paths.db}?mode=ro", uri=True, timeout=1)
        try:
            cut = controller.cut_off(db)
        finally:
            db.close()
        stamp = datetime.now().strftime("%H:%M:%S")
        return None if cut else f"{stamp} controller stopped ({signal.Signals(signum).name})"

    signals.say_instead(farewell)
    asyncio.run(run())
    return 0


def cmd_start(args) -> int:
    lab = Lab.open()
    ss = lab.models.get(args.name)
    up = start_upgrade(lab, ss, "User", owned=not args.no_wait)
    _say(f"rolling upgrade {up.id} of {ss.name} to {up.target['version']} started")
    if not args.no_wait:
        store = UpgradeStore(lab.db)

        def event(msg: str) -> None:
            _say(msg)
            if args.watch:  # the batches and instances so far, after every event
                print(_table(lab, latest_view(lab, store.get(up.id))) + "\n", file=sys.stderr, flush=True)

        asyncio.run(Orchestrator(lab, LibvirtDriver(lab), on_event=event).run(up))
    up = UpgradeStore(lab.db).get(up.id)
    out(args, latest_view(lab, up))
    return 0 if up.status in ("Completed", "RollingForward") else 1


def cmd_cancel(args) -> int:
    lab = Lab.open()
    up = UpgradeStore(lab.db).request_cancel(args.name)
    _say(f"cancel requested: upgrade {up.id} stops once its in-flight instances settle")
    out(args, latest_view(lab, up))
    return 0


def _table(lab: Lab, view: dict) -> str:
    rows = [{**r, "version": view["targetImageReference"]["version"]} for r in view["lab"]["instances"]]
    head = (f"upgrade {view['lab']['upgradeId']} -> {view['targetImageReference']['version']}: "
            f"{view['runningStatus']['code']}  {view['progress']}")
    if view["error"]:
        head += f"\nerror: {view['error']['code']}: {view['error']['message']}"
    return head + "\n" + views.table(rows, [("Batch", "batch"), ("InstanceId", "instanceId"), ("State", "state"),
                                           ("Swap", "timings.swap"), ("Boot", "timings.boot"),
                                           ("Health", "timings.health"), ("Rollback", "timings.rollback"),
                                           ("Error", "error")])


def cmd_get_latest(args) -> int:
    check_seconds("--interval", args.interval)
    lab = Lab.open()
    store = UpgradeStore(lab.db)
    lab.models.get(args.name)
    while True:
        up = store.latest(args.name)
        if up is None:
            raise ModelError("--name", f"scale set '{args.name}' has no rolling upgrade yet", "NotFound")
        view = latest_view(lab, up)
        if not args.watch:
            out(args, view)
            return 0
        if sys.stdout.isatty():
            sys.stdout.write("\x1b[H\x1b[2J")
        print(_table(lab, view) + "\n", flush=True)
        if up.status != "RollingForward":
            return 0
        signals.sleep(args.interval)


def cmd_history(args) -> int:
    lab = Lab.open()
    lab.models.get(args.name)
    out(args, [history_item(lab, up) for up in UpgradeStore(lab.db).history(args.name)])
    return 0


def register(sub) -> None:
    named = argparse.ArgumentParser(add_help=False)
    named.add_argument("--name", "-n", required=True, help="scale set name")
    named.add_argument("-o", "--output", choices=("json",), default="json")

    p = sub.add_parser("controller", help="long-running: automatic OS upgrades, resumes interrupted upgrades")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between looks (default %(default)s)")
    p.add_argument("--once", action="store_true", help="one look (and the upgrades it starts), then exit")
    p.add_argument("--no-files", action="store_true", help="do not serve $SCALESET_HOME/files to guests")
    p.add_argument("--api-port", type=int, default=configured_port(),
                   help="serve the ARM API and the web view on https://127.0.0.1:PORT (default $SCALESET_API_PORT or 7443; "
                        "0: any free port)")
    p.add_argument("--no-api", action="store_true", help="do not serve the ARM API (nor the web view)")
    p.set_defaults(func=cmd_controller)

    ru = sub.add_parser("rolling-upgrade", help="start, cancel or follow a rolling OS upgrade").add_subparsers(
        dest="ru_cmd", required=True)
    p = ru.add_parser("start", parents=[named], help="upgrade every instance not on the newest version (no "
                                                     "automatic rollback); progress on stderr")
    p.add_argument("--no-wait", action="store_true", help="leave it to `scaleset controller`")
    p.add_argument("--watch", action="store_true", help="a table of batches and instances after every event")
    p.set_defaults(func=cmd_start)
    p = ru.add_parser("cancel", parents=[named], help="stop after the in-flight instances settle")
    p.set_defaults(func=cmd_cancel)
    p = ru.add_parser("get-latest", parents=[named], help="status of the latest upgrade")
    p.add_argument("--watch", action="store_true", help="a live table of batches and instances until it ends")
    p.add_argument("--interval", type=float, default=2.0)
    p.set_defaults(func=cmd_get_latest)

    p = sub.add_parser("get-os-upgrade-history", parents=[named], help="the last 5 upgrades of two months")
    p.set_defaults(func=cmd_history)
