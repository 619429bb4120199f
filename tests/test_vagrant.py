"""The Vagrant tier: `scripts/vagrant-ci.sh` brings up the box `make box` builds, under
vagrant-libvirt and TCG, provisions it offline and runs `scaleset accel` and `make test-env` inside (the fast tests that
depend on the machine: the whole fast tier takes over 20 minutes under TCG).

vagrant-libvirt reaches its machine only over a libvirt NAT network (192.168.121.0/24), so all of
it runs in network, mount and PID namespaces of this test's own, against a libvirtd of its own
(tests/privlibvirt.py): the network, its bridge, dnsmasq and the SSH traffic exist only there.
"""
import os
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.privlibvirt import PrivateLibvirt

REPO = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.vagrant, pytest.mark.timeout(3600)]
INSIDE = ".venv/bin/scaleset accel && make test-env"


@pytest.fixture(scope="module")
def box() -> Path:
    if os.environ.get("SCALESET_IN_VAGRANT") == "1":
        pytest.skip("already inside the Vagrant lab host: its host runs this tier")
    if os.geteuid() != 0:
        pytest.skip("needs root (namespaces, a libvirtd of its own, image builds): `make test` runs it so")
    env = dict(os.environ, SCALESET_CACHE=os.environ.get("SCALESET_CACHE", str(REPO / ".cache/images")))
    t0 = time.monotonic()
    made = subprocess.run(["scripts/make-box.sh"], cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    assert made.returncode == 0, made.stderr[-2000:]
    print(f"\nmake box: {time.monotonic() - t0:.0f} s ({made.stderr.strip().splitlines()[-1]})")
    t0 = time.monotonic()
    res = subprocess.run(["make", "-s", "wheelhouse"], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-2000:]
    print(f"make wheelhouse: {time.monotonic() - t0:.0f} s")
    return REPO / made.stdout.strip().splitlines()[-1]


def _env_test_count() -> int:
    """How many tests `make test-env` collects here: each of them must run inside too."""
    files = subprocess.run(["make", "-s", "env-tests"], cwd=REPO, capture_output=True, text=True).stdout.split()
    res = subprocess.run([str(REPO / ".venv/bin/pytest"), "--collect-only", "-q", "-m",
                          "not vm and not azcli and not vagrant", *files], cwd=REPO, capture_output=True, text=True)
    return sum(1 for line in res.stdout.splitlines() if "::" in line)


def _host_network() -> str:
    return subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout


def test_vagrant_ci_runs_the_env_tests_in_the_lab_box_and_leaves_nothing(box, tmp_path):
    host_before, expected = _host_network(), _env_test_count()
    out, ns_root = tmp_path / "out", tmp_path / "ns"
    env = dict(os.environ, VAGRANT_HOME=str(tmp_path / "vagrant.d"), VAGRANT_DOTFILE_PATH=str(tmp_path / "dot"),
               VAGRANT_CHECKPOINT_DISABLE="1", VAGRANT_BOX_UPDATE_CHECK_DISABLE="1",
               SCALESET_VAGRANT_CONSOLE="/var/log/libvirt/scaleset-ci.console")
    with PrivateLibvirt(ns_root) as ns:
        pid1 = ns.pid
        t0 = time.monotonic()
        res = subprocess.run(ns.command(["scripts/vagrant-ci.sh", "--box", str(box), "--out", str(out), "--", INSIDE],
                                        cwd=REPO), env=env, capture_output=True, text=True, timeout=3000)
        wall = time.monotonic() - t0
        left = ns.leftovers()
        for vol in left["volumes"]:  # vagrant-libvirt keeps the box's base volume for the next `up`
            ns.run(["virsh", "-q", "vol-delete", vol.split()[0], "--pool", ns.pool])
        after = ns.leftovers()
    log = (out / "vagrant.log").read_text()
    tests = (out / "tests.log").read_text() if (out / "tests.log").exists() else ""
    figures = [line for line in log.splitlines() if line.startswith("vagrant-ci: ")]
    print("\n" + "\n".join(figures) + f"\nvagrant-ci.sh in all: {wall:.0f} s")
    console = ns_root / "log/scaleset-ci.console"
    assert res.returncode == 0, (res.stderr[-1500:], log[-3000:], tests[-3000:],
                                 console.read_text(errors="replace")[-1500:] if console.exists() else "")

    # Inside: TCG said (not hung), every test of `make test-env` passed, and the JUnit XML was copied out.
    assert "accel: tcg" in tests
    suite = ET.parse(out / "junit.xml").getroot()
    suite = suite.find("testsuite") if suite.tag == "testsuites" else suite
    counts = {k: int(suite.get(k)) for k in ("tests", "failures", "errors", "skipped")}
    print(f"make test-env inside: {counts} (here: {expected} tests), {float(suite.get('time')):.0f} s")
    assert expected > 150 and counts["tests"] == expected
    assert counts["failures"] == 0 and counts["errors"] == 0
    assert (out / "journal.txt").stat().st_size > 0

    # Vagrant replaced the box's insecure key; provisioning downloaded nothing.
    assert "Inserting generated public key within guest" in log
    assert "from /vagrant/.cache/wheelhouse (no index)" in log and "setup: installing " not in log.replace(
        "setup: installing the project into .venv from", "")

    # Nothing left: vagrant destroyed its domain and network; the box volume was the only volume.
    assert left["domains"] == [] and left["networks"] == [] and left["processes"] == [], left
    names = [v.split()[0] for v in left["volumes"]]
    assert len(names) == 1 and names[0].startswith("scaleset-lab-VAGRANTSLASH-lab-host_vagrant_box_image_"), names
    assert after["volumes"] == []
    assert not Path(f"/proc/{pid1}").exists()  # the namespace's PID 1, and with it every process in it
    assert _host_network() == host_before  # no bridge or address appeared on the host
