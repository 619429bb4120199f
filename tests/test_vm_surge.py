"""VM tier: a MaxSurge rollout of 3 real guests never has fewer than 3 healthy running instances
(seen every second from libvirt's domain list and the health agents), and ends with 3 new
instances on the new version."""
import asyncio
import json
import os

import pytest

from controller.ops import commands as ops
from controller.ops.lab import Lab
from controller.ops.rolling import Orchestrator, start_upgrade
from controller.ops.rolling_driver import LibvirtDriver
from controller.ops.upgrade_views import latest_view
from tests.capacity import CapacityWatch, wait_healthy
from tests.vmfixtures import app_model

pytestmark = [
    pytest.mark.vm,
    pytest.mark.timeout(1800),
    pytest.mark.skipif(os.geteuid() != 0, reason="image builds need root (mmdebstrap, chroot)"),
]
NAME = "surge"


def test_maxsurge_rollout_keeps_three_healthy_instances_at_every_second(vm_lab, v1, v2):
    lab = Lab.open()
    policy = {"mode": "Rolling", "rollingUpgradePolicy": {"maxSurge": True}}
    ops.create(lab, app_model(NAME, 3, "surge", "1.0.0", policy, {"healthWaitTimeout": "PT3M"}))
    watch = CapacityWatch(NAME)
    try:
        insts = lab.instances.list(NAME)
        assert [i.provisioning_state for i in insts] == ["Succeeded"] * 3, [i.error for i in insts]
        wait_healthy(lab, NAME)
        ops.update_model(lab, NAME, ["properties.virtualMachineProfile.storageProfile.imageReference.version=1.1.0"])
        watch.start()
        up = start_upgrade(lab, lab.models.get(NAME), "User")
        up = asyncio.run(Orchestrator(lab, LibvirtDriver(lab), on_event=print).run(up))
        watch.stop()
        view = latest_view(lab, up)
        print("\nMaxSurge:", json.dumps(view["lab"]["overhead"]), json.dumps(view["lab"]["batches"]))
        print(f"samples {len(watch.samples)}, fewest healthy {watch.low}, widest gap {watch.widest_gap:.1f} s")
        assert up.status == "Completed", view
        assert watch.errors == []
        assert len(watch.samples) >= 0.9 * view["lab"]["elapsedSeconds"]  # a sample every second, to the end
        assert watch.low >= 3, [s for s in watch.samples if len(s[1]) < 3]
        after = lab.instances.list(NAME)
        assert [i.instance_id for i in after] == [3, 4, 5]  # new instances, new ids
        assert [i.stamp["version"] for i in after] == ["1.1.0"] * 3
        running = {d.name for d in lab.hv.lab_domains(str(lab.paths.home)) if d.lab_tag().scale_set == NAME}
        assert running == {i.domain for i in after}  # the old domains are gone
    finally:
        try:
            watch.stop()
        finally:
            ops.delete(lab, NAME)
            lab.close()
