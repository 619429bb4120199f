"""The real `az deployment group ...` against the lab's API: a scale-set template written with
comments (az embeds the file's text in the request as written), validate, create, show, list,
`operation group list`, export-template and delete."""
from __future__ import annotations

import json

import pytest

from controller.model.armid import DEFAULT_RESOURCE_GROUP as RG
from tests.azcli import Az, AzError
from tests.test_api_deployments import scale_set

pytestmark = pytest.mark.azcli

COMMENTED = """// A scale set of capacity 0, written for the tests: comments as ARM accepts them.
{
  /* the schema az and ARM read */
  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
  "contentVersion": "1.0.0.0",
  "parameters": {
    "note": {"type": "string", "defaultValue": "lab"}  // given on the command line
  },
  "resources": %s,
  "outputs": {"where": {"type": "string", "value": "lab"}}
}
"""


@pytest.fixture
def az(api, tmp_path, az_venv):
    return Az(api.endpoint, api.ca, f"{api.endpoint}/identity/{api.token()}", tmp_path, venv=az_venv)


def test_az_deployment_group_create_validate_show_operations_delete(az, api, tmp_path):
    f = tmp_path / "vmss.json"
    f.write_text(COMMENTED % json.dumps([scale_set("web")], indent=2))
    valid = az.json("deployment", "group", "validate", "-g", RG, "-n", "tpl", "--template-file", str(f),
                    "--parameters", "note=hello")
    assert valid["properties"]["provisioningState"] == "Succeeded"
    assert api.lab.models.stored_name("web") is None, "validate creates nothing"
    done = az.json("deployment", "group", "create", "-g", RG, "-n", "tpl", "--template-file", str(f),
                   "--parameters", "note=hello")
    assert done["properties"]["provisioningState"] == "Succeeded", done
    assert api.lab.models.get("web").sku.capacity == 0
    shown = az.json("deployment", "group", "show", "-g", RG, "-n", "tpl")
    assert shown["name"] == "tpl" and shown["properties"]["parameters"]["note"]["value"] == "hello"
    assert [d["name"] for d in az.json("deployment", "group", "list", "-g", RG)] == ["tpl"]
    ops = az.json("deployment", "operation", "group", "list", "-g", RG, "-n", "tpl")
    assert [(o["properties"]["targetResource"]["resourceName"], o["properties"]["provisioningState"])
            for o in ops] == [("web", "Succeeded")]
    exported = az.json("deployment", "group", "export", "-g", RG, "-n", "tpl")
    assert exported["resources"][0]["name"] == "web"
    az.json("deployment", "group", "delete", "-g", RG, "-n", "tpl")
    assert az.json("deployment", "group", "list", "-g", RG) == []
    assert api.lab.models.stored_name("web") == "web", "the deployment's delete leaves its resources"


def test_az_validate_of_a_broken_template_names_the_problem(az, api, tmp_path):
    bad = scale_set("web")
    bad["sku"]["capacity"] = -1
    f = tmp_path / "bad.json"
    f.write_text(COMMENTED % json.dumps([bad]))
    with pytest.raises(AzError) as caught:
        az.json("deployment", "group", "validate", "-g", RG, "-n", "tpl", "--template-file", str(f))
    assert "capacity" in caught.value.proc.stderr
    assert api.lab.models.stored_name("web") is None
