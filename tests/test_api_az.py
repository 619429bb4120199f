"""The real Azure CLI (`az`, in its own virtualenv) against the lab's API: registered as a
custom cloud, logged in through the lab's managed-identity endpoint, driving a scale set on
the fake driver. Reimage and update-instances on real guests are in test_vm_api.py."""
from __future__ import annotations

import asyncio

import pytest

from controller.model.armid import DEFAULT_RESOURCE_GROUP as RG
from controller.model.armid import SUBSCRIPTION_ID
from tests.azcli import Az
from tests.fakedriver import FakeDriver, make_scale_set
from tests.test_rolling import model

pytestmark = pytest.mark.azcli


class SlowDriver(FakeDriver):
    """Boots take a second (in the event loop, not blocking it): an upgrade lasts long enough to cancel."""

    async def wait_booted(self, inst, timeout):
        await asyncio.sleep(1)
        return await super().wait_booted(inst, timeout)


@pytest.fixture
def driver():
    return SlowDriver()


@pytest.fixture
def az(api, driver, tmp_path, az_venv):
    make_scale_set(api.lab, model(capacity=3), driver, "1.0.0")
    return Az(api.endpoint, api.ca, f"{api.endpoint}/identity/{api.token()}", tmp_path, venv=az_venv)


def test_login_show_list_and_views(az, api):
    assert az.subscription == SUBSCRIPTION_ID
    shown = az.json("vmss", "show", "-g", RG, "-n", "web")
    assert shown["id"].endswith(f"/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachineScaleSets/web")
    assert shown["sku"]["capacity"] == 3 and shown["resourceGroup"] == RG
    assert [s["name"] for s in az.json("vmss", "list", "-g", RG)] == ["web"]
    assert [s["name"] for s in az.json("vmss", "list")] == ["web"]
    vms = az.json("vmss", "list-instances", "-g", RG, "-n", "web")
    assert [v["instanceId"] for v in vms] == ["0", "1", "2"] and all(v["latestModelApplied"] for v in vms)
    views = az.json("vmss", "get-instance-view", "-g", RG, "-n", "web", "--instance-id", "*")
    assert [v["platformUpdateDomain"] for v in views] == [0, 1, 2]
    one = az.json("vmss", "get-instance-view", "-g", RG, "-n", "web", "--instance-id", "1")
    assert one["statuses"][0]["code"] == "ProvisioningState/succeeded"
    summary = az.json("vmss", "get-instance-view", "-g", RG, "-n", "web")
    assert {s["code"]: s["count"] for s in summary["virtualMachine"]["statusesSummary"]}[
        "ProvisioningState/succeeded"] == 3


def test_update_set_keeps_what_az_does_not_send(az, api):
    before = api.lab.models.get("web")
    az.json("vmss", "update", "-g", RG, "-n", "web",
            "--set", "upgradePolicy.rollingUpgradePolicy.maxUnhealthyInstancePercent=40")
    after = api.lab.models.get("web")
    assert after.properties.upgradePolicy.rollingUpgradePolicy.maxUnhealthyInstancePercent == 40
    assert after.properties.labSettings == before.properties.labSettings
    vmp, old = after.properties.virtualMachineProfile, before.properties.virtualMachineProfile
    assert vmp.storageProfile.imageReference == old.storageProfile.imageReference
    assert vmp.extensionProfile == old.extensionProfile and vmp.networkProfile == old.networkProfile
    bad = az("vmss", "update", "-g", RG, "-n", "web",
             "--set", "upgradePolicy.rollingUpgradePolicy.maxBatchInstancePercent=60")
    assert bad.returncode == 1 and "(InvalidParameter)" in bad.stderr and "maxBatchInstancePercent" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_rolling_upgrade_start_get_latest_history_and_cancel(az, api, qcow2_file):
    api.lab.gallery.import_file("scaleset-lab", "debian", "debian-12", "1.0.1", qcow2_file)
    az.json("vmss", "rolling-upgrade", "start", "-g", RG, "-n", "web")
    latest = az.json("vmss", "rolling-upgrade", "get-latest", "-g", RG, "-n", "web")
    assert latest["runningStatus"]["code"] == "Completed" and latest["progress"]["successfulInstanceCount"] == 3
    history = az.json("vmss", "get-os-upgrade-history", "-g", RG, "-n", "web")
    assert [h["properties"]["targetImageReference"]["version"] for h in history] == ["1.0.1"]

    api.lab.gallery.import_file("scaleset-lab", "debian", "debian-12", "1.0.2", qcow2_file)
    az.json("vmss", "rolling-upgrade", "start", "-g", RG, "-n", "web", "--no-wait")
    az.json("vmss", "rolling-upgrade", "cancel", "-g", RG, "-n", "web")
    latest = az.json("vmss", "rolling-upgrade", "get-latest", "-g", RG, "-n", "web")
    assert latest["runningStatus"]["code"] == "Cancelled" and latest["progress"]["pendingInstanceCount"] >= 1


def test_errors_are_azures(az):
    missing = az("vmss", "show", "-g", RG, "-n", "nope")
    assert missing.returncode == 3 and "(ResourceNotFound)" in missing.stderr and missing.stdout == ""
    other = az("vmss", "show", "-g", "other-group", "-n", "web")
    assert other.returncode == 3
    busy = az("vmss", "rolling-upgrade", "cancel", "-g", RG, "-n", "web")
    assert busy.returncode == 3 and "(NotFound)" in busy.stderr


def test_update_instance_protection_as_az_does_it(az, api):
    shown = az.json("vmss", "update", "-g", RG, "-n", "web", "--instance-id", "0",
                    "--protect-from-scale-in", "true", "--protect-from-scale-set-actions", "true")
    assert shown["protectionPolicy"] == {"protectFromScaleIn": True, "protectFromScaleSetActions": True}
    az.json("vmss", "update", "-g", RG, "-n", "web", "--instance-id", "1", "--protect-from-scale-set-actions", "true")
    az.json("vmss", "update", "-g", RG, "-n", "web", "--instance-id", "0", "--protect-from-scale-set-actions", "false")
    vms = az.json("vmss", "list-instances", "-g", RG, "-n", "web")
    assert [(v["protectionPolicy"]["protectFromScaleIn"], v["protectionPolicy"]["protectFromScaleSetActions"])
            for v in vms] == [(True, False), (True, True), (False, False)]
    stored = {i.instance_id: (i.protect_from_scale_in, i.protect_from_scale_set_actions)
              for i in api.lab.instances.list("web")}
    assert stored == {0: (True, False), 1: (True, True), 2: (False, False)}
    bad = az("vmss", "update", "-g", RG, "-n", "web", "--instance-id", "1", "--protect-from-scale-in", "false")
    assert bad.returncode == 1 and "(InvalidParameter)" in bad.stderr and "protectFromScaleIn" in bad.stderr
    assert "Traceback" not in bad.stderr and api.lab.instances.get("web", 1).protect_from_scale_in
