"""The scenario format: the examples load; a bad file gets one error naming its line and key."""
import textwrap
from pathlib import Path

import pytest

from controller.cli.main import main
from controller.rehearse.scenario import ScenarioError, load

REPO = Path(__file__).resolve().parent.parent
GOOD = """\
name: t
images:
  - version: 1.0.0
  - version: 2.0.0
    customize: [v2.sh]
scaleSet:
  name: web
  sku: {capacity: 2}
  properties:
    virtualMachineProfile:
      storageProfile:
        imageReference: {publisher: scaleset-lab, offer: debian, sku: debian-12, version: latest}
      osProfile: {computerNamePrefix: web}
steps:
  - create: {}
  - publish: 2.0.0
  - expectVersion: {version: 2.0.0, timeout: PT5S}
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "v2.sh").write_text("true\n")
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize("name", ["demo", "manual-update-domains", "expired-credential"])
def test_the_example_scenarios_load(name):
    s = load(REPO / "lab" / "scenarios" / f"{name}.yaml")
    assert s.steps[[st.kind for st in s.steps].index("create")]
    assert all(im.customize or im.source or im.version == "1.0.0" for im in s.images)


def test_demo_scenario_is_the_demo_story():
    s = load(REPO / "lab" / "scenarios" / "demo.yaml")
    assert [(im.version, im.held) for im in s.images] == [("1.0.0", False), ("2.0.0", True), ("3.0.0", True)]
    ups = [st.args for st in s.steps if st.kind == "expectUpgrade"]
    assert [(u["version"], u["status"]) for u in ups] == [("2.0.0", "Completed"), ("3.0.0", "Faulted")]
    assert ups[1]["rolledBack"] == 1
    script = s.model["properties"]["virtualMachineProfile"]["extensionProfile"]["extensions"][0]
    assert "{{" not in script["properties"]["settings"]["script"]  # base64File made at load time


def test_a_good_file_reads_with_defaults(tmp_path):
    s = load(write(tmp_path, GOOD))
    assert (s.name, s.scale_set, s.publisher, s.sku) == ("t", "web", "scaleset-lab", "debian-12")
    assert [im.held for im in s.images] == [False, True]  # 2.0.0 waits for its publish step
    assert s.steps[2].timeout == 5 and s.steps[0].timeout == 600
    assert s.steps[1].line == 16


BAD = [
    ("steps:\n  - create: {}\n  - explode: {}\n", "s.yaml:16 steps[1].explode", "unknown step"),
    ("steps:\n  - create: {timeout: soon}\n", "s.yaml:15 steps[0].create.timeout", "ISO-8601"),
    ("steps:\n  - create: {}\n  - expectUpgrade: {status: Done}\n", "s.yaml:16 steps[1].expectUpgrade.status",
     "one of Completed"),
    ("steps:\n  - create: {}\n  - publish: 9.9.9\n", "s.yaml:16 steps[1].publish.version", "not one of the images"),
    ("steps:\n  - create: {}\n  - publish: {}\n", "s.yaml:16 steps[1].publish", "'version' is required"),
    ("steps:\n  - create: {}\n  - scale: {capacity: many}\n", "s.yaml:16 steps[1].scale.capacity", "an integer"),
    ("steps:\n  - create: {}\n  - reimage: {instanceIds: [x]}\n", "s.yaml:16 steps[1].reimage.instanceIds[0]",
     "instance id"),
    ("steps:\n  - create: {}\n  - create: {}\n", "s.yaml:14 steps", "exactly one 'create'"),
    ("steps:\n  - reimage: {}\n  - create: {}\n", "s.yaml:15 steps[0].reimage", "before the 'create' step"),
    ("steps:\n  - create: {}\n  - updateInstances: {}\n", "s.yaml:16 steps[1].updateInstances",
     "exactly one of instanceIds or updateDomain"),
    ("steps:\n  - create: {}\n  - runCommand: {instanceId: 0, script: x, expectExitCode: zero}\n",
     "s.yaml:16 steps[1].runCommand.expectExitCode", "an integer"),
    ("steps:\n  - create: {}\n  - expectUpgrade: {status: Completed, color: red}\n",
     "s.yaml:16 steps[1].expectUpgrade.color", "unknown key"),
]


@pytest.mark.parametrize("steps, field, reason", BAD, ids=[b[1].split()[1] for b in BAD])
def test_a_bad_step_is_named_with_its_line(tmp_path, steps, field, reason):
    text = GOOD[:GOOD.index("steps:")] + steps
    with pytest.raises(ScenarioError) as err:
        load(write(tmp_path, text))
    assert err.value.field == field and reason in err.value.reason, str(err.value)


@pytest.mark.parametrize("old, new, field, reason", [
    ("sku: {capacity: 2}", "sku: {capacity: -1}", "s.yaml:8 scaleSet.sku.capacity", ""),
    ("name: t\n", "name: t\ncolour: red\n", "s.yaml:2 colour", "unknown key"),
    ("customize: [v2.sh]", "customize: [missing.sh]", "s.yaml:5 images[1].customize[0]", "is not a file"),
    ("  - version: 1.0.0\n", "  - version: '1.0'\n", "s.yaml:3 images[0].version", "malformed"),
    ("  - version: 1.0.0\n", "  - version: 1.0\n", "s.yaml:3 images[0].version", "must be a string"),
    ("  - version: 1.0.0\n", "  - {}\n", "s.yaml:3 images[0]", "'version' is required"),
    ("  - version: 1.0.0\n", "  - {version: 1.0.0, recipe: nope}\n", "s.yaml:3 images[0].recipe",
     "is not a recipe (known recipes: debian-12"),
    ("  osProfile: {computerNamePrefix: web}", "  osProfile: {computerNamePrefix: web}\n  zz: [", "s.yaml:", "not YAML"),
])
def test_a_bad_model_or_image_is_named(tmp_path, old, new, field, reason):
    with pytest.raises(ScenarioError) as err:
        load(write(tmp_path, GOOD.replace(old, new, 1)))
    assert err.value.field.startswith(field) and reason in err.value.reason, str(err.value)


def test_the_cli_says_one_line_and_builds_nothing(tmp_path, lab, capsys):
    code = main(["rehearse", str(write(tmp_path, GOOD.replace("publish: 2.0.0", "publish: '2.0'")))])
    out, err = capsys.readouterr()
    assert code == 1 and "Traceback" not in err
    assert err.strip().splitlines() == ["ERROR: (InvalidParameter) s.yaml:16 steps[1].publish.version: '2.0' is "
                                        "malformed: expected MAJOR.MINOR.PATCH of non-negative integers without "
                                        "leading zeros (e.g. 1.0.0 or 2016.127.20180613)"]
    assert out == "" and not lab.db.exists()  # nothing opened, nothing built


def test_a_missing_file_is_named(tmp_path, lab, capsys):
    assert main(["rehearse", str(tmp_path / "nope.yaml")]) == 1
    assert capsys.readouterr().err.startswith(f"ERROR: (FileNotFound) {tmp_path / 'nope.yaml'}: ")


def test_the_model_can_be_a_file_and_its_errors_name_it(tmp_path):
    import json
    doc = {"name": "web", "sku": {"capacity": 1}, "properties": {"virtualMachineProfile": {
        "storageProfile": {"imageReference": {"publisher": "p", "offer": "o", "sku": "s", "version": "1.0.0"}},
        "osProfile": {"computerNamePrefix": "web"}}}}
    (tmp_path / "model.json").write_text(json.dumps(doc))
    text = "name: t\nimages: [{version: 1.0.0}]\nscaleSetFile: model.json\nsteps: [{create: {}}]\n"
    s = load(write(tmp_path, text))
    assert (s.scale_set, s.publisher, s.sku) == ("web", "p", "s")
    doc["sku"]["capacity"] = "two"
    (tmp_path / "model.json").write_text(json.dumps(doc))
    with pytest.raises(ScenarioError) as err:
        load(write(tmp_path, text))
    assert err.value.field == "s.yaml:3 scaleSetFile" and err.value.reason.startswith("$.sku.capacity: ")
