"""VM tier: a 3-instance scale set with a 1 GiB data disk; reimage; manual upgrade."""
import json
import os
import time
from pathlib import Path

import pytest

from controller.ops import commands as ops
from controller.ops import views
from controller.ops.lab import Lab
from controller.virt import disks, vm
from controller.virt.hypervisor import attached_os_disk
from tests.vmfixtures import O, P, S

pytestmark = [
    pytest.mark.vm,
    pytest.mark.skipif(os.geteuid() != 0, reason="image builds need root (mmdebstrap, chroot)"),
]
NAME = "vmss"
MARKER = "scaleset-lab data disk marker"


def model(version: str) -> dict:
    return {
        "name": NAME, "sku": {"capacity": 3},
        "properties": {
            "upgradePolicy": {"mode": "Manual"},
            "virtualMachineProfile": {
                "storageProfile": {"imageReference": {"publisher": P, "offer": O, "sku": S, "version": version},
                                   "dataDisks": [{"lun": 0, "diskSizeGB": 1}]},
                "osProfile": {"computerNamePrefix": "web"},
                "extensionProfile": {"extensions": [{"name": "hello", "properties": {
                    "publisher": "Microsoft.Azure.Extensions", "type": "CustomScript",
                    "settings": {"commandToExecute": "date +%s.%N > /var/tmp/hello-ran; echo said hello"}}}]},
            }}}


@pytest.fixture(scope="module")
def lab(vm_lab, v1):
    lab = Lab.open()
    t0 = time.monotonic()
    ops.create(lab, model(v1.version))
    print(f"\ncreate of 3 instances: {time.monotonic() - t0:.1f} s")
    try:
        yield lab
    finally:
        ops.delete(lab, NAME)
        lab.close()


def sh(lab: Lab, instance_id: int, script: str) -> str:
    res = ops.run_command(lab, NAME, str(instance_id), script)
    assert res.exit_status == 0, res.stderr
    return res.stdout


def test_instances_have_ids_names_domains_and_their_image(lab, v1):
    insts = lab.instances.list(NAME)
    assert [i.instance_id for i in insts] == [0, 1, 2]
    assert [i.computer_name for i in insts] == ["web000000", "web000001", "web000002"]
    assert [(i.update_domain, i.fault_domain) for i in insts] == [(0, 0), (1, 1), (2, 2)]
    for inst in insts:
        assert inst.provisioning_state == "Succeeded", inst.error
        assert inst.stamp["version"] == v1.version
        assert [e["provisioningState"] for e in inst.extensions] == ["Succeeded"]
        tag = lab.hv.lookup(inst.domain).lab_tag()
        assert (tag.scale_set, tag.instance_id, tag.home) == (NAME, str(inst.instance_id), str(lab.paths.home))
        assert set(inst.ports) == {22, 8765} and all(p >= 20000 for p in inst.ports.values())
    assert sh(lab, 2, "hostname").strip() == "web000002"
    view = views.instance_view(lab.models.get(NAME), insts[0], "running")
    assert view["extensions"][0]["statuses"][0]["code"] == "ProvisioningState/succeeded"
    assert "said hello" in view["extensions"][0]["statuses"][0]["message"]


def test_reimage_keeps_the_data_disk_and_gives_a_fresh_os_disk(lab):
    sh(lab, 1, f"printf '{MARKER}' | dd of=/dev/disk/by-id/virtio-lun-0 bs=512 conv=fsync status=none; "
               "echo old > /var/tmp/on-old-os-disk")
    before = {i.instance_id: i for i in lab.instances.list(NAME)}
    old_ci = sh(lab, 1, "cat /var/lib/cloud/data/instance-id").strip()
    pool = lab.pool_of(before[1])
    data_disk = Path(disks.data_disk_paths(pool, before[1].domain, vm.typed_profile(before[1]).storageProfile.dataDisks)[0])
    inode = data_disk.stat().st_ino

    t0 = time.monotonic()
    [after] = ops.reimage(lab, NAME, ["1"])
    print(f"\nreimage to ready: {time.monotonic() - t0:.1f} s")

    assert after.provisioning_state == "Succeeded", after.error
    assert after.boot_id != before[1].boot_id
    assert after.os_disk != before[1].os_disk and not disks.exists(pool, before[1].os_disk)
    assert attached_os_disk(lab.hv, after.domain) == after.os_disk
    assert data_disk.stat().st_ino == inode
    out = sh(lab, 1, "head -c 29 /dev/disk/by-id/virtio-lun-0; echo; ls /var/tmp; cat /var/lib/cloud/data/instance-id")
    lines = out.splitlines()
    assert lines[0] == MARKER
    assert "on-old-os-disk" not in lines[1:-1] and "hello-ran" in lines[1:-1]  # fresh disk, extension ran again
    assert lines[-1] != old_ci and lines[-1] == after.ci_instance_id
    assert after.ports == before[1].ports and after.stamp == before[1].stamp
    now = {i.instance_id: i for i in lab.instances.list(NAME)}
    assert now[0].boot_id == before[0].boot_id and now[2].boot_id == before[2].boot_id  # others untouched


def test_manual_mode_model_change_waits_for_update_instances(lab, v2):
    v2_image, _ = v2
    ops.update_model(lab, NAME, [f"properties.virtualMachineProfile.storageProfile.imageReference.version="
                                 f"{v2_image.version}"])
    ss = lab.models.get(NAME)
    insts = lab.instances.list(NAME)
    assert [views.latest_model_applied(ss, i) for i in insts] == [False, False, False]
    assert all(i.stamp["version"] == "1.0.0" for i in insts)  # Manual: the model alone changes nothing

    t0 = time.monotonic()
    [upgraded] = ops.update_instances(lab, NAME, None, update_domain=0)
    print(f"\nupdate-instances (UD 0) to ready: {time.monotonic() - t0:.1f} s")
    assert upgraded.instance_id == 0 and upgraded.provisioning_state == "Succeeded", upgraded.error
    assert upgraded.stamp["version"] == v2_image.version  # read from inside the guest
    assert sh(lab, 0, "cat /etc/scaleset-demo").strip() == "version two"
    assert sh(lab, 0, "head -c 4 /dev/disk/by-id/virtio-lun-0 | od -An -c").split() == ["\\0"] * 4
    insts = lab.instances.list(NAME)
    assert [views.latest_model_applied(ss, i) for i in insts] == [True, False, False]
    listed = [views.instance(ss, i) for i in insts]
    assert listed[0]["storageProfile"]["imageReference"]["exactVersion"] == v2_image.version
    assert json.dumps(listed).count('"latestModelApplied": false') == 2
