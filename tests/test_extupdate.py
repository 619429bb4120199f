"""Extension-only model changes in place: which path a change takes, update-instances and rolling
upgrades on it (no new OS disk, no reboot), a failed extension, a kill half-way, the in-guest runner."""
import asyncio
import copy
import json
import subprocess
import uuid

import pytest

from agent import runner
from controller.model import extensions as ext_mod
from controller.model.instance import applied_profile, profile_digest
from controller.model.modeldiff import classify
from controller.model.scaleset import parse
from controller.ops import commands as ops
from controller.ops import extupdate, provision, views
from controller.ops import upgrade_plan as plan
from controller.ops.lab import Lab
from controller.ops.rolling import Orchestrator, start_upgrade
from controller.ops.service import Controller
from controller.state.upgrades import UpgradeStore
from controller.virt import guestext, vm
from controller.virt.accel import Accel
from controller.virt.readiness import EXTRA_SEP, SEP, Readiness
from tests.fakedriver import FakeDriver, Killed, make_scale_set
from tests.fakepool import FakeDisks
from tests.test_extensions import guest  # noqa: F401 (a fixture: the runner's folders in tmp_path)
from tests.test_model import BASE

P, O, S = "scaleset-lab", "debian", "debian-12"
CS = {"publisher": "Microsoft.Azure.Extensions", "type": "CustomScript"}
HEALTH = {"publisher": "Microsoft.ManagedServices", "type": "ApplicationHealthLinux"}


def cs(name, command, after=(), protected=None):
    props = {**CS, "settings": {"commandToExecute": command}, "provisionAfterExtensions": list(after)}
    if protected:
        props["protectedSettings"] = protected
    return {"name": name, "properties": props}


def model_doc(exts, mode="Manual", capacity=2):
    d = copy.deepcopy(BASE)
    d["sku"]["capacity"] = capacity
    d["properties"]["upgradePolicy"] = {"mode": mode, "rollingUpgradePolicy": {"maxBatchInstancePercent": 50,
                                                                             "maxUnhealthyInstancePercent": 50}}
    d["properties"]["labSettings"] = {"healthWaitTimeout": "PT0S"}
    vmp = d["properties"]["virtualMachineProfile"]
    vmp["storageProfile"]["imageReference"]["version"] = "1.0.0"
    vmp.pop("networkProfile")
    vmp["extensionProfile"] = {"extensions": exts}
    return d


def profile(doc, version="1.0.0"):
    return applied_profile(parse(doc), version)


def changed(doc, path, value):
    d = copy.deepcopy(doc)
    node = d
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    return d


A, B, C = cs("a", "echo a"), cs("b", "echo b", ["a"]), cs("c", "echo c", ["b"])
OK = [{"name": n, "provisioningState": "Succeeded"} for n in "abc"]


# -- which path --------------------------------------------------------------------------------
def test_only_extension_changes_go_in_place_in_dependency_order():
    base = model_doc([C, B, A])
    new_a = changed(base, ["properties", "virtualMachineProfile", "extensionProfile", "extensions", 2, "properties",
                           "settings"], {"commandToExecute": "echo a2"})
    ch = classify(profile(base), profile(new_a), OK)
    assert ch.in_place and ch.run == ["a"] and ch.removed == []  # b, c: unchanged and succeeded, not re-run
    secret = changed(base, ["properties", "virtualMachineProfile", "extensionProfile", "extensions", 1, "properties",
                            "protectedSettings"], {"storageAccountKey": "s"})
    assert classify(profile(base), profile(secret), OK).run == ["b"]
    version = changed(base, ["properties", "virtualMachineProfile", "extensionProfile", "extensions", 0, "properties",
                             "typeHandlerVersion"], "2.1")
    assert classify(profile(base), profile(version), OK).run == ["c"]
    added = model_doc([C, B, A, cs("d", "echo d", ["c"]), cs("e", "echo e")])
    assert classify(profile(base), profile(added), OK).run == ["d", "e"]
    removed = model_doc([B, A])
    ch = classify(profile(base), profile(removed), OK)
    assert ch.in_place and ch.run == [] and ch.removed == [{"name": "c", "type": "CustomScript"}]


def test_an_extension_that_did_not_succeed_is_provisioned_again_after_its_prerequisite():
    base = model_doc([A, B, C])
    fixed = changed(base, ["properties", "virtualMachineProfile", "extensionProfile", "extensions", 0, "properties",
                           "settings"], {"commandToExecute": "echo fixed"})
    statuses = [{"name": "a", "provisioningState": "Failed"}, {"name": "b", "provisioningState": "Failed"},
                {"name": "c", "provisioningState": "Failed"}]
    assert classify(profile(base), profile(fixed), statuses).run == ["a", "b", "c"]


@pytest.mark.parametrize("what, path, value", [
    ("storageProfile", ["properties", "virtualMachineProfile", "storageProfile", "imageReference", "version"],
     "1.1.0"),
    ("osProfile", ["properties", "virtualMachineProfile", "osProfile", "customData"], "IyEvYmluL3NoCg=="),
    ("storageProfile", ["properties", "virtualMachineProfile", "storageProfile", "dataDisks"], []),
    ("networkProfile", ["properties", "virtualMachineProfile", "networkProfile"], {"healthProbe": {"port": 81}}),
    ("vcpus", ["properties", "labSettings", "vcpus"], 1),
    ("sku", ["sku", "name"], "Lab_Other"),
])
def test_anything_cloud_init_or_the_domain_sees_takes_a_new_os_disk(what, path, value):
    base = model_doc([A])
    other = changed(base, path, value)
    version = "1.1.0" if value == "1.1.0" else "1.0.0"
    ch = classify(profile(base), applied_profile(parse(other), version), OK)
    assert not ch.in_place and ch.reason.startswith(what)


def test_a_cloud_config_extension_takes_a_new_os_disk_and_identical_profiles_are_a_reimage():
    cc = {"name": "cc", "properties": {"publisher": "ScaleSetLab", "type": "CloudConfig",
                                       "settings": {"cloudConfig": "#cloud-config\nruncmd: [true]\n"}}}
    base = model_doc([A])
    ch = classify(profile(base), profile(model_doc([A, cc])), OK)
    assert not ch.in_place and "CloudConfig" in ch.reason
    assert not classify(profile(model_doc([A, cc])), profile(base), OK).in_place
    assert not classify(profile(base), profile(base), OK).in_place


# -- update-instances ----------------------------------------------------------------------------
@pytest.fixture
def tlab(lab, qcow2_file, monkeypatch):
    """A set of 2 on libvirt's test driver; the guest side is scripted: a boot gives a new boot
    id, an in-place run keeps it and records what ran."""
    t = Lab(lab, "test:///default", Accel("tcg", "test"))
    t.gallery.import_file(P, O, S, "1.0.0", qcow2_file)
    t.gallery.import_file(P, O, S, "1.1.0", qcow2_file)
    t.ran, t.fail, t.kill = [], set(), False

    def booted(lab_, inst, started, timeout=0):
        exts = vm.typed_profile(inst).extensionProfile.extensions
        return vm.Booted(Readiness("done", str(uuid.uuid4()), {"version": inst.image["version"]}, {}),
                         [{"name": e.name, "provisioningState": "Succeeded"} for e in exts])

    def in_guest(lab_, inst, change, timeout):
        if t.kill:
            raise Killed("extensions")
        t.ran.append((inst.instance_id, change.run, change.removed))
        exts = vm.typed_profile(inst).extensionProfile.extensions
        config = ext_mod.runner_config(exts, only=change.run, removed=change.removed)
        st = {s["name"]: s for s in inst.extensions if s["name"] not in {r["name"] for r in change.removed}}
        for e in config["extensions"]:
            st[e["name"]] = {"name": e["name"], "message": e["settings"]["commandToExecute"],
                             "provisioningState": "Failed" if e["name"] in t.fail else "Succeeded"}
        return vm.Booted(Readiness("done", inst.boot_id, inst.stamp, {}), list(st.values()))

    monkeypatch.setattr(provision, "wait_booted", booted)
    monkeypatch.setattr(extupdate, "run", in_guest)
    ops.create(t, model_doc([A, B]))
    yield t
    ops.delete(t, "web")
    t.close()


def set_command(lab, name, command, protected=None):
    props = {**CS, "settings": {"commandToExecute": command}}
    props["provisionAfterExtensions"] = ["a"] if name == "b" else []
    if protected:
        props["protectedSettings"] = protected
    return ops.set_extension(lab, "web", name, props)


def test_update_instances_applies_an_extension_change_in_place(tlab):
    before = {i.instance_id: i for i in tlab.instances.list("web")}
    ss = set_command(tlab, "b", "echo b2", protected={"storageAccountKey": "s3cret"})
    assert [views.latest_model_applied(ss, i) for i in before.values()] == [False, False]
    after = ops.update_instances(tlab, "web", ["*"])
    assert sorted(r[:2] for r in tlab.ran) == [(0, ["b"]), (1, ["b"])]  # only the changed one
    for inst in after:
        old = before[inst.instance_id]
        assert (inst.os_disk, inst.seed, inst.ci_instance_id, inst.boot_id) == \
            (old.os_disk, old.seed, old.ci_instance_id, old.boot_id)  # no new disk, no reboot
        assert FakeDisks.exists(inst.os_disk) and FakeDisks.exists(inst.seed)
        assert inst.provisioning_state == "Succeeded" and views.latest_model_applied(ss, inst)
        assert {s["name"]: s.get("message") for s in inst.extensions} == {"a": None, "b": "echo b2"}
    assert tlab.db.execute("SELECT COUNT(*) FROM disk_swaps WHERE phase!='done'").fetchone()[0] == 0
    reimaged = ops.reimage(tlab, "web", ["0"])[0]  # a reimage: a new seed from the (model's) profile
    assert reimaged.seed != before[0].seed and reimaged.profile == tlab.instances.get("web", 1).profile


def test_an_image_change_with_an_extension_change_still_swaps_the_os_disk(tlab):
    before = {i.instance_id: i.os_disk for i in tlab.instances.list("web")}
    set_command(tlab, "b", "echo b2")
    ops.update_model(tlab, "web", ["properties.virtualMachineProfile.storageProfile.imageReference.version=1.1.0"])
    after = ops.update_instances(tlab, "web", ["0"])[0]
    assert tlab.ran == [] and after.os_disk != before[0] and not FakeDisks.exists(before[0])
    assert after.image["version"] == "1.1.0" and after.provisioning_state == "Succeeded"


def test_removed_extension_leaves_the_statuses_and_a_failed_one_fails_the_instance(tlab):
    ops.change_model(tlab, "web", lambda d: d["properties"]["virtualMachineProfile"]["extensionProfile"]
                     .update(extensions=[A]))
    tlab.fail = {"a"}
    set_command(tlab, "a", "exit 3")
    [inst] = ops.update_instances(tlab, "web", ["1"])
    assert tlab.ran == [(1, ["a"], [{"name": "b", "type": "CustomScript"}])]
    assert [s["name"] for s in inst.extensions] == ["a"]
    assert inst.provisioning_state == "Failed" and inst.error.startswith("extension a:")
    assert views.latest_model_applied(tlab.models.get("web"), inst)  # on the model, Failed as at first boot


def test_a_killed_in_place_update_is_finished_by_repair(tlab):
    set_command(tlab, "a", "echo a2")
    tlab.kill = True
    with pytest.raises(Killed):
        ops.update_instances(tlab, "web", ["0"])
    row = tlab.db.execute("SELECT * FROM disk_swaps WHERE phase='prepared'").fetchone()
    assert row["old_os_disk"] == row["new_os_disk"] and tlab.instances.get("web", 0).provisioning_state == "Updating"
    tlab.db.execute("UPDATE disk_swaps SET owner_pid='999999999:0'")  # the killed process is gone
    tlab.kill = False
    done = asyncio.run(provision.reconcile(tlab, tlab.models.get("web")))
    assert done == ["instance 0: unfinished upgrade completed"]
    inst = tlab.instances.get("web", 0)
    assert tlab.ran == [(0, ["a"], [])] and inst.provisioning_state == "Succeeded"
    assert views.latest_model_applied(tlab.models.get("web"), inst) and FakeDisks.exists(inst.os_disk)


# -- rolling upgrades ---------------------------------------------------------------------------
def rolling_set(flab, d, exts=(A, B), capacity=4):
    doc = model_doc(list(exts), mode="Rolling", capacity=capacity)
    make_scale_set(flab, doc, d, "1.0.0")


def roll(flab, d):
    up = start_upgrade(flab, flab.models.get("web"), "User")
    asyncio.run(Orchestrator(flab, d, poll_interval=0).run(up))
    return UpgradeStore(flab.db).get(up.id)


def test_a_rolling_upgrade_applies_an_extension_only_change_in_place(flab):
    d = FakeDriver()
    rolling_set(flab, d)
    before = {i.instance_id: i for i in flab.instances.list("web")}
    ss = set_command(flab, "a", "echo a2")
    up = roll(flab, d)
    assert up.status == "Completed" and up.batches_done == 2
    assert {s for s, _ in d.steps} == {"extensions", "health"}  # no write, switch or boot
    assert sorted(d.ran_in_place) == [(i, ["a"], []) for i in range(4)]
    digest = profile_digest(ss)
    for inst in flab.instances.list("web"):
        assert inst.profile_digest == digest and inst.os_disk == before[inst.instance_id].os_disk
        assert inst.boot_id == before[inst.instance_id].boot_id and inst.provisioning_state == "Succeeded"
    assert UpgradeStore(flab.db).instances(up)[0]["timings"].keys() == {"extensions", "health"}


def test_outside_mode_rolling_an_upgrade_is_the_image_alone(flab):
    d = FakeDriver()
    make_scale_set(flab, model_doc([A]), d, "1.0.0")
    set_command(flab, "a", "echo a2")
    assert roll(flab, d).status == "Completed" and d.steps == []
    assert plan.pending(flab.instances.list("web"), "1.0.0", {}, None) == []


def test_a_failed_extension_in_place_counts_as_a_failed_upgraded_instance(flab):
    d = FakeDriver(failing_extensions={"a"})
    rolling_set(flab, d)
    set_command(flab, "a", "exit 1")
    up = roll(flab, d)
    assert (up.status, up.error_code) == ("Faulted", plan.UPGRADED) and up.batches_done == 1
    insts = flab.instances.list("web")
    assert [i.provisioning_state for i in insts] == ["Failed", "Failed", "Succeeded", "Succeeded"]
    assert insts[0].error.startswith("extension a:") and "switch" not in {s for s, _ in d.steps}
    assert [r["state"] for r in UpgradeStore(flab.db).instances(up)] == ["Failed", "Failed"]  # nothing to roll back


@pytest.mark.parametrize("nth", [1, 2, 3])
def test_a_kill_during_an_in_place_batch_is_resumed(flab, nth):
    d = FakeDriver(kill_at="extensions", kill_nth=nth)
    rolling_set(flab, d)
    ss = set_command(flab, "b", "echo b2")
    up = start_upgrade(flab, ss, "User")
    with pytest.raises(Killed):
        asyncio.run(Orchestrator(flab, d, poll_interval=0).run(up))
    flab.db.execute("UPDATE rolling_upgrades SET owner='999999999:0'")
    flab.db.execute("UPDATE disk_swaps SET owner_pid='999999999:0'")
    d.kill_at = None
    asyncio.run(Controller(flab, d, say=lambda m: None).run(once=True))
    up = UpgradeStore(flab.db).get(up.id)
    assert up.status == "Completed"
    for inst in flab.instances.list("web"):
        assert inst.profile_digest == profile_digest(ss) and inst.provisioning_state == "Succeeded"
        assert d.attached(inst) == inst.os_disk and FakeDisks.exists(inst.os_disk)
    assert {i for i, _, _ in d.ran_in_place} == {0, 1, 2, 3}
    assert flab.db.execute("SELECT COUNT(*) FROM disk_swaps WHERE phase NOT IN ('done','aborted')").fetchone()[0] == 0


# -- the guest side ------------------------------------------------------------------------------
def statuses(base):
    return {p.stem: json.loads(p.read_text()) for p in (base / "status").glob("*.json")}


@pytest.mark.usefixtures("guest")
def test_the_runner_applies_an_update_file_removes_and_counts_prerequisites_by_status(tmp_path):
    base = runner.BASE  # the fixture's folders (tests/test_extensions.py)
    exts = parse(model_doc([cs("a", f"echo a >> {tmp_path}/log"), cs("b", f"echo b >> {tmp_path}/log", ["a"]),
                           cs("gone", "true")])).properties.virtualMachineProfile.extensionProfile.extensions
    (base / "config.json").write_text(json.dumps(ext_mod.runner_config(exts)))
    assert runner.main([]) == 0 and (base / "gone").is_dir()
    update = base / "update.json"
    update.write_text(json.dumps(ext_mod.runner_config(exts, only=["b"],
                                                       removed=[{"name": "gone", "type": "CustomScript"}])))
    assert runner.main([str(update)]) == 0
    assert (tmp_path / "log").read_text().split() == ["a", "b", "b"]  # b ran again after a, which succeeded before
    assert sorted(statuses(base)) == ["a", "b"] and not (base / "gone").exists() and not update.exists()
    (base / "status" / "a.json").write_text(json.dumps({"name": "a", "provisioningState": "Failed"}))
    update.write_text(json.dumps(ext_mod.runner_config(exts, only=["b"])))
    assert runner.main([str(update)]) == 1
    assert "prerequisite a did not succeed" in statuses(base)["b"]["message"]


def test_the_update_travels_on_stdin_and_reads_back_as_the_readiness_wait(monkeypatch):
    secret = "s3cret-in-place"
    config = {"timeoutSeconds": 60, "removed": [], "extensions": [
        {"name": "a", "publisher": CS["publisher"], "type": "CustomScript", "typeHandlerVersion": "1.0",
         "settings": {}, "protectedSettings": {"commandToExecute": secret}, "provisionAfterExtensions": []}]}
    script = guestext.update_script(config, agent=False).decode()
    assert secret not in script and "umask 077" in script and "/opt/scaleset-lab/agent" not in script
    assert "/opt/scaleset-lab/agent/server.py" in guestext.update_script(config, agent=True).decode()
    assert subprocess.run(["sh", "-n"], check=False, input=script.encode()).returncode == 0
    cut = script[: len(script) // 2]  # a connection lost half-way: sh refuses the whole group, runs nothing
    assert subprocess.run(["sh", "-n"], check=False, input=cut.encode(), capture_output=True).returncode != 0
    calls = []

    class Client:
        def wait(self, deadline):
            pass

        def run(self, command, timeout, stdin):
            calls.append((command, stdin))
            out = (f'{{"v1": {{"errors": []}}}}\n{SEP}\nboot-1\n{SEP}\n{{"version": "1.0.0"}}\n{EXTRA_SEP}\n'
                   '{"name": "a", "provisioningState": "Succeeded"}\n')
            return type("R", (), {"exit_status": 0, "stdout": out, "stderr": ""})()

        def close(self):
            pass

    monkeypatch.setattr(guestext, "ssh", lambda paths, inst, hv, route=None: Client())
    booted = guestext.update_extensions(None, None, None, config, False, 30)
    assert calls[0][0] == "sudo sh -s" and secret.encode() not in calls[0][0].encode()
    assert booted.readiness.boot_id == "boot-1" and booted.readiness.cloud_init_status == "done"
    assert booted.extensions == [{"name": "a", "provisioningState": "Succeeded"}]


@pytest.mark.usefixtures("guest")
def test_the_health_agent_restarts_on_new_settings_and_stops_when_its_extension_goes(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(runner, "systemctl", lambda *c: calls.extend(" ".join(a) for a in c))
    monkeypatch.setattr(runner, "HEALTH_SETTINGS", tmp_path / "health.json")
    monkeypatch.setattr(runner, "AGENT_UNIT", tmp_path / "scaleset-health-agent.service")
    health = {"name": "health", "properties": {**HEALTH, "settings": {"protocol": "tcp", "port": 8080}}}
    exts = parse(model_doc([health])).properties.virtualMachineProfile.extensionProfile.extensions
    update = runner.BASE / "update.json"
    update.write_text(json.dumps(ext_mod.runner_config(exts, only=["health"])))
    assert runner.main([str(update)]) == 0
    assert json.loads(runner.HEALTH_SETTINGS.read_text()) == {"protocol": "tcp", "port": 8080}
    assert calls[-1] == "restart scaleset-health-agent.service"  # a running agent reads its settings again
    update.write_text(json.dumps(ext_mod.runner_config([], removed=[{"name": "health",
                                                                     "type": "ApplicationHealthLinux"}])))
    assert runner.main([str(update)]) == 0
    assert "disable --now scaleset-health-agent.service" in calls
    assert not runner.HEALTH_SETTINGS.exists() and not runner.AGENT_UNIT.exists() and statuses(runner.BASE) == {}
