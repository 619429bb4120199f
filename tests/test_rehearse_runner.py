"""The rehearsal runner on libvirt's test driver and the fake VM driver: step semantics, the
verdict, JUnit XML and the HTML report, and clean-up whatever happens."""
import asyncio
import json
import shutil
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from controller.core.errors import Interrupted
from controller.rehearse.junit import junit_xml
from controller.rehearse.report import write_report
from controller.rehearse.runner import Rehearsal
from controller.rehearse.scenario import ScenarioError, load
from controller.rehearse.scrub import scrub
from tests import fakepool
from tests.fakebackend import FakeBackend, ScenarioDriver, leftovers

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


@pytest.fixture
def scenario_dir(tmp_path, qcow2_file):
    folder = tmp_path / "scenarios"
    shutil.copytree(HERE / "scenarios", folder)
    shutil.copy(qcow2_file, folder / "disk.qcow2")
    return folder


def rehearse(flab, path: Path, driver=None, edit=None, **kw):
    """Run the scenario at `path` on the fake; (passed, outcome, printed lines, backend)."""
    if edit:
        path.write_text(edit(path.read_text()))
    backend = FakeBackend(flab, driver or ScenarioDriver(bad_versions={"3.0.0"}), **kw)
    lines: list[str] = []
    run = Rehearsal(load(path), backend, lines.append, poll=0.01)
    passed = None
    try:
        passed = asyncio.run(run.run())
    finally:
        outcome = run.finish()
    return passed, outcome, lines, backend


class Timeline(HTMLParser):
    """The report's timeline as data: upgrades, batches, lanes and their bar parts."""

    def __init__(self) -> None:
        super().__init__()
        self.upgrades: dict[str, list] = {}
        self.current = None
        self.lane = None
        self.events: list[str] = []
        self.verdict = None
        self._in_verdict = False
        self.data = None
        self._in_data = False
        self._text = ""

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section" and "data-upgrade" in a:
            self.current = self.upgrades.setdefault(a["data-upgrade"], [])
        elif "lane" in a.get("class", "").split():
            self.lane = {"batch": int(a["data-batch"]), "instance": int(a["data-instance"]),
                         "state": a["data-state"], "parts": []}
            self.current.append(self.lane)
        elif "seg" in a.get("class", "").split():
            self.lane["parts"].append(a["data-part"])
        elif "event" in a.get("class", "").split():
            self.events.append(a["data-event"])
        self._in_verdict = a.get("id") == "verdict"
        self._in_data = a.get("id") == "rehearsal-data"

    def handle_endtag(self, tag):
        if self._in_data:
            self.data = json.loads(self._text)
        self._in_verdict = self._in_data = False

    def handle_data(self, data):
        if self._in_verdict:
            self.verdict = data
        if self._in_data:
            self._text += data


def parsed(html: str) -> Timeline:
    t = Timeline()
    t.feed(html)
    return t


def test_a_passing_scenario_every_step_holds_and_nothing_is_left(flab, scenario_dir, tmp_path):
    passed, outcome, lines, _ = rehearse(flab, scenario_dir / "fake-pass.yaml")
    assert passed is True, [r for r in outcome.results if r.status != "passed"]
    assert [r.status for r in outcome.results] == ["passed"] * len(outcome.results)
    # live progress: the steps one at a time, the batches as they happen
    assert "step 5/18: expectUpgrade version=2.0.0 status=Completed" in lines
    assert [ln.strip() for ln in lines if "batch" in ln and "->" in ln][:3] == \
        [f"batch {n}: instances [{n - 1}] -> 2.0.0" for n in (1, 2, 3)]
    assert any("rolling upgrade 2: Faulted (MaxUnhealthyUpgradedInstancePercentExceededInRollingUpgrade)" in ln
               for ln in lines)
    assert leftovers(flab) == {"sets": [], "instances": 0, "disks": [], "versions": ["1.0.0"]}  # 2.0.0, 3.0.0 gone

    suite = ET.fromstring(junit_xml(outcome)).find("testsuite")
    cases = suite.findall("testcase")
    assert suite.get("name") == "fake-pass" and len(cases) == 20 and suite.get("failures") == "0"
    assert [c.get("name") for c in cases[:3]] == ["image 2.0.0", "image 3.0.0", "01 create"]

    html = write_report(outcome, tmp_path / "report").read_text()
    t = parsed(html)
    assert t.verdict == "PASSED"
    assert [(ln["batch"], ln["instance"], ln["state"]) for ln in t.upgrades["1"]] == \
        [(1, 0, "Succeeded"), (2, 1, "Succeeded"), (3, 2, "Succeeded")]
    assert all(ln["parts"] == ["swap", "boot", "health"] for ln in t.upgrades["1"])
    assert [(ln["instance"], ln["state"], ln["parts"][-1]) for ln in t.upgrades["2"]] == [(0, "RolledBack", "rollback")]
    assert t.data == json.loads((tmp_path / "report" / "rehearsal.json").read_text())
    assert [h["properties"]["runningStatus"]["code"] for h in t.data["history"]] == ["Faulted", "Completed"]
    assert "<link" not in html and "src=" not in html  # self-contained
    assert "hunter2" not in html + junit_xml(outcome) + "\n".join(lines)


def test_a_failing_expectation_fails_the_run_says_why_and_cleans_up(flab, scenario_dir):
    def wrong(text):  # the bad v3 is expected to complete
        return text.replace("{version: 3.0.0, status: Faulted,", "{version: 3.0.0, status: Completed,")
    passed, outcome, lines, _ = rehearse(flab, scenario_dir / "fake-pass.yaml", edit=wrong)
    assert passed is False
    statuses = [r.status for r in outcome.results]
    assert statuses[:10] == ["passed"] * 10 and statuses[10] == "failed" and set(statuses[11:]) == {"skipped"}
    failed = outcome.results[10]
    assert failed.message.startswith("upgrade 2 to 3.0.0 (Platform): Faulted "
                                     "MaxUnhealthyUpgradedInstancePercentExceededInRollingUpgrade")
    assert "status Faulted (expected Completed)" in failed.message
    assert "web: batch 1: instances [0] -> 3.0.0" in failed.log  # the controller's log tail
    assert leftovers(flab) == {"sets": [], "instances": 0, "disks": [], "versions": ["1.0.0"]}

    suite = ET.fromstring(junit_xml(outcome)).find("testsuite")
    assert (suite.get("failures"), suite.get("skipped"), suite.get("errors")) == ("1", "9", "0")
    failure = [c for c in suite.findall("testcase") if c.find("failure") is not None]
    assert [c.get("name") for c in failure] == ["09 expectUpgrade version=3.0.0 status=Completed errorCode="
                                                "MaxUnhealthyUpgradedInstancePercentExceededInRollingUpgrade"]
    node = failure[0].find("failure")
    assert "expected Completed" in node.get("message") and "--- controller log (tail) ---" in node.text


def test_a_timeout_names_what_was_seen(flab, scenario_dir):
    def never(text):
        return text.replace("- expectVersion: {version: 1.0.0, timeout: PT5S}",
                            "- expectVersion: {version: 1.0.1, timeout: PT0.2S}")
    passed, outcome, _, _ = rehearse(flab, scenario_dir / "fake-pass.yaml", edit=never)
    assert passed is False
    assert outcome.results[3].message == "instances not running 1.0.1: {0: '1.0.0', 1: '1.0.0', 2: '1.0.0'} " \
                                         "(after 0.2 s)"


def test_an_interrupted_run_still_deletes_what_it_created(flab, scenario_dir):
    with pytest.raises(Interrupted):  # Ctrl-C while the markers are being written
        rehearse(flab, scenario_dir / "fake-pass.yaml", interrupt_on="dd of=")
    assert leftovers(flab) == {"sets": [], "instances": 0, "disks": [], "versions": ["1.0.0"]}


def test_the_controller_killed_mid_batch_resumes_the_upgrade(flab, scenario_dir):
    def chaos(text):
        return text.replace("  - publish: 2.0.0\n", "  - publish: 2.0.0\n  - killController: {duringBatch: 2, timeout: PT10S}\n")
    driver = ScenarioDriver(bad_versions={"3.0.0"})
    seen = []

    def slow_boot(step, inst):  # batch 2 stays in flight long enough to be killed
        if step == "boot" and inst.instance_id == 1 and inst.image["version"] == "2.0.0" and not seen:
            seen.append(1)
            import time
            time.sleep(0.3)
    driver.on_step = slow_boot
    passed, outcome, lines, backend = rehearse(flab, scenario_dir / "fake-pass.yaml", driver=driver, edit=chaos)
    assert passed is True, [(r.title, r.message) for r in outcome.results if r.status != "passed"]
    assert backend.kills == 1 and [e["kind"] for e in outcome.events] == ["killController", "makeUnhealthy"]
    assert any("resuming rolling upgrade 1" in m for m in backend.messages)


def test_a_scale_set_of_that_name_is_refused_and_kept(flab, scenario_dir):
    from tests.fakedriver import make_scale_set
    doc = load(scenario_dir / "fake-pass.yaml").model
    make_scale_set(flab, doc, ScenarioDriver(), "1.0.0")
    with pytest.raises(ScenarioError) as err:
        rehearse(flab, scenario_dir / "fake-pass.yaml")
    assert err.value.code == "Conflict" and "exists in this lab already" in err.value.reason
    assert leftovers(flab)["sets"] == ["web"]


def test_the_manual_update_domain_example_on_the_fake(flab):
    passed, outcome, _, _ = rehearse(flab, REPO / "lab" / "scenarios" / "manual-update-domains.yaml")
    assert passed is True, [(r.title, r.message) for r in outcome.results if r.status != "passed"]
    titles = {r.title: r.message for r in outcome.results}
    assert titles["expectModelApplied applied=False instanceIds=[1]"] == "latestModelApplied false"


def test_secrets_are_scrubbed_from_text_and_documents():
    url = "http://10.0.2.2:8000/files/a.sh?se=1700000000&sig=0123abcdef"
    assert scrub(f"download of {url} failed") == "download of http://10.0.2.2:8000/files/a.sh?se=1700000000" \
                                                 "&sig=<redacted> failed"
    assert scrub({"x": [{"protectedSettings": {"k": "v"}, "ticket=abc": 1}]}) == \
        {"x": [{"protectedSettings": "<redacted>", "ticket=abc": 1}]}
    assert scrub("Authorization: Bearer eyJhbGciOi.x.y") == "Authorization: Bearer <redacted>"


def test_ctrl_c_of_scaleset_rehearse_deletes_what_it_created(lab, tmp_path, qcow2_file):
    """The real CLI and backend on libvirt's test driver: `create` blocks in its boot wait (no
    guest ever boots there); SIGINT ends the run, then the scale set, its domain and disks, the
    imported version and the controller process are gone; exit 130, one ERROR line."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from controller.core.settings import LabPaths
    from controller.ops.lab import Lab
    folder = tmp_path / "s"
    folder.mkdir()
    shutil.copy(qcow2_file, folder / "disk.qcow2")
    text = (HERE / "scenarios" / "fake-pass.yaml").read_text().replace("  - version: 3.0.0\n    import: disk.qcow2\n", "")
    text = text.replace("  - version: 2.0.0\n    import: disk.qcow2\n", "  - version: 1.0.0\n    import: disk.qcow2\n")
    text = text[:text.index("  - expectVersion")]
    (folder / "s.yaml").write_text(text)
    env = {**os.environ, "SCALESET_HOME": str(lab.home), "SCALESET_PORTS_DIR": str(tmp_path),
           "SCALESET_LIBVIRT_URI": "test:///default", "SCALESET_API_PORT": "0", "PYTHONPATH": fakepool.PYTHONPATH}
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "controller.cli", "rehearse", str(folder / "s.yaml"), "--junit",
                             str(tmp_path / "j.xml")], env=env, cwd=REPO, stdout=out.open("w"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while "step 1/1: create" not in out.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, out.read_text()
            time.sleep(0.1)
        time.sleep(1.5)  # inside the boot wait
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = out.read_text()
    assert proc.returncode == 130, text
    assert "Traceback" not in text and [ln for ln in text.splitlines() if ln.startswith("ERROR:")] == \
        ["ERROR: (OperationPreempted) interrupted by SIGINT; run scaleset repair to finish or undo what was "
         "under way"], text
    assert "deleted scale set web" in text and "deleted image version 1.0.0" in text
    t = Lab(LabPaths(lab.home), "test:///default")
    assert leftovers(t) == {"sets": [], "instances": 0, "disks": [], "versions": []}
    suite = ET.parse(tmp_path / "j.xml").getroot().find("testsuite")
    assert suite.find("testcase[error]").get("name") == "01 create"
