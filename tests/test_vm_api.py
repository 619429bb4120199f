"""VM tier through Azure's SDK and the real `az`: `scaleset controller` serves the API; the SDK
creates a scale set from a gallery image on real guests, lists its VMs, reimages one, rolls out a
newly published version with begin_start_os_upgrade(...).result(), reads get_latest and the
history; then az reimages, updates the model, runs update-instances and restarts."""
import os
import subprocess
import sys
import time

import pytest
from azure.mgmt.compute import models as m

from controller.api import tls, tokens
from controller.api.endpoint import endpoint, recorded_port
from controller.model.armid import DEFAULT_RESOURCE_GROUP as RG
from controller.ops import commands as ops
from controller.ops.lab import Lab
from images.builder import build
from tests.apiserver import LabCredential
from tests.azcli import Az
from tests.vmfixtures import REPO, O, P

pytestmark = [
    pytest.mark.vm,
    pytest.mark.timeout(2400),
    pytest.mark.skipif(os.geteuid() != 0, reason="image builds need root (mmdebstrap, chroot)"),
]
NAME, SKU = "sdk", "api-debian-12"  # a SKU of its own: other modules' versions never become its latest


@pytest.fixture(scope="module")
def api(vm_lab, v1, gallery, tmp_path_factory):
    build(gallery, P, O, SKU, "1.0.0", recipe_name="debian-12", log=lambda _m: None)
    log = tmp_path_factory.mktemp("controller") / "controller.log"
    with open(log, "w") as f:
        proc = subprocess.Popen([sys.executable, "-m", "controller.cli", "controller", "--interval", "1",
                                 "--api-port", "0", "--no-files"], stdout=f, stderr=subprocess.STDOUT, cwd=REPO)
    lab = Lab.open()
    try:
        for _ in range(300):
            if (port := recorded_port(lab.paths)) is not None:
                break
            assert proc.poll() is None, log.read_text()
            time.sleep(0.1)
        from azure.mgmt.compute import ComputeManagementClient
        client = ComputeManagementClient(LabCredential(tokens.mint(lab.paths)), tokens.SUBSCRIPTION_ID,
                                         base_url=endpoint(port), connection_verify=str(tls.ensure_certs(lab.paths).ca),
                                         polling_interval=1)
        yield lab, client, gallery, endpoint(port)
    finally:
        proc.terminate()
        proc.wait(30)
        text = log.read_text()
        print("\n--- controller log ---\n" + text[-3000:])
        if lab.models.stored_name(NAME):
            ops.delete(lab, NAME)
        lab.close()
        assert tokens.mint(lab.paths)[:20] not in text


def model() -> m.VirtualMachineScaleSet:
    return m.VirtualMachineScaleSet(
        location="local", sku=m.Sku(name="Lab_2vCPU_512MiB", capacity=2),
        properties=m.VirtualMachineScaleSetProperties(
            upgrade_policy=m.UpgradePolicy(mode="Manual"),
            virtual_machine_profile=m.VirtualMachineScaleSetVMProfile(
                storage_profile=m.VirtualMachineScaleSetStorageProfile(
                    image_reference=m.ImageReference(publisher=P, offer=O, sku=SKU, version="latest"),
                    data_disks=[m.VirtualMachineScaleSetDataDisk(lun=0, disk_size_gb=1, create_option="Empty")]),
                os_profile=m.VirtualMachineScaleSetOSProfile(computer_name_prefix="sdk", admin_username="azureuser"))))


def test_the_sdk_creates_lists_reimages_and_rolls_out(api, tmp_path, az_venv):
    lab, client, gallery, url = api
    vmss = client.virtual_machine_scale_sets.begin_create_or_update(RG, NAME, model()).result()
    assert vmss.properties.provisioning_state == "Succeeded", vmss
    vms = list(client.virtual_machine_scale_set_vms.list(RG, NAME))
    assert [v.instance_id for v in vms] == ["0", "1"]
    assert all(v.properties.provisioning_state == "Succeeded" for v in vms), [v.properties for v in vms]
    view = client.virtual_machine_scale_set_vms.get_instance_view(RG, NAME, "1")
    assert [s.code for s in view.statuses] == ["ProvisioningState/succeeded", "PowerState/running"]

    before = {i.instance_id: i for i in lab.instances.list(NAME)}
    client.virtual_machine_scale_sets.begin_reimage(
        RG, NAME, m.VirtualMachineScaleSetReimageParameters(instance_ids=["1"])).result()
    after = {i.instance_id: i for i in lab.instances.list(NAME)}
    assert after[1].os_disk != before[1].os_disk and after[1].boot_id != before[1].boot_id
    assert after[0].os_disk == before[0].os_disk and after[0].boot_id == before[0].boot_id

    script = tmp_path / "v2.sh"
    script.write_text("echo 'sdk version 2' > /etc/scaleset-demo\n")
    build(gallery, P, O, SKU, "1.0.1", recipe_name="debian-12", customize=[script], log=lambda _m: None)
    client.virtual_machine_scale_set_rolling_upgrades.begin_start_os_upgrade(RG, NAME).result()
    latest = client.virtual_machine_scale_set_rolling_upgrades.get_latest(RG, NAME)
    assert latest.properties.running_status.code == "Completed", latest
    assert latest.properties.progress.successful_instance_count == 2
    history = list(client.virtual_machine_scale_sets.get_os_upgrade_history(RG, NAME))
    assert [h.properties.target_image_reference.version for h in history] == ["1.0.1"]
    assert history[0].properties.started_by == "User"
    assert {i.stamp["version"] for i in lab.instances.list(NAME)} == {"1.0.1"}
    vms = list(client.virtual_machine_scale_set_vms.list(RG, NAME))
    assert all(v.properties.latest_model_applied for v in vms)

    # the real az on the same set: reimage one, pin the model to 1.0.0, bring every instance to it, restart one
    az = Az(url, tls.ensure_certs(lab.paths).ca, f"{url}/identity/{tokens.mint(lab.paths)}", tmp_path, venv=az_venv)
    before = {i.instance_id: i for i in lab.instances.list(NAME)}
    az.json("vmss", "reimage", "-g", RG, "-n", NAME, "--instance-ids", "0")
    after = {i.instance_id: i for i in lab.instances.list(NAME)}
    assert after[0].os_disk != before[0].os_disk and after[1].os_disk == before[1].os_disk
    az.json("vmss", "update", "-g", RG, "-n", NAME, "--set",
            "virtualMachineProfile.storageProfile.imageReference.version=1.0.0")
    assert [v["latestModelApplied"] for v in az.json("vmss", "list-instances", "-g", RG, "-n", NAME)] == [False] * 2
    az.json("vmss", "update-instances", "-g", RG, "-n", NAME, "--instance-ids", "*")
    assert {i.stamp["version"] for i in lab.instances.list(NAME)} == {"1.0.0"}
    assert all(v["latestModelApplied"] for v in az.json("vmss", "list-instances", "-g", RG, "-n", NAME))
    boot = lab.instances.list(NAME)[1].boot_id
    az.json("vmss", "restart", "-g", RG, "-n", NAME, "--instance-ids", "1")
    assert lab.instances.list(NAME)[1].boot_id != boot
    power = az.json("vmss", "get-instance-view", "-g", RG, "-n", NAME, "--instance-id", "1")["statuses"][1]["code"]
    assert power == "PowerState/running"

    client.virtual_machine_scale_sets.begin_delete(RG, NAME).result()
    assert lab.models.stored_name(NAME) is None and not any("sdk" in v.name for v in lab.pool_at(None).volumes())
