"""Disk sizes from the model, on volumes of a pool of libvirt's test driver (in memory; the real
qcow2s: tests/test_vm_disks.py): the OS disk grows past the image with osDisk.diskSizeGB (never
below it), data disks grow and never shrink, and no disk is made outside the instance's pool."""
import copy
import subprocess

import pytest
import yaml

from controller.core.errors import LabError, ModelError
from controller.model.scaleset import parse
from controller.ops import commands as ops
from controller.virt import cloudinit, disks
from controller.virt.storage import Backing
from tests.fakepool import scratch_pool
from tests.test_model import BASE

GIB = 1 << 30
OS_SIZE = "$.properties.virtualMachineProfile.storageProfile.osDisk.diskSizeGB"


def profile(disks: list[dict]):
    doc = copy.deepcopy(BASE)
    doc["properties"]["virtualMachineProfile"]["storageProfile"]["dataDisks"] = disks
    return parse(doc).properties.virtualMachineProfile


@pytest.fixture
def pool():
    yield from scratch_pool()


def test_the_os_disk_is_the_image_size_or_the_bigger_disk_size_gb(pool):
    base = Backing("/gallery/image.qcow2", 2 * GIB)
    made = [disks.create_os_disk(pool, disks.path_in(pool, f"{d}.qcow2"), base, size) for d, size in
            (("a", None), ("b", 2), ("c", 5))]
    assert [v.capacity for v in made] == [2 * GIB, 2 * GIB, 5 * GIB]
    assert {(v.backing(), v.backing_format(), v.format) for v in made} == {("/gallery/image.qcow2", "qcow2", "qcow2")}
    with pytest.raises(ModelError) as err:
        disks.create_os_disk(pool, disks.path_in(pool, "d.qcow2"), base, 1)
    assert err.value.field == OS_SIZE and "smaller than the image (2 GB)" in err.value.reason
    assert [v.name for v in pool.volumes()] == ["a.qcow2", "b.qcow2", "c.qcow2"]


def test_no_disk_is_made_outside_the_pool(pool, tmp_path):
    base = Backing("/gallery/image.qcow2", GIB)
    for path in (str(tmp_path / "os.qcow2"), "/elsewhere/os.qcow2", "", pool.path + "/sub/os.qcow2"):
        with pytest.raises(LabError, match=f"not a volume path of pool {pool.name}"):
            disks.create_os_disk(pool, path, base)
        with pytest.raises(LabError, match="not a volume path"):
            disks.write_seed(pool, path, b"seed")
        assert not disks.exists(pool, path)
        disks.delete(pool, path)  # a path outside the pool is never touched
    assert pool.volumes() == [] and list(tmp_path.iterdir()) == []


def test_delete_and_purge_remove_only_the_domains_own_volumes(pool):
    for name in ("web_1-os-0000000a.qcow2", "web_1-seed-00000000000b.iso", "web_1-lun0.qcow2",
                 "web_10-lun0.qcow2", "web_1-other.qcow2", "image.qcow2"):
        pool.create_blank(name, 1)
    disks.delete(pool, disks.path_in(pool, "web_1-os-0000000a.qcow2"), disks.path_in(pool, "gone.qcow2"))
    assert disks.purge(pool, "web_1") == ["web_1-lun0.qcow2", "web_1-seed-00000000000b.iso"]
    assert [v.name for v in pool.volumes()] == ["image.qcow2", "web_1-other.qcow2", "web_10-lun0.qcow2"]
    assert [disks.domain_of(v.name) for v in pool.volumes()] == [None, None, "web_10"]


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


def data(disks_: list[dict]):
    return profile(disks_).storageProfile.dataDisks


def test_data_disks_grow_to_the_profile_and_never_shrink(pool):
    disks.ensure_data_disks(pool, "vm0", data([{"lun": 0, "diskSizeGB": 1}, {"lun": 1, "diskSizeGB": 2}]))
    disks.grow_data_disks(pool, "vm0", data([{"lun": 0, "diskSizeGB": 3}, {"lun": 1, "diskSizeGB": 1},
                                             {"lun": 2, "diskSizeGB": 1}]))
    assert [(v.name, v.capacity, v.format) for v in pool.volumes()] == [
        ("vm0-lun0.qcow2", 3 * GIB, "qcow2"), ("vm0-lun1.qcow2", 2 * GIB, "qcow2")]  # lun1 never smaller
    # lun2 is made by ensure_data_disks, not here; the paths the domain names are the volumes'
    assert disks.data_disk_paths(pool, "vm0", data([{"lun": 0, "diskSizeGB": 1}])) == {
        0: pool.volume("vm0-lun0.qcow2").path}


def test_the_seed_grows_the_root_only_when_the_model_sizes_the_os_disk():
    def user_data(grow: bool) -> dict:
        spec = cloudinit.SeedSpec("i-1", "web000000", "azureuser", ["ssh-ed25519 AAAA k"], "52:54:00:00:00:01",
                                  grow_root=grow)
        return yaml.safe_load(cloudinit.render(spec)["user-data"])
    assert user_data(True)["bootcmd"] == [["python3", "-c", cloudinit.GROW_ROOT]]
    assert "bootcmd" not in user_data(False)
    compile(cloudinit.GROW_ROOT, "grow-root", "exec")
