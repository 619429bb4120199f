"""VM tier: build real image versions and boot a real guest through libvirt (TCG here)."""
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from controller.core.errors import ImageError
from controller.core.settings import libvirt_uri
from controller.ops import commands as ops
from controller.ops.lab import Lab
from controller.ops.provision import (
    plan_instance,
    remove_instance,
    switch,
    wait_booted,
    write_disks,
)
from controller.virt import disks, vm
from images.builder import build
from images.inspect import read_file
from tests.fakepool import disks_of
from tests.vmfixtures import O, P, S

pytestmark = [
    pytest.mark.vm,
    pytest.mark.skipif(os.geteuid() != 0, reason="image builds need root (mmdebstrap, chroot)"),
]


@pytest.fixture(scope="module")
def booted(vm_lab, v1):
    """One instance booted the way every instance boots (disks, seed, domain, wait chain)."""
    lab = Lab(vm_lab, libvirt_uri())
    ss = ops.create(lab, {"name": "imgboot", "sku": {"capacity": 0}, "properties": {"virtualMachineProfile": {
        "storageProfile": {"imageReference": {"publisher": P, "offer": O, "sku": S, "version": v1.version}},
        "osProfile": {"computerNamePrefix": "boot"}}}})
    inst = plan_instance(lab, ss, 0, lab.gallery.verify(v1))
    lab.instances.insert(inst)
    try:
        write_disks(lab, inst, v1)
        yield lab, inst, wait_booted(lab, inst, switch(lab, inst)).readiness
    finally:
        remove_instance(lab, inst)
        ops.delete(lab, ss.name)
        lab.close()


def test_guest_boots_the_built_version_and_reports_its_stamp(booted):
    _, _, ready = booted
    assert ready.cloud_init_status == "done"
    assert ready.stamp["publisher"] == P and ready.stamp["offer"] == O
    assert ready.stamp["sku"] == S and ready.stamp["version"] == "1.0.0"
    assert re.fullmatch(r"[0-9a-f-]{36}", ready.boot_id)
    print(f"\nboot timings (s): {json.dumps(ready.timings)}")


def test_guest_is_reached_through_a_loopback_only_forward_with_a_pinned_host_key(booted):
    lab, inst, _ = booted
    listen = Path("/proc/net/tcp").read_text().splitlines()[1:]
    port_hex = f"{inst.ssh_port:04X}"
    ours = [line.split()[1] for line in listen if line.split()[1].endswith(":" + port_hex) and line.split()[3] == "0A"]
    assert ours == [f"0100007F:{port_hex}"], ours  # 127.0.0.1 only, never 0.0.0.0
    pinned = vm.hostkeys(lab.paths, inst).pinned()
    assert pinned and pinned.startswith("ssh-ed25519 ")
    client = vm.ssh(lab.paths, inst)
    client.connect()
    try:
        out = client.run("ls /etc/ssh/ssh_host_*_key.pub; sudo -n true && echo sudo-ok")
    finally:
        client.close()
    assert out.stdout.split() == ["/etc/ssh/ssh_host_ed25519_key.pub", "sudo-ok"]


def test_os_disk_is_an_overlay_on_the_gallery_image(booted, v1):
    lab, inst, _ = booted
    pool = lab.pool_of(inst)  # the local host's dir pool: the same code path as any host's
    assert [n for n in disks_of(pool, inst.domain) if n.startswith("os-")] == [
        Path(inst.os_disk).name[len(inst.domain) + 1:]]  # one overlay, in the pool
    overlay = disks.volume(pool, inst.os_disk)
    assert (overlay.backing(), overlay.backing_format(), overlay.format) == (str(v1.path), "qcow2", "qcow2")
    assert disks.exists(pool, inst.seed) and pool.path == str(lab.paths.home / "pool")
    info = json.loads(subprocess.run(["qemu-img", "info", "-U", "--output=json", overlay.path],
                                     capture_output=True, text=True, check=True).stdout)
    assert info["backing-filename"] == str(v1.path) and info["backing-filename-format"] == "qcow2"
    assert info["actual-size"] < 200 * 1024 * 1024  # copy-on-write, not a copy of the image


def test_second_version_reuses_the_package_set_and_runs_customize(gallery, v1, v2):
    v2_image, log = v2
    assert any("package set: cached" in line for line in log), log
    assert read_file(v2_image.path, "/etc/scaleset-demo") == b"version two\n"
    stamp = json.loads(read_file(v2_image.path, "/etc/scaleset-lab/image.json"))
    assert stamp["version"] == "1.1.0"
    assert gallery.resolve(P, O, S, "latest").version == "1.1.0"
    v2 = v2_image
    print(f"\nbuild seconds: first {v1.build_seconds:.1f}, second {v2.build_seconds:.1f}")


def test_failing_customize_script_publishes_nothing(gallery, v1, tmp_path):
    script = tmp_path / "broken.sh"
    script.write_text("echo about to fail >&2\nexit 3\n")
    before = {p for p in gallery.paths.gallery.rglob("*")}
    with pytest.raises(ImageError) as err:
        build(gallery, P, O, S, "9.0.0", customize=[script], log=lambda _m: None)
    assert err.value.field == "customize[0]" and "exited 3" in err.value.reason
    assert "about to fail" in err.value.reason
    with pytest.raises(ImageError):
        gallery.get(P, O, S, "9.0.0")
    assert {p for p in gallery.paths.gallery.rglob("*")} == before
    assert not list(gallery.paths.cache.glob(".build-*"))
