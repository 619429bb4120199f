"""VM tier: extensions in dependency order, and the expired-credential story of the documents:
a payload URL's token expires, a new version's first batch fails its extension and the upgrade
stops; a new token in the model and `update-instances '*'` repair every instance. Then an
extension's settings change applied in place: no new OS disk, no reboot."""
import asyncio
import hashlib
import json
import os
import secrets
import threading
import time

import pytest

from controller.cli.main import main as cli
from controller.ops import commands as ops
from controller.ops import fileserver, views
from controller.ops.lab import Lab
from controller.ops.rolling import Orchestrator, start_upgrade
from controller.ops.rolling_driver import LibvirtDriver
from controller.ops.upgrade_plan import UPGRADED
from controller.virt import guestext
from tests.vmfixtures import O, P

pytestmark = [
    pytest.mark.vm,
    pytest.mark.skipif(os.geteuid() != 0, reason="image builds need root (mmdebstrap, chroot)"),
]
NAME, SKU = "story", "debian-12-story"
CS = {"publisher": "Microsoft.Azure.Extensions", "type": "CustomScript"}


def stamp_ext(name, after=()):
    return {"name": name, "properties": {**CS, "provisionAfterExtensions": list(after), "settings": {
        "commandToExecute": f"sleep 0.2; date +%s.%N > /var/tmp/ext-{name}"}}}


@pytest.fixture(scope="module")
def clock():
    """The file server's clock: real time plus an offset the story moves forward."""
    offset = [0.0]
    return offset


@pytest.fixture(scope="module")
def served(vm_lab, clock):
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder = {}

    def run():
        asyncio.set_event_loop(loop)
        holder["runner"] = loop.run_until_complete(fileserver.serve(vm_lab, clock=lambda: time.time() + clock[0]))
        started.set()
        loop.run_forever()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    started.wait(10)
    (vm_lab.home / "files" / "payload.sh").write_text("echo payload ran > /var/tmp/payload-ran\n")
    yield vm_lab
    asyncio.run_coroutine_threadsafe(holder["runner"].cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)


@pytest.fixture(scope="module")
def lab(served, gallery, v1, clock):
    gallery.import_file(P, O, SKU, "1.0.0", v1.path)
    lab = Lab.open()
    token_url = fileserver.url(lab.paths, "payload.sh", 900)
    ops.create(lab, {
        "name": NAME, "sku": {"capacity": 2},
        "properties": {
            "upgradePolicy": {"mode": "Rolling", "rollingUpgradePolicy": {"maxBatchInstancePercent": 50,
                                                                         "maxUnhealthyInstancePercent": 50}},
            "labSettings": {"healthWaitTimeout": "PT4M"},
            "virtualMachineProfile": {
                "storageProfile": {"imageReference": {"publisher": P, "offer": O, "sku": SKU, "version": "latest"}},
                "osProfile": {"computerNamePrefix": "story"},
                "extensionProfile": {"extensions": [
                    stamp_ext("third", ["second"]), stamp_ext("second", ["first"]), stamp_ext("first"),
                    {"name": "payload", "properties": {**CS, "settings": {"commandToExecute": "sh payload.sh"},
                                                       "protectedSettings": {"fileUris": [token_url]}}}]},
            }}})
    try:
        yield lab
    finally:
        ops.delete(lab, NAME)
        lab.close()


def sh(lab, i, script):
    res = ops.run_command(lab, NAME, str(i), script)
    assert res.exit_status == 0, res.stderr
    return res.stdout


def test_extensions_run_in_dependency_order_with_statuses(lab):
    for inst in lab.instances.list(NAME):
        assert inst.provisioning_state == "Succeeded", inst.error
        first, second, third = map(float, sh(lab, inst.instance_id, "cat /var/tmp/ext-first /var/tmp/ext-second "
                                                                    "/var/tmp/ext-third").split())
        assert first < second < third
        view = views.instance_view(lab.models.get(NAME), inst, "running")
        codes = {e["name"]: e["statuses"][0]["code"] for e in view["extensions"]}
        assert codes == dict.fromkeys(["first", "second", "third", "payload"], "ProvisioningState/succeeded")
    assert sh(lab, 0, "cat /var/tmp/payload-ran").strip() == "payload ran"


def test_expired_token_fails_the_first_batch_and_update_instances_repairs(lab, gallery, v1, clock, capsys):
    clock[0] = 3600.0  # an hour later: the token in the model has expired
    gallery.import_file(P, O, SKU, "1.1.0", v1.path)
    up = start_upgrade(lab, lab.models.get(NAME), "User")
    asyncio.run(Orchestrator(lab, LibvirtDriver(lab)).run(up))
    assert (up.status, up.error_code) == ("Faulted", UPGRADED)
    failed, untouched = lab.instances.list(NAME)
    assert failed.provisioning_state == "Failed" and failed.image["version"] == "1.1.0"  # stays failed
    assert untouched.image["version"] == "1.0.0" and untouched.provisioning_state == "Succeeded"
    payload = {s["name"]: s for s in failed.extensions}["payload"]
    assert payload["provisioningState"] == "Failed" and "HTTP 403" in payload["message"]

    new_url = fileserver.url(lab.paths, "payload.sh", 900, now=time.time() + clock[0])
    secret_sig = new_url.split("sig=")[1]
    assert cli(["extension", "set", "--vmss-name", NAME, "--name", "CustomScript",
                "--publisher", CS["publisher"], "--extension-instance-name", "payload",
                "--settings", '{"commandToExecute": "sh payload.sh"}',
                "--protected-settings", json.dumps({"fileUris": [new_url]})]) == 0
    repaired = ops.update_instances(lab, NAME, ["*"])
    assert [(i.provisioning_state, i.image["version"]) for i in repaired] == [("Succeeded", "1.1.0")] * 2
    assert sh(lab, 0, "cat /var/tmp/payload-ran").strip() == "payload ran"

    assert cli(["show", "-n", NAME]) == 0 and cli(["get-instance-view", "-n", NAME, "--instance-id", "*"]) == 0
    printed = capsys.readouterr()
    logs = "".join(p.read_text(errors="replace") for p in (lab.paths.home / "logs").glob("*"))
    for text in (printed.out, printed.err, logs):
        assert secret_sig not in text and "sig=" not in text


def test_an_extension_change_is_applied_in_place_without_a_reboot(lab, capsys):
    secret = f"in-place-{secrets.token_hex(8)}"
    before = {i.instance_id: i for i in lab.instances.list(NAME)}
    first = {i: sh(lab, i, "cat /var/tmp/ext-first") for i in before}
    boot_ids = {i: sh(lab, i, "cat /proc/sys/kernel/random/boot_id").strip() for i in before}
    script = f"echo {secret} | sha256sum | cut -c1-16 > /var/tmp/in-place; echo in-place-ran"
    assert cli(["extension", "set", "--vmss-name", NAME, "--name", "CustomScript", "--publisher", CS["publisher"],
                "--extension-instance-name", "third", "--provision-after-extensions", "second",
                "--settings", '{"timestamp": 2}', "--protected-settings", json.dumps({"commandToExecute": script})]) == 0
    t0 = time.monotonic()
    assert cli(["update-instances", "-n", NAME, "--instance-ids", "*"]) == 0
    print(f"in-place update of {len(before)} instances: {time.monotonic() - t0:.1f} s")
    ss = lab.models.get(NAME)
    want = hashlib.sha256(f"{secret}\n".encode()).hexdigest()[:16]
    for inst in lab.instances.list(NAME):
        i = inst.instance_id
        assert inst.provisioning_state == "Succeeded", inst.error
        assert (inst.os_disk, inst.seed) == (before[i].os_disk, before[i].seed)  # no new OS disk
        assert inst.boot_id == boot_ids[i] == sh(lab, i, "cat /proc/sys/kernel/random/boot_id").strip()
        assert sh(lab, i, "cat /var/tmp/in-place").strip() == want  # the new settings ran
        assert sh(lab, i, "cat /var/tmp/ext-first") == first[i]  # an unchanged extension did not run again
        assert views.latest_model_applied(ss, inst)
        third = {e["name"]: e for e in views.instance_view(ss, inst, "running")["extensions"]}["third"]
        assert third["statuses"][0]["code"] == "ProvisioningState/succeeded"
        assert "in-place-ran" in third["statuses"][0]["message"]
    guest_files = sh(lab, 0, f"ls {guestext.UPDATE_CONFIG} 2>&1; cat {guestext.UPDATE_LOG}")
    assert "No such file" in guest_files and secret not in guest_files  # the update's config is gone
    assert cli(["show", "-n", NAME]) == 0 and cli(["get-instance-view", "-n", NAME, "--instance-id", "*"]) == 0
    printed = capsys.readouterr()
    logs = "".join(p.read_text(errors="replace") for p in (lab.paths.home / "logs").glob("*"))
    for text in (printed.out, printed.err, logs):
        assert secret not in text
