"""VM tier: the health agent in a guest, the sample app, and the controller's view of both."""
import os
import time

import pytest

from controller.ops import commands as ops
from controller.ops import views
from controller.ops.health import Monitor
from controller.ops.lab import Lab
from lab.samples import health_extension, sample_app_extension
from tests.vmfixtures import O, P, S

pytestmark = [
    pytest.mark.vm,
    pytest.mark.skipif(os.geteuid() != 0, reason="image builds need root (mmdebstrap, chroot)"),
]
NAME = "healthy"
INTERVAL, PROBES = 5, 1


@pytest.fixture(scope="module")
def lab(vm_lab, v1):
    lab = Lab.open()
    ops.create(lab, {
        "name": NAME, "sku": {"capacity": 1},
        "properties": {"virtualMachineProfile": {
            "storageProfile": {"imageReference": {"publisher": P, "offer": O, "sku": S, "version": v1.version}},
            "osProfile": {"computerNamePrefix": "app"},
            "extensionProfile": {"extensions": [
                sample_app_extension(), health_extension(interval=INTERVAL, probes=PROBES, after=["sample-app"])]},
        }}})
    try:
        yield lab
    finally:
        ops.delete(lab, NAME)
        lab.close()


def wait_for(lab, monitor, state, timeout=60.0, every=0.5):
    """Poll like the controller does; returns (seconds until `state`, reading)."""
    ss = lab.models.get(NAME)
    t0 = time.monotonic()
    while True:
        reading = ops.poll_health(lab, ss, monitor)[0]
        if reading.state == state:
            return time.monotonic() - t0, reading
        assert time.monotonic() - t0 < timeout, f"still {reading.state} ({reading.detail})"
        time.sleep(every)


def test_agent_reports_healthy_and_the_instance_view_shows_it(lab):
    inst = lab.instances.get(NAME, 0)
    assert inst.provisioning_state == "Succeeded", inst.error
    assert {e["name"]: e["provisioningState"] for e in inst.extensions} == {"health": "Succeeded",
                                                                            "sample-app": "Succeeded"}
    _, reading = wait_for(lab, Monitor(lab.models.get(NAME)), "Healthy", timeout=30)
    assert reading.source == "agent" and reading.since
    view = views.instance_view(lab.models.get(NAME), inst, "running",
                               {"status": {"code": f"HealthState/{reading.state.lower()}"}})
    assert view["vmHealth"]["status"]["code"] == "HealthState/healthy"


def test_unhealthy_app_is_seen_within_interval_times_probes_plus_a_poll(lab):
    monitor = Monitor(lab.models.get(NAME))
    wait_for(lab, monitor, "Healthy", timeout=30)
    t0 = time.monotonic()
    ops.run_command(lab, NAME, "0", "touch /var/lib/sample-app/unhealthy")
    flipped = time.monotonic() - t0
    seen, reading = wait_for(lab, monitor, "Unhealthy", timeout=60)
    latency = flipped + seen
    print(f"\ndetection latency (app flips -> controller sees Unhealthy): {latency:.1f} s "
          f"(interval {INTERVAL} s x probes {PROBES}, poll 0.5 s)")
    assert "Unhealthy" in reading.detail
    ops.run_command(lab, NAME, "0", "rm /var/lib/sample-app/unhealthy")
    back, _ = wait_for(lab, monitor, "Healthy", timeout=60)
    print(f"back to Healthy after {back:.1f} s")


def test_agent_survives_a_reboot_of_the_same_os_disk(lab):
    before = lab.instances.get(NAME, 0)
    [after] = ops.power(lab, NAME, ["0"], "restart")
    assert after.boot_id != before.boot_id and after.os_disk == before.os_disk
    wait_for(lab, Monitor(lab.models.get(NAME)), "Healthy", timeout=90)
