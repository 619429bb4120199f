"""The README's "Deploy with a template" cannot rot: its Python block is run as written against
the lab (the SDK's ResourceManagementClient on the fake driver), deploying lab/arm/scaleset.json
(JSON with comments) as the file is; the scale set it makes has automatic OS upgrades, and a
password given to it is never echoed."""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import time
from pathlib import Path

import requests

from controller.model.armid import DEFAULT_RESOURCE_GROUP as RG
from controller.model.armid import SUBSCRIPTION_ID
from controller.template import jsonc
from tests.test_api_deployments import raw

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "lab" / "arm" / "scaleset.json"


def readme_block(section: str, lang: str) -> str:
    text = (ROOT / "README.md").read_text()
    part = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{lang}\n(.*?)```", part, re.S)[0]


def test_the_readme_sdk_example_deploys_the_sample_file(api, monkeypatch):
    assert "//" in SAMPLE.read_text() and "/*" in SAMPLE.read_text(), "the sample keeps its comments"
    monkeypatch.chdir(ROOT)
    for k, v in {"SCALESET_API_TOKEN": api.token(), "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION_ID,
                 "SCALESET_API_ENDPOINT": api.endpoint, "SCALESET_API_CA_CERT": str(api.ca)}.items():
        monkeypatch.setenv(k, v)
    lab_token = readme_block("Use Azure's SDK or CLI", "python").split("client = ")[0]  # imports and LabToken
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(lab_token + readme_block("Deploy with a template", "python"),  # noqa: S102
                     "README.md", "exec"), {})
    assert printed.getvalue().startswith("Succeeded "), printed.getvalue()
    ss = api.client().virtual_machine_scale_sets.get(RG, "web")
    assert ss.upgrade_policy.mode == "Automatic"
    assert ss.upgrade_policy.automatic_os_upgrade_policy.enable_automatic_os_upgrade is True
    assert ss.sku.capacity == 0
    assert ss.virtual_machine_profile.os_profile.linux_configuration.disable_password_authentication is True
    outputs = api.resources_client().deployments.get(RG, "web").properties.outputs
    assert {k: v["value"] for k, v in outputs.items()} == {
        "id": ss.id, "upgradeMode": "Automatic", "capacity": 0}


def test_the_sample_with_a_password_allows_password_logins_and_never_echoes_it(api):
    secret = "Lab-Sample-Passw0rd-77"
    tmpl = jsonc.loads(SAMPLE.read_text(), "template")
    body = {"properties": {"mode": "Incremental", "template": tmpl, "parameters": {
        "vmssName": {"value": "pw"}, "instanceCount": {"value": 0}, "adminPassword": {"value": secret}}}}
    ok = raw(api, "POST", "pw/validate", json=body)
    assert ok.status_code == 200, ok.text
    put = raw(api, "PUT", "pw", json=body)
    assert put.status_code == 201, put.text
    for _ in range(200):
        got = raw(api, "GET", "pw")
        if got.json()["properties"]["provisioningState"] not in ("Accepted", "Running"):
            break
        time.sleep(0.05)
    assert got.json()["properties"]["provisioningState"] == "Succeeded", got.text
    ss = requests.get(api.url("virtualMachineScaleSets/pw"), params={"api-version": "2024-07-01"},
                      headers={"Authorization": f"Bearer {api.token()}"}, verify=str(api.ca), timeout=30)
    osp = ss.json()["properties"]["virtualMachineProfile"]["osProfile"]
    assert osp["linuxConfiguration"]["disablePasswordAuthentication"] is False
    texts = [ok.text, put.text, got.text, ss.text, raw(api, "GET", "pw/operations").text,
             raw(api, "POST", "pw/exportTemplate").text]
    assert all(secret not in t for t in texts)


def test_the_sample_refuses_a_count_out_of_its_range_naming_it(api):
    tmpl = jsonc.loads(SAMPLE.read_text(), "template")
    r = raw(api, "POST", "big/validate", json={"properties": {"mode": "Incremental", "template": tmpl,
                                                             "parameters": {"instanceCount": {"value": 11}}}})
    assert r.status_code == 400 and "instanceCount" in json.dumps(r.json()), r.text
    assert api.lab.models.stored_name("web") is None
    assert os.path.exists(SAMPLE)
