"""One guest from one image version: disks, seed, domain, and the wait chain to "ready".

The wait chain follows pycloudlib: domain started -> cloud-init's final message on the
console -> SSH answers -> cloud-init's result.json -> boot id and image stamp read back.
"""
from __future__ import annotations

import json
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from images import qcow2
from images.gallery import ImageVersion

from controller.virt import accel as accel_mod
from controller.virt import cloudinit
from controller.core.settings import LabPaths
from controller.virt.domain_xml import Disk, DomainSpec, Forward, render
from controller.virt.hypervisor import Domain, Hypervisor
from controller.virt.ports import PortAllocator
from controller.virt.seed import write_seed
from controller.virt.ssh import GuestSSH, PinnedHostKeys, ensure_keypair

STAMP = "/etc/scaleset-lab/image.json"
SEP = "----scaleset-lab----"
EXTRA_SEP = "----scaleset-lab-extra----"
READINESS_PROBE = (
    "while [ ! -e /run/cloud-init/result.json ]; do sleep 1; done; "
    f"cat /run/cloud-init/result.json; echo {SEP}; cat /proc/sys/kernel/random/boot_id; "
    f"echo {SEP}; cat {STAMP} 2>/dev/null"
)


@dataclass
class Readiness:
    cloud_init_status: str
    boot_id: str
    stamp: dict
    timings: dict[str, float | None]  # seconds from domain start: console, ssh, cloudInitDone
    extra: str = ""  # output of the caller's extra command, run in the same round trip


def run_as_owner(path: Path) -> str:
    st = path.stat()
    return f"+{st.st_uid}:+{st.st_gid}"


class Guest:
    def __init__(self, paths: LabPaths, hv: Hypervisor, name: str, admin_user: str = "azureuser") -> None:
        self.paths, self.hv, self.name, self.admin_user = paths, hv, name, admin_user
        self.dir = paths.disks / name
        self.console_log = paths.logs / f"{name}.console.log"
        self.owner = f"{paths.home}#{name}"
        self.hostkeys = PinnedHostKeys(paths.keys / "hostkeys", name)
        self.ssh_port: int | None = None
        self.started_at: float | None = None

    # -- creation -------------------------------------------------------------------------
    def create(self, image: ImageVersion, *, memory_mib: int = 512, vcpus: int = 2,
               extra_forwards: list[int] | None = None, runcmd: list[str] | None = None,
               accel: accel_mod.Accel | None = None) -> Domain:
        """Overlay OS disk + seed + domain, then start it."""
        accel = accel or accel_mod.detect()
        self.dir.mkdir(parents=True, exist_ok=True)
        os_disk = self.dir / f"os-{uuid.uuid4().hex[:8]}.qcow2"
        qcow2.create_overlay(image.path, os_disk)
        key_path, pub = ensure_keypair(self.paths.keys)
        guest_ports = [22, *(extra_forwards or [])]
        host_ports = PortAllocator().allocate(self.owner, len(guest_ports))
        self.ssh_port = host_ports[0]
        forwards = [Forward(h, g) for h, g in zip(host_ports, guest_ports, strict=False)]
        spec = DomainSpec(name=self.name, home=self.paths.home, console_log=self.console_log,
                          forwards=forwards, domain_type=accel.domain_type, memory_mib=memory_mib,
                          vcpus=vcpus, run_as=run_as_owner(self.paths.home), disks=[])
        docs = cloudinit.render(cloudinit.SeedSpec(
            instance_id=f"{self.name}-{uuid.uuid4().hex[:12]}", hostname=self.name,
            admin_user=self.admin_user, ssh_keys=[pub], mac=spec.mac, runcmd=runcmd or []))
        seed = write_seed(self.dir / "seed.iso", docs["user-data"], docs["meta-data"], docs["network-config"])
        spec.disks = [Disk(os_disk, "vda"), Disk(seed, "vdz", format="raw", readonly=True)]
        self.hostkeys.forget()  # a new OS disk brings new host keys
        self.console_log.unlink(missing_ok=True)
        dom = self.hv.define(render(spec))
        self.started_at = time.monotonic()
        dom.start()
        return dom

    # -- waiting --------------------------------------------------------------------------
    def ssh(self) -> GuestSSH:
        assert self.ssh_port is not None, "guest not created"
        return GuestSSH(self.ssh_port, self.admin_user, self.paths.keys / "id_ed25519", self.hostkeys)

    def wait_ready(self, timeout: float = 600.0) -> Readiness:
        assert self.started_at is not None
        return wait_ready(self.hv, self.name, self.console_log, self.ssh(), self.started_at, timeout)

    # -- teardown -------------------------------------------------------------------------
    def delete(self) -> None:
        dom = self.hv.lookup(self.name)
        if dom:
            dom.undefine()
        PortAllocator().release(self.owner)
        self.hostkeys.forget()
        shutil.rmtree(self.dir, ignore_errors=True)
        self.console_log.unlink(missing_ok=True)


def wait_ready(hv: Hypervisor, name: str, console_log: Path, client: GuestSSH, started_at: float,
               timeout: float = 600.0, extra: str | None = None) -> Readiness:
    """Wait for cloud-init's final stage on the console (no guest CPU spent on polling),
    then over SSH wait for cloud-init's result.json and read it, the boot id and the stamp
    (and the output of `extra`, a command run right after)."""
    deadline = started_at + timeout
    t_console = None
    while time.monotonic() < deadline - 30:
        if console_finished(console_log):
            t_console = time.monotonic() - started_at
            break
        dom = hv.lookup(name)
        if dom is None or dom.state() not in ("running", "paused"):
            raise RuntimeError(f"{name} stopped while booting; console: {console_log}")
        time.sleep(0.25)
    client.wait(deadline)
    t_ssh = time.monotonic() - started_at
    # One round trip, no Python in the guest: cloud-init writes result.json when its final
    # stage is over (`cloud-init status --wait` would cost seconds of guest CPU under TCG).
    try:
        cmd = READINESS_PROBE + (f"; echo {EXTRA_SEP}; {extra}" if extra else "")
        res = client.run(cmd, timeout=max(1.0, deadline - time.monotonic()))
    finally:
        client.close()
    t_ci = time.monotonic() - started_at
    main, _, extra_out = res.stdout.partition(EXTRA_SEP + "\n")
    status, boot_id, stamp = parse_readiness(main)
    return Readiness(status, boot_id, stamp,
                     {"consoleCloudInitFinished": t_console, "ssh": t_ssh, "cloudInitDone": t_ci}, extra_out)


def parse_readiness(out: str) -> tuple[str, str, dict]:
    """(cloud-init status, boot id, image stamp) from READINESS_PROBE's output."""
    parts = out.split(SEP + "\n")
    result_raw, boot_id, stamp_raw = (parts + ["", "", ""])[:3]
    try:
        errors = json.loads(result_raw).get("v1", {}).get("errors", [])
        status = "error" if errors else "done"
    except json.JSONDecodeError:
        status = "unknown"
    try:
        stamp = json.loads(stamp_raw) if stamp_raw.strip() else {}
    except json.JSONDecodeError:
        stamp = {}
    return status, boot_id.strip(), stamp


def console_finished(path: Path) -> bool:
    """cloud-init's final stage prints 'finished at' on the console."""
    try:
        data = path.read_bytes()
    except OSError:
        return False
    return b"Cloud-init v." in data and b" finished at " in data
