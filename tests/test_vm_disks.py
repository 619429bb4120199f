"""VM tier: one real guest whose model sizes its disks and sets their caching: the root filesystem
fills the bigger OS disk, a data disk grown in the model is bigger after update-instances, and
libvirt's cache modes follow `caching`."""
import os
import xml.etree.ElementTree as ET

import pytest

from controller.ops import commands as ops
from controller.ops.lab import Lab
from tests.vmfixtures import O, P, S, created

pytestmark = [
    pytest.mark.vm,
    pytest.mark.skipif(os.geteuid() != 0, reason="image builds need root (mmdebstrap, chroot)"),
]
NAME = "disks"
GIB = 1 << 30
STORAGE = "properties.virtualMachineProfile.storageProfile"


@pytest.fixture(scope="module")
def lab(vm_lab, v1):
    with created({"name": NAME, "sku": {"capacity": 1}, "properties": {"virtualMachineProfile": {
        "storageProfile": {"imageReference": {"publisher": P, "offer": O, "sku": S, "version": v1.version},
                           "osDisk": {"diskSizeGB": v1.virtual_size_bytes // GIB + 1, "caching": "ReadWrite"},
                           "dataDisks": [{"lun": 0, "diskSizeGB": 1, "caching": "ReadOnly"}]},
        "osProfile": {"computerNamePrefix": "disk"}}}}) as lab:
        yield lab


def sh(lab: Lab, script: str) -> str:
    res = ops.run_command(lab, NAME, "0", script)
    assert res.exit_status == 0, res.stderr
    return res.stdout


def caches(lab: Lab) -> list[str | None]:
    inst = lab.instances.get(NAME, 0)
    root = ET.fromstring(lab.hv.lookup(inst.domain).xml())
    return [d.find("driver").get("cache") for d in root.iter("disk")]


def test_the_root_filesystem_fills_the_bigger_os_disk(lab, v1):
    want = (v1.virtual_size_bytes // GIB + 1) * GIB
    disk, fs = (int(x) for x in sh(lab, "lsblk -bdno SIZE /dev/vda; df -B1 --output=size / | tail -1").split())
    assert disk == want
    assert fs > v1.virtual_size_bytes * 1.1, (fs, v1.virtual_size_bytes)
    assert caches(lab)[:2] == ["writeback", "writethrough"]


def test_a_data_disk_grown_in_the_model_is_bigger_after_update_instances(lab):
    ops.update_model(lab, NAME, [f"{STORAGE}.dataDisks[0].diskSizeGB=2", f"{STORAGE}.dataDisks[0].caching=None"])
    [inst] = ops.update_instances(lab, NAME, None)
    assert inst.provisioning_state == "Succeeded", inst.error
    assert int(sh(lab, "blockdev --getsize64 /dev/disk/by-id/virtio-lun-0")) == 2 * GIB
    assert caches(lab)[:2] == ["writeback", "none"]
