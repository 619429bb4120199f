"""Session fixtures of the VM tier, shared by its modules: one lab, images built once."""
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import libvirt
import pytest

from controller.core.settings import LabPaths, libvirt_uri
from controller.model.region import local_host
from controller.state.db import connect
from controller.virt.hypervisor import Hypervisor
from images.builder import build
from images.gallery import Gallery

REPO = Path(__file__).resolve().parent.parent
P, O, S = "scaleset-lab", "debian", "debian-12"


@pytest.fixture(scope="session")
def vm_lab(tmp_path_factory):
    """One lab for the VM tier; the package set is cached in .cache/ across runs (by recipe hash)."""
    home = tmp_path_factory.mktemp("vmlab")
    os.environ["SCALESET_HOME"] = str(home)
    os.environ.setdefault("SCALESET_CACHE", str(REPO / ".cache" / "images"))
    os.environ.setdefault("SCALESET_PORTS_DIR", str(home))  # make test: one registry for both lanes
    yield LabPaths(home).ensure()
    forget_pool(home)


def forget_pool(home: Path) -> None:
    """The lab's own dir pool (made on first use, persistent on the host's libvirt) undefined again."""
    hv = Hypervisor(libvirt_uri())
    try:
        pool = hv.conn.storagePoolLookupByName(local_host(home, libvirt_uri()).pool)
        if pool.isActive():
            pool.destroy()
        pool.undefine()
    except libvirt.libvirtError:
        pass  # never made (no instance), or already gone
    finally:
        hv.close()


@pytest.fixture(scope="session")
def gallery(vm_lab):
    return Gallery(vm_lab, connect(vm_lab.db))


@pytest.fixture(scope="session")
def build_log():
    return []


@pytest.fixture(scope="session")
def v1(gallery, build_log):
    return build(gallery, P, O, S, "1.0.0", log=build_log.append)


@pytest.fixture(scope="session")
def v2(gallery, v1, tmp_path_factory):
    """A second version of the same recipe, with a customize script: (image version, build log)."""
    script = tmp_path_factory.mktemp("v2") / "v2.sh"
    script.write_text("echo 'version two' > /etc/scaleset-demo\napt-get --version >/dev/null\n")
    log: list[str] = []
    return build(gallery, P, O, S, "1.1.0", customize=[script], log=log.append), log


def app_model(name: str, count: int, prefix: str, version: str, upgrade_policy: dict, lab_settings: dict) -> dict:
    """A scale set of `count` guests with a data disk, the sample app and the health agent."""
    from lab.samples import health_extension, sample_app_extension
    return {
        "name": name, "sku": {"capacity": count},
        "properties": {
            "upgradePolicy": upgrade_policy, "labSettings": lab_settings,
            "virtualMachineProfile": {
                "storageProfile": {"imageReference": {"publisher": P, "offer": O, "sku": S, "version": version},
                                   "dataDisks": [{"lun": 0, "diskSizeGB": 1}]},
                "osProfile": {"computerNamePrefix": prefix},
                "extensionProfile": {"extensions": [sample_app_extension(), health_extension(after=["sample-app"])]},
            }}}


@contextmanager
def created(doc: dict):
    """A scale set made with `ops.create` (its create time printed), deleted at the end: yields its Lab."""
    from controller.ops import commands as ops
    from controller.ops.lab import Lab
    lab = Lab.open()
    t0 = time.monotonic()
    ops.create(lab, doc)
    print(f"\ncreate of {doc['name']} ({doc['sku']['capacity']} instances): {time.monotonic() - t0:.1f} s")
    try:
        yield lab
    finally:
        ops.delete(lab, doc["name"])
        lab.close()


@contextmanager
def controller_process(log: Path, paths: LabPaths, *args: str):
    """`scaleset controller --interval 1 --api-port 0 ARGS` as a process, its output in `log`;
    yields its API port once it listens, and prints the log's tail when it ends."""
    from controller.api.endpoint import recorded_port
    with open(log, "w") as f:
        proc = subprocess.Popen([sys.executable, "-m", "controller.cli", "controller", "--interval", "1",
                                 "--api-port", "0", *args], stdout=f, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        for _ in range(300):
            if (port := recorded_port(paths)) is not None:
                break
            assert proc.poll() is None, log.read_text()
            time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(30)
        print("\n--- controller log ---\n" + log.read_text()[-4000:])


class BatchCpu:
    """The orchestrator's events, and this process's CPU seconds per batch of one: from "batch N"
    to its instance's outcome (swap, boot wait, health gate, settle). `after_first` runs once the
    first batch's instance has succeeded."""

    def __init__(self, after_first=None) -> None:
        self.events: list[str] = []
        self.cpu: list[list[float]] = []
        self.after_first = after_first

    def __call__(self, msg: str) -> None:
        self.events.append(msg)
        now = time.process_time()
        if msg.startswith("batch ") and " -> " in msg:
            self.cpu.append([now])
        elif msg.startswith("instance ") and self.cpu and len(self.cpu[-1]) == 1:
            self.cpu[-1].append(now)
            if len(self.cpu) == 1 and ": Succeeded" in msg and self.after_first:
                self.after_first()

    def per_batch(self) -> list[float]:
        return [round(b[1] - b[0], 3) for b in self.cpu if len(b) == 2]


def upgrade(lab, name: str, batches: BatchCpu):
    """A rolling upgrade of set `name` started by a user, run to its end in this process."""
    import asyncio

    from controller.ops.rolling import Orchestrator, start_upgrade
    from controller.ops.rolling_driver import LibvirtDriver
    from controller.state.upgrades import UpgradeStore
    up = start_upgrade(lab, lab.models.get(name), "User")
    asyncio.run(Orchestrator(lab, LibvirtDriver(lab), on_event=batches).run(up))
    return UpgradeStore(lab.db).get(up.id)
