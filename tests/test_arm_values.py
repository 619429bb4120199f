"""Values as ARM reads them (issue 28): numbers and booleans given as strings, 2017-12-01's
upgrade-policy shape, Azure's percent ranges (0 for maxUnhealthyUpgradedInstancePercent, honoured
by the orchestrator), and osProfile.adminPassword: Azure's rules, its hash in the guest's seed,
never returned, logged or stored in clear."""
from __future__ import annotations

import asyncio
import copy
import io
import json
import logging

import pycdlib
import pytest
import yaml
from passlib.hash import sha512_crypt

from controller.core.errors import ModelError
from controller.model.jsonmap import from_json
from controller.model.scaleset import RollingUpgradePolicy, parse
from controller.ops import upgrade_plan as plan
from controller.ops.rolling import Orchestrator, start_upgrade
from controller.state.upgrades import UpgradeStore
from controller.virt import vm
from controller.web import snapshot
from tests.fakedriver import FakeDriver, make_scale_set
from tests.test_api_sdk import sdk_model
from tests.test_api_writes import call, settled
from tests.test_bad_inputs import home, run, template  # noqa: F401 (fixtures)
from tests.test_model import BASE
from tests.test_rolling import model, publish, versions

PASSWORD = "Seed-Templ4te-pw"  # what a template's securestring parameter would hand over
OSP = "$.properties.virtualMachineProfile.osProfile"
UP = "properties.upgradePolicy"


def base(capacity=0, **osp) -> dict:
    doc = copy.deepcopy(BASE)
    doc["sku"]["capacity"] = capacity
    doc["properties"]["virtualMachineProfile"]["osProfile"].update(osp)
    return doc


# -- 1. numbers and booleans as strings ---------------------------------------------------------
@pytest.mark.parametrize("cls, given, read", [
    (int, "1023", 1023), (int, "0", 0), (int, " -5 ", -5), (int, "+7", 7), (int, 12, 12),
    (bool, "true", True), (bool, "False", False), (bool, "TRUE", True), (bool, False, False),
])
def test_strings_holding_numbers_and_booleans_are_read_as_arm_reads_them(cls, given, read):
    value = from_json(cls, given, "$.x")
    assert value == read and type(value) is cls


@pytest.mark.parametrize("cls, given", [
    (int, "five"), (int, "1.5"), (int, "1e3"), (int, ""), (int, "٣"), (int, "0x10"), (int, True), (int, 1.5),
    (bool, "yes"), (bool, "1"), (bool, 1), (bool, ""), (bool, "truee"),
])
def test_other_strings_stay_refused_naming_the_field(cls, given):
    with pytest.raises(ModelError) as err:
        from_json(cls, given, "$.sku.capacity")
    assert err.value.field == "$.sku.capacity"


SEED_STRINGS = {  # as the seed's template writes them
    "sku": {"capacity": "0"},
    "properties": {"upgradePolicy": {
        "mode": "Rolling",
        "rollingUpgradePolicy": {"maxBatchInstancePercent": "20", "maxUnhealthyInstancePercent": 20,
                                 "maxUnhealthyUpgradedInstancePercent": "0", "pauseTimeBetweenBatches": "PT0S",
                                 "prioritizeUnhealthyInstances": "False"},
        "automaticOSUpgradePolicy": {"enableAutomaticOSUpgrade": "true"}},
        "singlePlacementGroup": "false", "overprovision": "true"}}


def seed_strings_doc() -> dict:
    doc = base()
    doc["sku"] = dict(SEED_STRINGS["sku"])
    doc["properties"].update(copy.deepcopy(SEED_STRINGS["properties"]))
    doc["properties"]["virtualMachineProfile"]["storageProfile"]["dataDisks"] = [
        {"diskSizeGB": "1023", "lun": 0, "createOption": "Empty"}]
    return doc


def test_a_direct_put_with_strings_stores_and_returns_typed_values(api):
    r = call(api, "PUT", body=seed_strings_doc())
    assert r.status_code == 201, r.text
    assert settled(api, r)["status"] == "Succeeded"
    got = call(api, "GET").json()
    rp = got["properties"]["upgradePolicy"]["rollingUpgradePolicy"]
    assert (got["sku"]["capacity"], rp["maxBatchInstancePercent"], rp["maxUnhealthyUpgradedInstancePercent"]) == \
        (0, 20, 0)
    assert rp["prioritizeUnhealthyInstances"] is False
    assert got["properties"]["upgradePolicy"]["automaticOSUpgradePolicy"]["enableAutomaticOSUpgrade"] is True
    assert got["properties"]["virtualMachineProfile"]["storageProfile"]["dataDisks"][0]["diskSizeGB"] == 1023
    patch = {"properties": {"upgradePolicy": {"rollingUpgradePolicy": {"maxBatchInstancePercent": "10"}}}}
    r = call(api, "PATCH", body=patch)
    assert r.status_code == 200, r.text
    stored = api.lab.models.get("web").properties.upgradePolicy.rollingUpgradePolicy
    assert stored.maxBatchInstancePercent == 10 and stored.maxUnhealthyUpgradedInstancePercent == 0
    sdk = api.client().virtual_machine_scale_sets.get("scaleset-lab", "web")  # Azure's SDK reads it typed
    assert sdk.sku.capacity == 0 and sdk.properties.upgrade_policy.rolling_upgrade_policy.max_batch_instance_percent == 10
    for text in ('"five"', '"1.5"'):
        r = call(api, "PATCH", data='{"sku": {"capacity": %s}}' % text)
        assert r.status_code == 400 and r.json()["error"]["target"] == "$.sku.capacity"


def test_a_model_file_with_strings_through_the_cli(home, capsys, tmp_path):  # noqa: F811
    doc = seed_strings_doc()
    doc["name"] = "strings"
    for azure_only in ("overprovision", "singlePlacementGroup"):  # the API's alone to set aside
        doc["properties"].pop(azure_only)
    f = tmp_path / "in" / "strings.json"
    f.write_text(json.dumps(doc))
    rc, text = run(capsys, ["create", "--model", str(f)])
    assert rc == 0, text
    rc, text = run(capsys, ["show", "-n", "strings", "-o", "json"])
    shown = json.loads(text)
    assert rc == 0 and shown["sku"]["capacity"] == 0
    assert shown["properties"]["upgradePolicy"]["rollingUpgradePolicy"]["maxUnhealthyUpgradedInstancePercent"] == 0
    assert shown["properties"]["virtualMachineProfile"]["storageProfile"]["dataDisks"][0]["diskSizeGB"] == 1023


# -- 2. 2017-12-01's shape ----------------------------------------------------------------------
def test_the_2017_upgrade_policy_shape_is_read_as_todays(api):
    doc = base()
    doc["properties"]["upgradePolicy"] = {"mode": "Rolling", "automaticOSUpgrade": "true",
                                          "autoOSUpgradePolicy": {"disableAutoRollback": "true"}}
    r = call(api, "PUT", body=doc)
    assert r.status_code == 201, r.text
    up = call(api, "GET").json()["properties"]["upgradePolicy"]
    assert "automaticOSUpgrade" not in up and "autoOSUpgradePolicy" not in up
    assert up["automaticOSUpgradePolicy"]["enableAutomaticOSUpgrade"] is True
    assert up["automaticOSUpgradePolicy"]["disableAutomaticRollback"] is True
    r = call(api, "PATCH", body={"properties": {"upgradePolicy": {"automaticOSUpgrade": False}}})
    assert r.status_code == 200, r.text  # a PATCH of the old field changes today's
    assert api.lab.models.get("web").properties.upgradePolicy.automaticOSUpgradePolicy.enableAutomaticOSUpgrade is False
    r = call(api, "PATCH", body={"properties": {"upgradePolicy": {"automaticOSUpgrade": "sometimes"}}})
    assert r.status_code == 400 and r.json()["error"]["target"] == "$.properties.upgradePolicy.automaticOSUpgrade"


# -- 3. Azure's ranges, and 0 in the orchestrator -----------------------------------------------
def test_percent_ranges_are_azures():
    for name, lo in (("maxBatchInstancePercent", 5), ("maxUnhealthyInstancePercent", 5),
                     ("maxUnhealthyUpgradedInstancePercent", 0)):
        ok = base()
        rp = ok["properties"]["upgradePolicy"]["rollingUpgradePolicy"] = {"maxBatchInstancePercent": 5,
                                                                           "maxUnhealthyInstancePercent": 100}
        rp[name] = lo
        assert getattr(parse(ok).properties.upgradePolicy.rollingUpgradePolicy, name) == lo
        rp[name] = lo - 1
        with pytest.raises(ModelError) as err:
            parse(ok)
        assert err.value.field.endswith(f"rollingUpgradePolicy.{name}")
    policy = RollingUpgradePolicy(maxUnhealthyUpgradedInstancePercent=0)
    assert plan.upgraded_breach(0, 4, policy) is None and plan.upgraded_breach(1, 100, policy)[0] == plan.UPGRADED


class FifthBad(FakeDriver):
    """Instance 4 never becomes healthy on the new version; the others do."""

    def state_of(self, inst):
        state = super().state_of(inst)
        return "Unhealthy" if state == "Healthy" and inst.instance_id == 4 and inst.image["version"] != "1.0.0" \
            else state


@pytest.mark.parametrize("threshold, status", [("0", "Faulted"), (20, "Completed")])
def test_zero_unhealthy_upgraded_percent_stops_at_the_first_failed_instance(flab, qcow2_file, threshold, status):
    d = FifthBad()  # 10 instances in batches of 2: instance 4 is 1 of 6 upgraded (16 %) after batch 3
    make_scale_set(flab, model(10, maxBatchInstancePercent=20, maxUnhealthyUpgradedInstancePercent=threshold), d,
                   "1.0.0")
    publish(flab, "2.0.0", qcow2_file)
    up = start_upgrade(flab, flab.models.get("web"), "Platform")
    asyncio.run(Orchestrator(flab, d, poll_interval=0).run(up))
    up = UpgradeStore(flab.db).get(up.id)
    assert up.status == status
    if status == "Faulted":
        assert up.error_code == plan.UPGRADED and up.batches_done == 3
        assert versions(flab)[6:] == ["1.0.0"] * 4  # nothing after the batch that breached
    else:
        assert versions(flab).count("2.0.0") == 9


# -- 4. adminPassword ---------------------------------------------------------------------------
def _no_password_anywhere(text: str) -> None:
    assert PASSWORD not in text and "adminPassword" not in text and "$6$" not in text, text[:400]


def test_a_password_is_kept_as_a_salted_sha512_crypt_hash_only():
    ss = parse(base(adminPassword=PASSWORD))  # no linuxConfiguration, as in the seed's template
    osp = ss.properties.virtualMachineProfile.osProfile
    assert osp.adminPassword is None and osp.linuxConfiguration.disablePasswordAuthentication is False
    assert osp.adminPasswordHash.startswith("$6$") and sha512_crypt.verify(PASSWORD, osp.adminPasswordHash)
    stored = json.dumps(ss.to_json())
    assert PASSWORD not in stored
    again = parse({**json.loads(stored)})  # the stored model reads back with the same hash
    assert again.properties.virtualMachineProfile.osProfile.adminPasswordHash == osp.adminPasswordHash
    resent = json.loads(stored)
    resent["properties"]["virtualMachineProfile"]["osProfile"]["adminPassword"] = PASSWORD
    assert parse(resent).to_json() == ss.to_json()  # the same password again: the same model
    other = parse(base(adminPassword=PASSWORD)).properties.virtualMachineProfile.osProfile.adminPasswordHash
    assert other != osp.adminPasswordHash  # salted
    off = json.loads(stored)
    off["properties"]["virtualMachineProfile"]["osProfile"]["linuxConfiguration"]["disablePasswordAuthentication"] = \
        "true"
    assert parse(off).properties.virtualMachineProfile.osProfile.adminPasswordHash is None


@pytest.mark.parametrize("given, disabled, says", [
    ("Short1!", None, None), ("abc!1", None, "between 6-72"), ("alllowercase", None, "3 of password complexity"),
    ("Aa1!" * 18 + "x", None, "between 6-72"), ("Password1", None, "too common"),
    (PASSWORD, True, "disablePasswordAuthentication is true"),
])
def test_passwords_follow_azures_rules_and_are_never_echoed(given, disabled, says):
    doc = base(adminPassword=given)
    if disabled is not None:
        doc["properties"]["virtualMachineProfile"]["osProfile"]["linuxConfiguration"] = {
            "disablePasswordAuthentication": disabled}
    if says is None:
        parse(doc)
        return
    with pytest.raises(ModelError) as err:
        parse(doc)
    assert err.value.field == f"{OSP}.adminPassword" and says in err.value.reason
    assert given not in str(err.value) and given not in json.dumps(err.value.to_json())


def test_passwords_off_without_a_password_is_refused_naming_it():
    doc = base(linuxConfiguration={"disablePasswordAuthentication": False})
    with pytest.raises(ModelError) as err:
        parse(doc)
    assert err.value.field == f"{OSP}.adminPassword" and "required" in err.value.reason


def _user_data(iso_bytes: bytes) -> dict:
    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(iso_bytes))
    try:
        buf = io.BytesIO()
        iso.get_file_from_iso_fp(buf, rr_path="/user-data")
    finally:
        iso.close()
    return yaml.safe_load(buf.getvalue().decode())


def test_the_seed_sets_the_password_for_the_admin_user_as_a_hash(flab):
    insts = make_scale_set(flab, base(1, adminPassword=PASSWORD, adminUsername="ops"), FakeDriver(), "1.0.0")
    data = vm.instance_seed(flab.paths, insts[0], "ci-1")
    assert PASSWORD.encode() not in data
    ud = _user_data(data)
    user = ud["users"][0]
    assert user["name"] == "ops" and user["lock_passwd"] is False and ud["ssh_pwauth"] is True
    assert sha512_crypt.verify(PASSWORD, user["hashed_passwd"])
    sshd = [f for f in ud["write_files"] if f["path"].startswith("/etc/ssh/sshd_config.d/")]
    assert [f["content"] for f in sshd] == ["PasswordAuthentication yes\n"] and sshd[0]["path"] < \
        "/etc/ssh/sshd_config.d/50-scaleset-lab.conf"  # read before the image's "no"
    plain = make_scale_set(flab, {**base(1), "name": "plain"}, FakeDriver(), "1.0.0")
    ud = _user_data(vm.instance_seed(flab.paths, plain[0], "ci-2"))
    assert ud["users"][0]["lock_passwd"] is True and ud["ssh_pwauth"] is False and "hashed_passwd" not in ud["users"][0]
    assert "write_files" not in ud


def test_a_password_through_the_api_is_never_returned_logged_or_stored_in_clear(api, caplog):
    caplog.set_level(logging.DEBUG)
    body = sdk_model()
    body.virtual_machine_profile.os_profile.admin_password = PASSWORD
    client = api.client()
    client.virtual_machine_scale_sets.begin_create_or_update("scaleset-lab", "web", body).result()
    hash_ = api.lab.models.get("web").properties.virtualMachineProfile.osProfile.adminPasswordHash
    assert sha512_crypt.verify(PASSWORD, hash_)
    make_scale_set(api.lab, {**base(2, adminPassword=PASSWORD), "name": "more"}, api.controller.driver, "1.0.0")
    answers = [call(api, "GET", p) for p in (
        "virtualMachineScaleSets/web", "virtualMachineScaleSets", "virtualMachineScaleSets/more",
        "virtualMachineScaleSets/more/virtualMachines", "virtualMachineScaleSets/more/virtualMachines/0",
        "virtualMachineScaleSets/more/virtualMachines/0/instanceView", "virtualMachineScaleSets/more/instanceView")]
    assert [r.status_code for r in answers] == [200] * len(answers)
    for r in answers:
        _no_password_anywhere(r.text)
    _no_password_anywhere(json.dumps([snapshot.set_view(api.lab, "more", lambda _lab, ds: {}),
                                      snapshot.lab_view(api.lab)], default=str))
    # Azure's clients send no password back: a GET's body PUT again keeps the hash
    got = call(api, "GET").json()
    r = call(api, "PUT", body=got)
    assert r.status_code == 200, r.text
    assert api.lab.models.get("web").properties.virtualMachineProfile.osProfile.adminPasswordHash == hash_
    # a redeploy with the same password changes nothing; a bad one is refused without its value
    r = call(api, "PUT", body={**got, "properties": {**got["properties"], "virtualMachineProfile": {
        **got["properties"]["virtualMachineProfile"],
        "osProfile": {**got["properties"]["virtualMachineProfile"]["osProfile"], "adminPassword": PASSWORD}}}})
    assert r.status_code == 200 and api.lab.models.get("web").properties.virtualMachineProfile.osProfile \
        .adminPasswordHash == hash_
    bad = "weakpassword"
    r = call(api, "PATCH", body={"properties": {"virtualMachineProfile": {"osProfile": {"adminPassword": bad}}}})
    assert r.status_code == 400 and r.json()["error"]["target"] == f"{OSP}.adminPassword" and bad not in r.text
    texts = [*api.messages, caplog.text]
    for text in texts:
        assert PASSWORD not in text and bad not in text
    for f in api.lab.paths.home.rglob("*"):  # the state database (and its WAL), logs, keys: never in clear
        if f.is_file():
            data = f.read_bytes()
            assert PASSWORD.encode() not in data and bad.encode() not in data, f


def test_the_cli_view_and_rehearsal_reports_blank_the_hash():
    from controller.ops.views import show
    from controller.rehearse.scrub import scrub
    ss = parse(base(adminPassword=PASSWORD))
    for doc in (show(ss, []), scrub(ss.to_json())):
        osp = doc["properties"]["virtualMachineProfile"]["osProfile"]
        assert osp["adminPasswordHash"] == "<redacted>" and "$6$" not in json.dumps(doc)
