"""The web view in a real Chromium against the lab's server (test:///default, the fake driver):
the one-time login, the heat map and the timeline after each event of a scripted rollout of 20
instances, a faulted one with its rollback, refused actions, the gallery action, two screen sizes."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import ssl
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import pytest

from controller.api import tls, tokens
from controller.core.settings import LabPaths
from controller.ops.commands import update_model
from controller.state.upgrades import UpgradeStore
from controller.web import session
from tests.apiserver import serve
from tests.browser import chromium
from tests.fakedriver import FakeDriver, make_scale_set
from tests.test_rolling import O, P, S, model, publish
from tests.vmfixtures import REPO

SECRET = "never-shown-7f3a"
WAIT = 15_000  # ms: what a page may take to show an event


class GatedDriver(FakeDriver):
    """Boots wait for a permit from the test: the rollout advances one step at a time."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.gate = threading.Semaphore(0)

    async def wait_booted(self, inst, timeout):
        while not self.gate.acquire(blocking=False):
            await asyncio.sleep(0.02)
        return await super().wait_booted(inst, timeout)


@pytest.fixture
def driver():
    return GatedDriver()


def dashboard_link(home) -> str:
    """`scaleset dashboard --no-browser`: the link is the last line of its output."""
    out = subprocess.run([sys.executable, "-m", "controller.cli", "dashboard", "--no-browser"], cwd=REPO, text=True,
                         capture_output=True, env={**os.environ, "SCALESET_HOME": str(home)}, check=True)
    return out.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def shared_ca(tmp_path_factory):
    """One CA and server certificate for the module's labs: one browser trusts them all."""
    return tls.ensure_certs(LabPaths(tmp_path_factory.mktemp("web-ca")).ensure())


def share_certs(paths: LabPaths, certs: tls.Certs) -> None:
    folder = tls.api_dir(paths)
    for src in (certs.ca, certs.ca_key, certs.cert, certs.key):
        shutil.copy2(src, folder / src.name)


@pytest.fixture(scope="module")
def browser(shared_ca, tmp_path_factory):
    with chromium(shared_ca.ca, tmp_path_factory.mktemp("browser")) as b:
        yield b


@pytest.fixture
def api(flab, driver, shared_ca):
    share_certs(flab.paths, shared_ca)
    yield from serve(flab, driver)


def logged_in(browser, api, **context):
    ctx = browser.new_context(**context)
    page = ctx.new_page()
    page.goto(dashboard_link(api.lab.paths.home))
    return page


def cell(page, iid: int):
    return page.locator(f'.ud-cells .cell[data-id="{iid}"]')


def confirm(page, button: str) -> None:
    page.get_by_role("button", name=button, exact=True).first.click()
    page.locator("#confirm-yes").click()


def https(api, path: str, method: str = "GET", headers: dict | None = None, body: bytes | None = None):
    req = urllib.request.Request(api.endpoint + path, data=body, method=method, headers=headers or {})
    context = ssl.create_default_context(cafile=str(api.ca))
    try:
        with urllib.request.urlopen(req, context=context) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_the_login_link_works_once_and_sets_a_session(api, browser):
    doc = model(capacity=3, enableAutomaticOSUpgrade=False)
    doc["properties"]["virtualMachineProfile"]["extensionProfile"]["extensions"].append({"name": "setup", "properties": {
        "publisher": "Microsoft.Azure.Extensions", "type": "CustomScript", "typeHandlerVersion": "2.1",
        "settings": {"commandToExecute": "true"}, "protectedSettings": {"token": SECRET}}})
    make_scale_set(api.lab, doc, api.controller.driver, "1.0.0")
    link = dashboard_link(api.lab.paths.home)
    assert link.startswith(f"{api.endpoint}/lab/login?ticket=")
    page = browser.new_page()
    page.goto(link)
    assert page.url == f"{api.endpoint}/lab/"  # the ticket is gone from the address bar
    page.locator("#scale-sets").get_by_role("link", name="web").wait_for(timeout=WAIT)
    assert "Manual" not in page.locator("#scale-sets").inner_text()
    assert "debian-12:latest" in page.locator("#scale-sets").inner_text()
    cookie = next(c for c in page.context.cookies() if c["name"] == session.COOKIE)
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Lax"

    again = browser.new_page()  # a new browser context: no cookie; the same link a second time
    again.goto(link)
    assert "used already" in again.locator("#reason").inner_text()
    stranger = browser.new_context().new_page()
    resp = stranger.goto(f"{api.endpoint}/lab/scalesets/web")
    assert resp.status == 401 and "scaleset dashboard" in stranger.inner_text("main")

    # programs: the API's bearer token reads the JSON; the session cookie is no API token
    status, body = https(api, "/lab/api/scalesets/web", headers={"Authorization": f"Bearer {api.token()}"})
    assert status == 200 and len(json.loads(body)["cells"]) == 3
    status, body = https(api, "/subscriptions/x/resourceGroups/scaleset-lab/providers/Microsoft.Compute/"
                              "virtualMachineScaleSets/web?api-version=2024-07-01",
                         headers={"Authorization": f"Bearer {cookie['value']}"})
    assert status == 401
    status, body = https(api, "/lab/api/scalesets/web/rollingUpgrade/cancel", "POST",
                         headers={"Cookie": f"{session.COOKIE}={cookie['value']}"}, body=b"{}")
    assert status == 403 and json.loads(body)["error"]["target"] == session.CSRF_HEADER
    page.goto(f"{api.endpoint}/lab/scalesets/web")
    cell(page, 2).hover()
    page.locator('#details h2:text("Instance 2")').wait_for(timeout=WAIT)
    shown, token = page.content() + page.locator("#initial").inner_text(), api.token()
    for path in ("/lab/api/lab", "/lab/api/scalesets/web", "/lab/api/scalesets/web/instances/2"):
        shown += https(api, path, headers={"Authorization": f"Bearer {token}"})[1].decode()
    for secret in (SECRET, cookie["value"], token, tokens.lab_key(api.lab.paths).hex(), "ticket="):
        assert secret not in shown


def test_heat_map_and_timeline_follow_a_scripted_rollout(api, browser, qcow2_file, tmp_path):
    driver = api.controller.driver
    make_scale_set(api.lab, model(capacity=20, enableAutomaticOSUpgrade=False), driver, "1.0.0")
    publish(api.lab, "1.0.1", qcow2_file)
    page = logged_in(browser, api, viewport={"width": 1280, "height": 800})
    page.goto(f"{api.endpoint}/lab/scalesets/web")
    page.locator("#live.on").wait_for(timeout=WAIT)
    assert page.locator(".ud-cells .cell").count() == 20
    for ud in range(5):  # 20 instances over 5 update domains, one row each
        assert page.locator(f"#ud-{ud} .cell").count() == 4
    page.locator('.cell[data-id="19"] .h:text("Healthy")').wait_for(timeout=WAIT)  # the controller polls health
    assert "1.0.0" in cell(page, 7).inner_text()

    confirm(page, "Start rolling upgrade")
    for batch in range(1, 6):
        ids = range(4 * (batch - 1), 4 * batch)
        page.locator(f'.batch-head:text("Batch {batch} · in progress")').wait_for(timeout=WAIT)
        for iid in ids:
            assert "u-upgrading" in cell(page, iid).get_attribute("class")
            assert "upgrading" in cell(page, iid).inner_text()
        assert page.locator(".timeline .seg-running").count() == 4
        assert page.locator("#run-status").inner_text() == "RollingForward"
        assert f"{4 * (batch - 1)} succeeded" in page.locator("#progress").inner_text()
        page.screenshot(path=str(tmp_path / f"batch-{batch}.png"))
        for _ in ids:
            driver.gate.release()
        page.locator(f'.batch-head:text-matches("Batch {batch} · [0-9.]+ s")').wait_for(timeout=WAIT)
        for iid in ids:
            cell(page, iid).locator('.v:text("1.0.1")').wait_for(timeout=WAIT)
            assert "u-upgrading" not in cell(page, iid).get_attribute("class")
        assert page.locator(f'.lane[data-instance="{ids[0]}"] .seg-swap').count() == 1
    page.locator('#run-status:text("Completed")').wait_for(timeout=WAIT)
    assert "20 succeeded · 0 failed" in page.locator("#progress").inner_text()
    assert page.locator('[data-gate="upgradedUnhealthy"]').inner_text().startswith(
        "Upgraded instances not healthy: 0 of 20 (0 %) · limit 20 %")
    history = page.locator("#history-table tbody tr")
    assert history.count() == 1 and "Completed" in history.inner_text() and "1.0.1" in history.inner_text()
    assert all("old model" not in cell(page, i).inner_text() for i in (0, 19))

    cell(page, 5).hover()  # the instance view on hover
    page.locator('#details h2:text("Instance 5")').wait_for(timeout=WAIT)
    details = page.locator("#details").inner_text()
    assert "debian-12:1.0.1" in details and "VM running" in details and "The VM is healthy" in details
    page.screenshot(path=str(tmp_path / "completed.png"), full_page=True)


def test_a_faulted_rollout_shows_its_rollback_and_error_code(api, browser, qcow2_file):
    driver = api.controller.driver
    for _ in range(100):
        driver.gate.release()
    make_scale_set(api.lab, model(capacity=5), driver, "1.0.0")
    page = logged_in(browser, api)
    page.goto(f"{api.endpoint}/lab/scalesets/web")
    page.locator("#live.on").wait_for(timeout=WAIT)
    update_model(api.lab, "web", ["properties.labSettings.autoUpgradeDelay=PT0S"])
    driver.bad_versions.add("1.0.2")
    publish(api.lab, "1.0.2", qcow2_file)  # the platform starts it by itself; its app never becomes healthy
    page.locator('#run-status:text("Faulted")').wait_for(timeout=WAIT)
    assert "MaxUnhealthyUpgradedInstancePercentExceededInRollingUpgrade" in page.locator(".error-code").inner_text()
    assert "rolled back" in cell(page, 0).inner_text() and "u-rolledback" in cell(page, 0).get_attribute("class")
    assert "1.0.0" in cell(page, 0).inner_text()  # its old OS disk back
    assert "EXCEEDED" in page.locator('[data-gate="upgradedUnhealthy"]').inner_text()
    assert page.locator(".lane .seg-rollback").count() == 1
    assert "Platform" in page.locator("#history-table").inner_text()


def test_refused_actions_say_why(api, browser, qcow2_file):
    driver = api.controller.driver
    make_scale_set(api.lab, model(capacity=3, enableAutomaticOSUpgrade=False), driver, "1.0.0")
    page = logged_in(browser, api)
    page.goto(f"{api.endpoint}/lab/scalesets/web")
    page.locator("#live.on").wait_for(timeout=WAIT)
    confirm(page, "Cancel rolling upgrade")
    page.locator("#notice:not([hidden])").wait_for(timeout=WAIT)
    assert page.locator("#notice").inner_text() == "(NotFound) --name: no rolling upgrade of 'web' is in progress"
    confirm(page, "Upgrade UD 4")  # 3 instances: update domains 0..2 only
    page.locator('#notice:text("update domain 4")').wait_for(timeout=WAIT)
    assert "no instance in update domain 4" in page.locator("#notice").inner_text()
    page.get_by_role("button", name="Start rolling upgrade").click()  # a confirmation that is declined
    page.locator("#confirm-no").click()
    assert UpgradeStore(api.lab.db).latest("web") is None
    confirm(page, "Start rolling upgrade")  # nothing newer than what runs: the upgrade completes at once
    page.locator('#run-status:text("Completed")').wait_for(timeout=WAIT)


def test_the_gallery_action_and_two_screen_sizes(api, browser, qcow2_file, tmp_path):
    make_scale_set(api.lab, model(capacity=3, enableAutomaticOSUpgrade=False), api.controller.driver, "1.0.0")
    publish(api.lab, "1.0.1", qcow2_file)
    page = logged_in(browser, api, viewport={"width": 1280, "height": 800})
    row = page.locator("#images tr", has_text="1.0.1")
    row.get_by_role("button", name="Exclude from latest").click()
    page.locator("#confirm-yes").click()
    row.locator('td:text("excluded")').wait_for(timeout=WAIT)
    assert api.lab.gallery.get(P, O, S, "1.0.1").exclude_from_latest
    assert api.lab.gallery.resolve(P, O, S, "latest").version == "1.0.0"
    for width, height in ((1280, 800), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        for path in ("/lab/", "/lab/scalesets/web"):
            page.goto(api.endpoint + path)
            page.locator("#live.on").wait_for(timeout=WAIT)
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{path} at {width}px is {overflow}px wider than the screen"
            page.screenshot(path=str(tmp_path / f"{path.strip('/').replace('/', '-')}-{width}.png"))


def test_the_page_reconnects_after_a_controller_restart(flab, browser, shared_ca):
    driver = GatedDriver()
    share_certs(flab.paths, shared_ca)
    first = serve(flab, driver)
    api = next(first)
    make_scale_set(flab, model(capacity=3, enableAutomaticOSUpgrade=False), driver, "1.0.0")
    page = logged_in(browser, api)
    page.goto(f"{api.endpoint}/lab/scalesets/web")
    page.locator("#live.on").wait_for(timeout=WAIT)
    next(first, None)  # the controller stops
    page.locator("#live.off").wait_for(timeout=WAIT)
    update_model(flab, "web", ["properties.upgradePolicy.mode=Manual"])
    again = serve(flab, driver, port=api.port)  # a new controller process would take the same port
    next(again)
    try:
        page.locator("#live.on").wait_for(timeout=WAIT)  # the session cookie is still good
        page.locator('#summary:text-matches("mode Manual")').wait_for(timeout=WAIT)
    finally:
        next(again, None)
