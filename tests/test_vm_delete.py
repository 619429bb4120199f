"""VM tier: a real `scaleset create` killed with SIGKILL while its guest boots, then
`scaleset delete` removes everything, and `scaleset controller --once` starts up cleanly."""
import os
import signal
import subprocess
import sys
import time

import pytest

from controller.model.instance import domain_name
from controller.ops.lab import Lab
from controller.virt.ports import PortAllocator
from tests.fakepool import disks_of
from tests.vmfixtures import REPO, O, P, S

pytestmark = [
    pytest.mark.vm,
    pytest.mark.timeout(1200),
    pytest.mark.skipif(os.geteuid() != 0, reason="image builds need root (mmdebstrap, chroot)"),
]
NAME = "killed"
TABLES = [("scale_sets", "name"), ("instances", "scale_set"), ("disk_swaps", "scale_set"),
          ("rolling_upgrades", "scale_set"), ("health", "scale_set")]


def cli(*argv: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "controller.cli", *argv], check=False, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def test_delete_after_create_was_killed_in_its_boot_wait(vm_lab, v1):
    lab = Lab.open()
    dom = domain_name(lab.paths.home, NAME, 0)
    create = subprocess.Popen([sys.executable, "-m", "controller.cli", "create", "--name", NAME,
                               "--image", f"{P}:{O}:{S}:{v1.version}", "--instance-count", "1",
                               "--data-disk-sizes-gb", "1"], cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while True:  # the guest runs and the create is journalled, not settled: it waits for the boot
            d = lab.hv.lookup(dom)
            open_ = lab.db.execute("SELECT COUNT(*) FROM disk_swaps WHERE scale_set=? AND kind='create' AND "
                                   "phase NOT IN ('done','aborted')", (NAME,)).fetchone()[0]
            if d is not None and d.state() == "running" and open_:
                break
            assert create.poll() is None, create.stderr.read().decode()
            assert time.monotonic() < deadline, "the guest never started"
            time.sleep(0.2)
        time.sleep(1)
    finally:
        create.send_signal(signal.SIGKILL)
        create.wait()
    assert lab.hv.lookup(dom).state() == "running"  # what the kill left: a running guest, a journal row

    done = cli("delete", "--name", NAME)
    assert done.returncode == 0, done.stderr
    assert lab.hv.lookup(dom) is None
    assert [d.name for d in lab.hv.lab_domains(str(lab.paths.home)) if d.lab_tag().scale_set == NAME] == []
    assert disks_of(lab.pool_at(None), dom) == []  # no volume of it left in the lab's pool
    for table, column in TABLES:
        assert lab.db.execute(f"SELECT COUNT(*) FROM {table} WHERE {column}=?", (NAME,)).fetchone()[0] == 0, table
    assert not any(o.endswith(f"#{dom}") for o in PortAllocator().leases().values())
    assert not (lab.paths.logs / f"{dom}.console.log").exists()

    started = cli("controller", "--once", "--api-port", "0", timeout=120)
    assert started.returncode == 0, started.stderr
    assert "Traceback" not in started.stderr and NAME not in started.stdout + started.stderr
    lab.close()
