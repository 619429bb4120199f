"""Benchmark: the web view at 1,000 instances, measured in Debian's Chromium.

    .venv/bin/python bench/web_render.py [--instances 1000] [--runs 3]

The lab's own server (API thread, controller loop on the fake driver of tests/fakedriver.py,
test:///default) serves a scale set of N instances; a headless Chromium logs in by a one-time
link and opens its page. Printed: the server's snapshot (JSON size, time to render it), the
browser's first render of the heat map, and its renders while a rolling upgrade of the whole set
runs (each event pushed over server-sent events), all in milliseconds inside the page
(performance.now() around the render function).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from controller.api import tls
from controller.core.settings import LabPaths
from controller.ops.lab import Lab
from controller.state.upgrades import UpgradeStore
from controller.virt.accel import Accel
from controller.web import session, snapshot
from tests.apiserver import serve
from tests.browser import chromium
from tests.fakedriver import FakeDriver, make_scale_set
from tests.helpers import make_qcow2
from tests.test_rolling import O, P, S, model


def run(instances: int, tmp: Path) -> dict:
    os.environ["SCALESET_PORTS_DIR"] = str(tmp)
    lab = Lab(LabPaths(tmp / "lab").ensure(), "test:///default", Accel("tcg", "benchmark"))
    disk = make_qcow2(tmp / "disk.qcow2", data=b"x" * 4096)
    lab.gallery.import_file(P, O, S, "1.0.0", disk)
    driver = FakeDriver()
    doc = model(capacity=instances, enableAutomaticOSUpgrade=False)
    make_scale_set(lab, doc, driver, "1.0.0")
    t0 = time.perf_counter()
    data = snapshot.set_view(lab, "web", lambda _l, ds: dict.fromkeys(ds, "running"))
    server_ms = 1000 * (time.perf_counter() - t0)
    size = len(json.dumps(data))
    out = {"instances": instances, "snapshotBytes": size, "serverSnapshotMs": server_ms}
    served_gen = serve(lab, driver)
    api = next(served_gen)
    try:
        with chromium(tls.ensure_certs(lab.paths).ca, tmp / "browser") as browser:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(session.login_link(lab.paths, api.endpoint))
            t1 = time.perf_counter()
            page.goto(f"{api.endpoint}/lab/scalesets/web")
            page.locator("#live.on").wait_for(timeout=30_000)
            out["loadToLiveMs"] = 1000 * (time.perf_counter() - t1)
            out["firstRenderMs"] = page.evaluate("window.scalesetLab.renderMs[0]")
            assert page.locator(".ud-cells .cell").count() == instances
            lab.gallery.import_file(P, O, S, "1.0.1", disk)
            page.get_by_role("button", name="Start rolling upgrade").click()
            page.locator("#confirm-yes").click()
            page.locator('#run-status:text("Completed")').wait_for(timeout=300_000)
            times = page.evaluate("window.scalesetLab.renderMs")
            out["liveRenders"] = len(times) - 1
            out["liveRenderMs"] = times[1:]
            out["upgrade"] = UpgradeStore(lab.db).latest("web").status
    finally:
        next(served_gen, None)
        lab.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results = [run(args.instances, Path(tempfile.mkdtemp(prefix="scaleset-web-"))) for _ in range(args.runs)]
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    first = [r["firstRenderMs"] for r in results]
    live = [ms for r in results for ms in r["liveRenderMs"]]
    r0 = results[0]
    print(f"{args.instances} instances, {args.runs} runs: snapshot {r0['snapshotBytes'] / 1024:.0f} KiB, rendered by the "
          f"server in median {statistics.median(r['serverSnapshotMs'] for r in results):.0f} ms")
    print(f"first render of the page: median {statistics.median(first):.1f} ms, max {max(first):.1f} ms; "
          f"page load to live: median {statistics.median(r['loadToLiveMs'] for r in results):.0f} ms")
    if live:
        print(f"live renders during a rolling upgrade of the whole set ({len(live)} events): median "
              f"{statistics.median(live):.1f} ms, p95 {sorted(live)[int(0.95 * (len(live) - 1))]:.1f} ms, "
              f"max {max(live):.1f} ms; upgrades {', '.join(r['upgrade'] for r in results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
