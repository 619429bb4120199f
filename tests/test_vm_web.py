"""VM tier: the web view follows a real rolling upgrade of 3 guests in Chromium, started from the
page, from the first batch to Completed; then reimages one instance from its instance view.
Screenshots go to $SCALESET_ARTIFACTS/web (default artifacts/web)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from controller.api import tls
from controller.ops import commands as ops
from controller.ops.lab import Lab
from tests.browser import chromium
from tests.vmfixtures import REPO, app_model, controller_process

pytestmark = [
    pytest.mark.vm,
    pytest.mark.timeout(2400),
    pytest.mark.skipif(os.geteuid() != 0, reason="image builds need root (mmdebstrap, chroot)"),
]
NAME, COUNT = "webview", 3
BOOT = 240_000  # ms a page may wait for one guest's step under TCG
REIMAGE = 660_000  # ms: the lab's boot timeout (600 s) and the swap
ARTIFACTS = Path(os.environ.get("SCALESET_ARTIFACTS", REPO / "artifacts")) / "web"


@pytest.fixture(scope="module")
def served(vm_lab, v1, v2, tmp_path_factory):
    lab = Lab.open()
    ops.create(lab, app_model(NAME, COUNT, "web", v1.version, {"mode": "Manual"}, {"healthWaitTimeout": "PT3M"}))
    try:
        with controller_process(tmp_path_factory.mktemp("controller") / "controller.log", lab.paths):
            link = subprocess.run([sys.executable, "-m", "controller.cli", "dashboard", "--no-browser"], cwd=REPO,
                                  capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            with chromium(tls.ensure_certs(lab.paths).ca, tmp_path_factory.mktemp("browser")) as browser:
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.goto(link)
                yield lab, page, v2[0]
    finally:
        ops.delete(lab, NAME)
        lab.close()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def cell(page, iid: int):
    return page.locator(f'.ud-cells .cell[data-id="{iid}"]')


def test_the_page_follows_a_real_rollout_to_completed(served):
    lab, page, v2 = served
    page.get_by_role("link", name=NAME).click()
    page.locator("#live.on").wait_for(timeout=30_000)
    for i in range(COUNT):  # health read by the controller while the page is open
        cell(page, i).locator('.h:text("Healthy")').wait_for(timeout=BOOT)
    ops.update_model(lab, NAME, [f"properties.virtualMachineProfile.storageProfile.imageReference.version={v2.version}"])
    for i in range(COUNT):
        cell(page, i).locator('.f:text("old model")').wait_for(timeout=30_000)
    shot(page, "0-before")

    page.get_by_role("button", name="Start rolling upgrade").click()
    page.locator("#confirm-yes").click()
    for batch in range(1, COUNT + 1):  # 20 % of 3: one instance a batch, instance ids in order
        iid = batch - 1
        page.locator(f'.batch-head:text("Batch {batch} · in progress")').wait_for(timeout=BOOT)
        assert "upgrading" in cell(page, iid).inner_text()
        shot(page, f"{batch}-batch-running")
        page.locator(f'.batch-head:text-matches("Batch {batch} · [0-9.]+ s")').wait_for(timeout=BOOT)
        cell(page, iid).locator(f'.v:text("{v2.version}")').wait_for(timeout=30_000)
        lane = page.locator(f'.lane[data-instance="{iid}"]')
        assert lane.locator(".seg-swap").count() == lane.locator(".seg-boot").count() == 1
        assert "upgraded" in lane.inner_text()
        shot(page, f"{batch}-batch-done")
    page.locator('#run-status:text("Completed")').wait_for(timeout=60_000)
    assert f"{COUNT} succeeded · 0 failed" in page.locator("#progress").inner_text()
    assert "Completed" in page.locator("#history-table").inner_text()
    for i in range(COUNT):
        cell(page, i).locator('.h:text("Healthy")').wait_for(timeout=60_000)
        assert "old model" not in cell(page, i).inner_text()
    assert {i.stamp["version"] for i in lab.instances.list(NAME)} == {v2.version}
    shot(page, "4-completed")


def test_reimage_from_the_instance_view(served):
    lab, page, v2 = served
    before, other = lab.instances.get(NAME, 1), lab.instances.get(NAME, 0)
    cell(page, 1).focus()
    page.locator('#details h2:text("Instance 1")').wait_for(timeout=30_000)
    assert v2.version in page.locator("#details").inner_text()
    page.locator("#details").get_by_role("button", name="Reimage").click()
    page.locator("#confirm-yes").click()
    op = page.locator('#operations li:has-text("reimage")')
    # the lab's own verdict, however long it takes (up to its boot timeout, a silent console's reset included)
    op.locator('.status:text-matches("^(Succeeded|Failed|Canceled)$")').wait_for(timeout=REIMAGE)
    after = lab.instances.get(NAME, 1)
    assert "Succeeded" in op.inner_text(), (op.inner_text(), after.provisioning_state, after.error)
    assert after.os_disk != before.os_disk and after.boot_id != before.boot_id
    assert lab.instances.get(NAME, 0).boot_id == other.boot_id  # only the one asked for
    shot(page, "5-reimaged")
