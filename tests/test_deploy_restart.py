"""kill -9 of `scaleset controller` while a deployment runs, then a restart: the deployment ends
Failed (OperationPreempted, naming what was deployed and what was cut off), never stays Running;
the scale set it was creating is taken up by its own operation and converges; what had not
started never starts. The controller is a process of its own (tests/killlab.py)."""
from __future__ import annotations

from controller.model.armid import DEFAULT_RESOURCE_GROUP as RG
from tests.killlab import until
from tests.test_api_deployments import GROUP, VMSS, body, scale_set, template
from tests.test_controller_restart import assert_converged, assert_no_leaks, k, swaps  # noqa: F401 (fixture)


def test_a_deployment_killed_midway_ends_failed_and_its_scale_set_converges(k):
    k.start()
    k.hold_steps()
    def url() -> str:  # the restarted controller listens on another port
        return k.url(f"resourcegroups/{RG}/providers/Microsoft.Resources/deployments/kd")
    tmpl = template(scale_set("web", capacity=1), scale_set("late", dependsOn=[f"{GROUP}/{VMSS}/web"]))
    r = k.call("PUT", url(), body(tmpl), **{"api-version": "2024-11-01"})
    assert r.status_code == 201, r.text
    status = r.headers["Azure-AsyncOperation"]
    until(lambda: swaps(k, "swapped", "create") == 1, why="the guest in its boot wait")
    assert k.poll(status).json()["status"] == "Running"
    k.kill()
    k.release()
    k.start()

    def ended():
        doc = k.poll(status).json()
        return doc if doc["status"] not in ("Accepted", "Running") else None
    done = until(ended, 60, "the deployment ended")
    assert done["status"] == "Failed" and done["error"]["code"] == "OperationPreempted", done
    assert "cut off: web" in done["error"]["message"]
    assert [d["target"] for d in done["error"]["details"]] == [f"{GROUP}/{VMSS}/web"]
    rec = k.call("GET", url(), **{"api-version": "2024-11-01"}).json()
    assert rec["properties"]["provisioningState"] == "Failed"
    ops = k.call("GET", url() + "/operations", **{"api-version": "2024-11-01"}).json()["value"]
    assert [(o["properties"]["targetResource"]["resourceName"], o["properties"]["provisioningState"])
            for o in ops] == [("web", "Failed")]
    until(lambda: k.db("SELECT status FROM operations WHERE resource LIKE '%/web'") == [("Succeeded",)],
          60, "the scale set's own operation resumed and ended")
    assert_converged(k, "web", capacity=1)
    assert k.db("SELECT COUNT(*) FROM scale_sets WHERE name='late'") == [(0,)]
    assert_no_leaks(k)
    assert "deployment kd" in k.log()
