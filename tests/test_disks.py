"""Disk sizes and caching from the model, on real qcow2 files (no guest): the OS disk grows past
the image with osDisk.diskSizeGB (never below it), data disks grow and never shrink."""
import copy
import subprocess

import pytest
import yaml

from controller.core.errors import ModelError
from controller.model.scaleset import parse
from controller.ops import commands as ops
from controller.virt import cloudinit, vm
from images import qcow2
from tests.helpers import make_qcow2
from tests.test_model import BASE

GIB = 1 << 30
OS_SIZE = "$.properties.virtualMachineProfile.storageProfile.osDisk.diskSizeGB"


def profile(disks: list[dict]):
    doc = copy.deepcopy(BASE)
    doc["properties"]["virtualMachineProfile"]["storageProfile"]["dataDisks"] = disks
    return parse(doc).properties.virtualMachineProfile


def test_the_os_disk_is_the_image_size_or_the_bigger_disk_size_gb(tmp_path):
    base = make_qcow2(tmp_path / "image.qcow2", size="2G")
    vm.create_os_disk(tmp_path / "a" / "os.qcow2", base)
    vm.create_os_disk(tmp_path / "b" / "os.qcow2", base, 2)
    vm.create_os_disk(tmp_path / "c" / "os.qcow2", base, 5)
    assert [qcow2.virtual_size(tmp_path / d / "os.qcow2") for d in "abc"] == [2 * GIB, 2 * GIB, 5 * GIB]
    with pytest.raises(ModelError) as err:
        vm.create_os_disk(tmp_path / "d" / "os.qcow2", base, 1)
    assert err.value.field == OS_SIZE and "smaller than the image (2 GB)" in err.value.reason
    assert not (tmp_path / "d" / "os.qcow2").exists()


def test_a_model_whose_os_disk_is_smaller_than_its_image_is_refused_at_create(lab, tmp_path):
    from controller.ops.lab import Lab
    from controller.virt.accel import Accel
    t = Lab(lab, "test:///default", Accel("tcg", "test"))
    try:
        raw = tmp_path / "i.raw"
        with raw.open("wb") as f:  # sparse: 2 GiB the guest would see, a few bytes on the host
            f.write(b"x" * 65536)
            f.truncate(2 * GIB)
        image = tmp_path / "i.qcow2"
        subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(image)], check=True)
        t.gallery.import_file("scaleset-lab", "debian", "debian-12", "1.0.0", image)
        doc = copy.deepcopy(BASE)
        doc["properties"]["virtualMachineProfile"]["storageProfile"]["osDisk"] = {"diskSizeGB": 1}
        with pytest.raises(ModelError) as err:
            ops.create_model(t, doc)
        assert err.value.field == OS_SIZE and "smaller than image 1.0.0 (2 GB)" in err.value.reason
        assert t.models.list() == []
        doc["properties"]["virtualMachineProfile"]["storageProfile"]["osDisk"] = {"diskSizeGB": 3}
        assert ops.create_model(t, doc).properties.virtualMachineProfile.storageProfile.osDisk.diskSizeGB == 3
    finally:
        t.close()


def test_data_disks_grow_to_the_profile_and_never_shrink(tmp_path):
    vm.ensure_data_disks(tmp_path, profile([{"lun": 0, "diskSizeGB": 1}, {"lun": 1, "diskSizeGB": 2}]))
    vm.grow_data_disks(tmp_path, profile([{"lun": 0, "diskSizeGB": 3}, {"lun": 1, "diskSizeGB": 1},
                                          {"lun": 2, "diskSizeGB": 1}]))
    assert qcow2.virtual_size(vm.data_disk_path(tmp_path, 0)) == 3 * GIB
    assert qcow2.virtual_size(vm.data_disk_path(tmp_path, 1)) == 2 * GIB  # never smaller
    assert not vm.data_disk_path(tmp_path, 2).exists()  # made by ensure_data_disks, not here


def test_the_seed_grows_the_root_only_when_the_model_sizes_the_os_disk():
    def user_data(grow: bool) -> dict:
        spec = cloudinit.SeedSpec("i-1", "web000000", "azureuser", ["ssh-ed25519 AAAA k"], "52:54:00:00:00:01",
                                  grow_root=grow)
        return yaml.safe_load(cloudinit.render(spec)["user-data"])
    assert user_data(True)["bootcmd"] == [["python3", "-c", cloudinit.GROW_ROOT]]
    assert "bootcmd" not in user_data(False)
    compile(cloudinit.GROW_ROOT, "grow-root", "exec")
