"""The Vagrant lab host's pieces that need no guest: the box format, the recipe, the scripts."""
import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
from pathlib import Path

import pytest

from controller.cli.main import main
from images import recipe, vagrantbox
from tests.test_cli import run

REPO = Path(__file__).resolve().parent.parent
REF = ["--publisher", "scaleset-lab", "--offer", "lab-host", "--sku", "lab-host", "--version", "1.0.0"]


def _import(capsys, qcow2_file):
    assert main(["image", "import", *REF, "--file", str(qcow2_file)]) == 0
    capsys.readouterr()


def test_export_writes_a_vagrant_libvirt_box(lab, capsys, qcow2_file, tmp_path):
    _import(capsys, qcow2_file)
    box = tmp_path / "lab-host.box"
    code, _, err = run(capsys, "image", "export", *REF, "--format", "vagrant-box", "--output", str(box))
    assert code == 0 and f"vagrant box add --name NAME {box}" in err
    with tarfile.open(box) as tar:
        assert sorted(tar.getnames()) == ["Vagrantfile", "box.img", "metadata.json"]
        meta = json.load(tar.extractfile("metadata.json"))
        img = tar.extractfile("box.img").read()
        vf = tar.extractfile("Vagrantfile").read().decode()
    # vagrant-libvirt's fields; virtual_size in whole GiB (the test disk is 64 MiB: rounds up to 1)
    assert meta == {"provider": "libvirt", "format": "qcow2", "virtual_size": 1}
    assert img == qcow2_file.read_bytes()
    assert 'type: "rsync"' in vf and "Vagrant.configure" in vf
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_virtual_size_rounds_up_to_whole_gib():
    iv = type("IV", (), {"virtual_size_bytes": 3 * 1024**3 + 1})()
    assert vagrantbox.metadata(iv)["virtual_size"] == 4


@pytest.mark.parametrize("where, reason", [
    ("folder", "is a folder: give the box's file name"),
    ("missing/x.box", "does not exist"),
])
def test_export_refuses_a_bad_output_and_leaves_nothing(lab, capsys, qcow2_file, tmp_path, where, reason):
    _import(capsys, qcow2_file)
    (tmp_path / "folder").mkdir()
    code, out, err = run(capsys, "image", "export", *REF, "--format", "vagrant-box", "-o", str(tmp_path / where))
    assert code == 1 and out == "" and err.startswith("ERROR: (InvalidOutput) --output: ") and reason in err


def test_export_of_an_unknown_version_names_it(lab, capsys, tmp_path):
    code, _, err = run(capsys, "image", "export", *REF, "--format", "vagrant-box", "-o", str(tmp_path / "b.box"))
    assert code == 1 and "1.0.0" in err and "Traceback" not in err
    assert not (tmp_path / "b.box").exists()


def test_export_refuses_a_version_whose_file_changed(lab, capsys, qcow2_file, tmp_path):
    _import(capsys, qcow2_file)
    disk = next(lab.home.rglob("1.0.0.qcow2"))
    os.chmod(disk, 0o644)
    with disk.open("r+b") as f:
        f.seek(100_000)
        f.write(b"tampered")
    code, _, err = run(capsys, "image", "export", *REF, "--format", "vagrant-box", "-o", str(tmp_path / "b.box"))
    assert code == 1 and "(ImageCorrupted)" in err and not (tmp_path / "b.box").exists()


def _setup_packages() -> set[str]:
    """The PACKAGES array of scripts/setup.sh (its lab packages, before the Vagrant tier's)."""
    text = (REPO / "scripts/setup.sh").read_text()
    body = re.search(r"^PACKAGES=\((.*?)^\)", text, re.DOTALL | re.MULTILINE).group(1)
    return {w for line in body.splitlines() for w in line.split("#")[0].split()}


def test_the_box_recipe_has_every_package_setup_installs():
    """So that `scripts/setup.sh` inside the box installs nothing from the network."""
    wanted = _setup_packages()
    assert {"qemu-system-x86", "libvirt-daemon-system", "chromium"} <= wanted
    r = recipe.load("lab-host")
    assert wanted - set(r.packages) == set()
    assert {"openssh-server", "sudo", "rsync", "make", "qemu-guest-agent", "python3-venv"} <= set(r.packages)
    assert (r.overlay / "etc/systemd/network/99-lab-host-dhcp.network").is_file()


def test_the_box_carries_vagrants_insecure_key_and_passwordless_sudo():
    script = vagrantbox.CUSTOMIZE.read_text()
    assert "vagrant ALL=(ALL) NOPASSWD:ALL" in script
    shipped = sorted(Path("/usr/share/rubygems-integration/all/gems").glob("vagrant-*/keys/vagrant.pub"))
    if not shipped:
        pytest.skip("vagrant is not installed (scripts/setup.sh installs it)")
    key = shipped[-1].read_text().split()[1]
    assert key in script


def test_setup_refuses_a_wheelhouse_that_is_not_a_folder(tmp_path):
    env = dict(os.environ, SCALESET_WHEELHOUSE=str(tmp_path / "none"), SCALESET_IN_VAGRANT="1")
    res = subprocess.run(["bash", "scripts/setup.sh"], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 1 and f"SCALESET_WHEELHOUSE: {tmp_path / 'none'} is not a folder" in res.stderr


@pytest.mark.parametrize("args, said", [
    (["--frobnicate"], "unknown argument '--frobnicate'"),
    (["--box", "/nonexistent.box"], "--box: /nonexistent.box is not a file"),
])
def test_vagrant_ci_refuses_bad_arguments(tmp_path, args, said):
    if args[0] == "--box" and shutil.which("vagrant") is None:
        pytest.skip("vagrant is not installed (scripts/setup.sh installs it)")
    env = dict(os.environ, VAGRANT_HOME=str(tmp_path / "vh"), VAGRANT_DOTFILE_PATH=str(tmp_path / "dot"),
               VAGRANT_CHECKPOINT_DISABLE="1")
    res = subprocess.run(["scripts/vagrant-ci.sh", "--out", str(tmp_path / "out"), *args], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert not (tmp_path / "dot").exists() or not list((tmp_path / "dot").rglob("id"))  # no machine made
    assert res.returncode == 2 and said in res.stderr


def _vagrant(tmp_path, *args, **env):
    env = dict(os.environ, VAGRANT_HOME=str(tmp_path / "vh"), VAGRANT_DOTFILE_PATH=str(tmp_path / "dot"),
               VAGRANT_CHECKPOINT_DISABLE="1", **env)
    return subprocess.run(["vagrant", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_vagrantfile_validates_and_refuses_an_unknown_accel(tmp_path):
    if shutil.which("vagrant") is None:
        pytest.skip("vagrant is not installed (scripts/setup.sh installs it)")
    ok = _vagrant(tmp_path, "validate")
    assert ok.returncode == 0 and "validated successfully" in ok.stdout
    bad = _vagrant(tmp_path, "validate", SCALESET_VAGRANT_ACCEL="xen")
    assert bad.returncode == 1 and "SCALESET_VAGRANT_ACCEL: 'xen' is not kvm or tcg" in bad.stderr


FAKE_VAGRANT = """#!/bin/sh
# A stand-in for vagrant: records each call; `up` waits (to be interrupted), `ssh -c` exits $FAKE_SSH_EXIT.
echo "$*" >> "$FAKE_LOG"
case "$1" in
  up) [ -n "$FAKE_UP_WAIT" ] && sleep "$FAKE_UP_WAIT"; exit 0 ;;
  ssh) case "$*" in *junitxml*) echo "tests ran"; exit "${FAKE_SSH_EXIT:-0}" ;; esac; exit 0 ;;
  ssh-config) echo "Host default"; echo "  HostName 127.0.0.1"; echo "  Port 9"; exit 0 ;;
  *) exit 0 ;;
esac
"""


def _fake_ci(tmp_path, *args, **env):
    """vagrant-ci.sh with the stand-in vagrant first on PATH: (process, the calls it made)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "vagrant"
    fake.write_text(FAKE_VAGRANT)
    fake.chmod(0o755)
    calls = tmp_path / "calls"
    full = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", FAKE_LOG=str(calls), **env)
    proc = subprocess.Popen(["scripts/vagrant-ci.sh", "--out", str(tmp_path / "out"), *args], cwd=REPO, env=full,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # noqa: PLW1509 (as from a terminal)
    return proc, calls


def test_vagrant_ci_exits_with_the_tests_status_and_always_destroys(tmp_path):
    proc, calls = _fake_ci(tmp_path, "--", "make test-fast", FAKE_SSH_EXIT="3")
    out, err = proc.communicate(timeout=60)
    made = calls.read_text().splitlines()
    assert proc.returncode == 3 and "tests ran" in out
    assert made[0] == "up --no-provision --provider libvirt" and made[1] == "provision"
    assert "export PYTEST_ADDOPTS='--junitxml=ci-out/junit.xml' && make test-fast" in made[2]
    assert made[-1] == "destroy -f" and "tests (make test-fast): " in err and "(exit 3)" in err


def test_vagrant_ci_destroys_the_machine_on_ctrl_c(tmp_path):
    import time
    proc, calls = _fake_ci(tmp_path, FAKE_UP_WAIT="600")  # bounds below are loose: a loaded machine is slow
    deadline = time.monotonic() + 180
    while not (calls.exists() and "up" in calls.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "up" in calls.read_text()
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)  # to the script alone: it stops `vagrant up` itself
    _, err = proc.communicate(timeout=300)
    assert time.monotonic() - t0 < 300  # long before `up` would have ended
    assert proc.returncode == 130 and "interrupted" in err
    made = calls.read_text().splitlines()
    assert made[-1] == "destroy -f" and "provision" not in made
