"""VM tier: `scaleset rehearse` on real guests: the demo scenario passes; a scenario with a
wrong expectation fails with a message that says what was seen, and leaves nothing behind."""
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from controller.core.settings import LabPaths, libvirt_uri
from controller.ops.lab import Lab
from tests.vmfixtures import O, P, REPO, S

pytestmark = [
    pytest.mark.vm,
    pytest.mark.timeout(2400),
    pytest.mark.skipif(os.geteuid() != 0, reason="image builds need root (mmdebstrap, chroot)"),
]


@pytest.fixture(scope="module")
def home(v1, tmp_path_factory):
    """A lab of its own, with the session's v1 imported (the scenarios reuse it, not build it)."""
    home = tmp_path_factory.mktemp("rehearse-lab")
    scaleset(home, "image", "import", "--publisher", P, "--offer", O, "--sku", S, "--version", "1.0.0",
             "--file", str(v1.path), check=True)
    return home


def scaleset(home: Path, *args: str, check: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, "SCALESET_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "controller.cli", *args], env=env, cwd=REPO, text=True,
                          capture_output=True, check=check, timeout=2300)


def rehearse(home: Path, scenario: Path, out: Path) -> tuple[subprocess.CompletedProcess, ET.Element]:
    res = scaleset(home, "rehearse", str(scenario), "--junit", str(out / "junit.xml"), "--report", str(out / "report"))
    print(res.stdout[-6000:], res.stderr[-2000:])
    return res, ET.parse(out / "junit.xml").getroot().find("testsuite")


def nothing_left(home: Path) -> dict:
    lab = Lab(LabPaths(home), libvirt_uri())
    try:
        disks = [v.name for v in lab.pool_at(None).volumes()]
        return {"sets": [s.name for s in lab.models.list()], "domains": [d.name for d in lab.hv.lab_domains(str(home))],
                "disks": disks, "versions": [iv.version for iv in lab.gallery.list()],
                "files": sorted(p.name for p in lab.paths.files.iterdir()) if lab.paths.files.exists() else []}
    finally:
        lab.close()


CLEAN = {"sets": [], "domains": [], "disks": [], "versions": ["1.0.0"], "files": []}


def test_a_wrong_expectation_fails_with_what_was_seen_and_leaves_nothing(home, tmp_path):
    res, suite = rehearse(home, REPO / "tests" / "scenarios" / "vm-wrong-expectation.yaml", tmp_path)
    assert res.returncode == 1, res.stderr
    assert "FAILED: vm-wrong-expectation: the guest runs a version nobody published: instances not running " \
           "1.0.1: {0: '1.0.0'} (after 5 s)" in res.stdout
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("6", "1", "1")
    failure = suite.find("testcase[failure]")
    assert failure.get("name") == "04 the guest runs a version nobody published"
    assert "1.0.1" in failure.find("failure").get("message")
    assert nothing_left(home) == CLEAN


def test_the_demo_scenario_passes_on_real_guests(home, tmp_path):
    res, suite = rehearse(home, REPO / "lab" / "scenarios" / "demo.yaml", tmp_path)
    assert res.returncode == 0, res.stdout[-3000:]
    assert (suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("0", "0", "0")
    lines = res.stdout.splitlines()
    assert any(ln.endswith("batch 3: instances [2] -> 2.0.0") for ln in lines)  # live, batch by batch
    assert any("rolling upgrade 2: Faulted (MaxUnhealthyUpgradedInstancePercentExceededInRollingUpgrade)" in ln
               for ln in lines)
    assert any(ln.startswith("https://127.0.0.1:") and "/lab/login?ticket=" in ln for ln in lines), lines[:5]
    html = (tmp_path / "report" / "index.html").read_text()
    assert html.count('class="lane"') == 4 and 'data-part="rollback"' in html  # 3 batches of v2, 1 of v3
    assert nothing_left(home) == CLEAN
