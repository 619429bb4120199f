"""VM tier, end to end: `scaleset controller` rolls out v2 by itself in batches of one, then a
v3 whose application never becomes healthy is rolled back in the first batch."""
import json
import os
import time
from pathlib import Path

import pytest

from controller.ops import commands as ops
from controller.ops.lab import Lab
from controller.ops.upgrade_plan import UPGRADED
from controller.ops.upgrade_views import history_item, latest_view
from controller.state.upgrades import UpgradeStore
from images.builder import build
from tests.fakepool import disks_of
from tests.vmfixtures import O, P, S, app_model, controller_process

pytestmark = [
    pytest.mark.vm,
    pytest.mark.timeout(2400),  # three guests booted, two rollouts: long under TCG
    pytest.mark.skipif(os.geteuid() != 0, reason="image builds need root (mmdebstrap, chroot)"),
]
NAME = "rolling"
COUNT = 3  # batches of one at 20 %: the same three batches the demo has, for two guests fewer to boot


def marker(i: int) -> str:
    return f"scaleset-lab marker of instance {i}"


@pytest.fixture(scope="module")
def lab(vm_lab, v1, tmp_path_factory):
    lab = Lab.open()
    # healthWaitTimeout 3 min: a boot takes about 35 s under TCG, but a loaded CI machine once needed more than 2 min
    ops.create(lab, app_model(NAME, COUNT, "roll", "latest",
                              {"mode": "Automatic", "automaticOSUpgradePolicy": {"enableAutomaticOSUpgrade": True}},
                              {"healthWaitTimeout": "PT3M", "autoUpgradeDelay": "PT5S"}))
    try:
        with controller_process(tmp_path_factory.mktemp("controller") / "controller.log", lab.paths):
            yield lab
    finally:
        ops.delete(lab, NAME)
        lab.close()


def wait_upgrade(lab, version, timeout):
    store = UpgradeStore(lab.db)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        up = store.latest(NAME)
        if up and up.target["version"] == version and up.status != "RollingForward":
            return up
        time.sleep(2)
    raise AssertionError(f"no finished upgrade to {version} in {timeout} s: {store.latest(NAME)}")


def sh(lab, i, script):
    res = ops.run_command(lab, NAME, str(i), script)
    assert res.exit_status == 0, res.stderr
    return res.stdout


def test_automatic_upgrade_to_v2_in_batches_of_one(lab, gallery, tmp_path):
    insts = lab.instances.list(NAME)
    assert [i.provisioning_state for i in insts] == ["Succeeded"] * COUNT, [i.error for i in insts]
    for i in range(COUNT):
        sh(lab, i, f"printf '{marker(i)}' | dd of=/dev/disk/by-id/virtio-lun-0 conv=fsync status=none")
    script = tmp_path / "v2.sh"
    script.write_text("echo 'version 2' > /etc/scaleset-demo\n")
    build(gallery, P, O, S, "2.0.0", customize=[script], log=lambda _m: None)  # the controller is watching

    up = wait_upgrade(lab, "2.0.0", timeout=1200)
    view = latest_view(lab, up)
    print("\nv2 upgrade:", json.dumps(view["lab"]["overhead"]), json.dumps(view["lab"]["batches"]))
    assert up.status == "Completed" and up.started_by == "Platform", view
    assert [b["instances"] for b in up.batch_times] == [[i] for i in range(COUNT)]
    for inst in lab.instances.list(NAME):
        assert inst.stamp["version"] == "2.0.0"
        out = sh(lab, inst.instance_id, f"head -c {len(marker(inst.instance_id))} /dev/disk/by-id/virtio-lun-0; "
                                        "echo; cat /etc/scaleset-demo")
        assert out.splitlines() == [marker(inst.instance_id), "version 2"]
        pool = lab.pool_of(inst)
        assert [n for n in disks_of(pool, inst.domain) if n.startswith("os-")] == [
            Path(inst.os_disk).name[len(inst.domain) + 1:]]


def test_unhealthy_v3_is_rolled_back_in_the_first_batch(lab, gallery, tmp_path):
    before = {i.instance_id: (i.os_disk, i.boot_id) for i in lab.instances.list(NAME)}
    script = tmp_path / "v3.sh"
    script.write_text("mkdir -p /var/lib/sample-app && touch /var/lib/sample-app/unhealthy\n")
    build(gallery, P, O, S, "3.0.0", customize=[script], log=lambda _m: None)

    up = wait_upgrade(lab, "3.0.0", timeout=900)
    item = history_item(lab, up)["properties"]
    print("\nv3 upgrade:", json.dumps(item))
    assert up.status == "Faulted" and up.error_code == UPGRADED
    assert item["rollbackInfo"]["successfullyRolledbackInstanceCount"] == 1
    assert item["progress"]["failedInstanceCount"] == 1 and item["progress"]["pendingInstanceCount"] == COUNT - 1
    after = {i.instance_id: i for i in lab.instances.list(NAME)}
    assert after[0].stamp["version"] == "2.0.0" and after[0].os_disk == before[0][0]
    assert after[0].boot_id != before[0][1]  # it booted its old disk again
    for i in range(1, COUNT):
        assert (after[i].os_disk, after[i].boot_id) == before[i]  # never touched
    assert sh(lab, 0, f"head -c {len(marker(0))} /dev/disk/by-id/virtio-lun-0") == marker(0)
    history = [h["properties"]["runningStatus"]["code"] for h in
               (history_item(lab, u) for u in UpgradeStore(lab.db).history(NAME))]
    assert history[:2] == ["Faulted", "Completed"]
