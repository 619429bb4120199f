"""One instance as libvirt sees it: its disks, its seed, its domain XML, its boot and wait.

The disks themselves are volumes of the instance's host pool (disks.py); data disks (qcow2, one
per LUN, serial `lun-N`) are never opened by the lab: only the guest writes to them.
"""
from __future__ import annotations

import base64
import functools
import json
import os
import random
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from controller.core.settings import LabPaths
from controller.model import extensions as ext_mod
from controller.model.instance import Instance
from controller.model.jsonmap import from_json
from controller.model.scaleset import CLOUD_CONFIG, VirtualMachineProfile
from controller.virt import accel as accel_mod
from controller.virt import cloudinit
from controller.virt.domain_xml import Disk, DomainSpec, Forward, cache_mode, render
from controller.virt.hypervisor import Domain, Hypervisor
from controller.virt.reach import Route
from controller.virt.readiness import Readiness, run_as_owner, wait_ready
from controller.virt.seed import seed_iso
from controller.virt.ssh import GuestSSH, PinnedHostKeys, ensure_keypair


def typed_profile(inst: Instance) -> VirtualMachineProfile:
    return from_json(VirtualMachineProfile, inst.profile["vm"], "$.virtualMachineProfile")


def console_log(paths: LabPaths, inst: Instance) -> Path:
    return paths.logs / f"{inst.domain}.console.log"


def hostkeys(paths: LabPaths, inst: Instance) -> PinnedHostKeys:
    return PinnedHostKeys(paths.keys / "hostkeys", inst.domain)


def ssh(paths: LabPaths, inst: Instance, hv: Hypervisor | None = None, route: Route | None = None) -> GuestSSH:
    """SSH through the 127.0.0.1 forward (through `route`'s tunnel for a guest on another host),
    or (NAT mode) to the guest's leased address."""
    user = inst.profile["vm"]["osProfile"].get("adminUsername", "azureuser")
    if inst.profile.get("network") == "nat" and hv is not None:
        return GuestSSH(22, user, paths.keys / "id_ed25519", hostkeys(paths, inst),
                        host=lambda: guest_address(hv, inst.domain))
    sock = route.connector() if route is not None else None
    return GuestSSH(inst.ssh_port, user, paths.keys / "id_ed25519", hostkeys(paths, inst), sock=sock)


def guest_address(hv: Hypervisor, domain: str) -> str | None:
    """The IPv4 address libvirt's DHCP leased to a NAT-mode guest."""
    dom = hv.lookup(domain)
    return dom.lease_address() if dom is not None else None


_NAMES = random.Random(secrets.randbits(64))  # names need to be unique, not secret: no syscall each


def new_ci_instance_id(inst: Instance) -> str:
    """cloud-init runs again when the instance-id changes: a new one for every new OS disk."""
    return f"{inst.domain}-{_NAMES.getrandbits(48):012x}"


def instance_seed(paths: LabPaths, inst: Instance, ci_instance_id: str) -> bytes:
    """The NoCloud seed ISO of the instance's applied profile (it may hold protectedSettings)."""
    profile = typed_profile(inst)
    osp = profile.osProfile
    _, lab_key = ensure_keypair(paths.keys)
    keys = [lab_key, *(k.keyData for k in osp.linuxConfiguration.ssh.publicKeys)]
    exts = profile.extensionProfile.extensions
    write_files, runcmd = [], []
    if exts:
        config = ext_mod.runner_config(exts)
        write_files = [
            {"path": ext_mod.GUEST_RUNNER, "permissions": "0700",
             "content": ext_mod.RUNNER_SOURCE.read_text()},
            {"path": ext_mod.GUEST_CONFIG, "permissions": "0600", "encoding": "b64",
             "content": base64.b64encode(json.dumps(config).encode()).decode()},
        ]
        runcmd = [f"python3 {ext_mod.GUEST_RUNNER} || true"]  # a failed extension is its status, not cloud-init's
        if any(e.properties.type == "ApplicationHealthLinux" for e in exts):
            write_files += [{"path": f"{ext_mod.GUEST_AGENT_HOME}/agent/{f.name}", "permissions": "0644",
                             "content": f.read_text()} for f in ext_mod.agent_sources()]
    custom = base64.b64decode(osp.customData) if osp.customData else None
    cloud_configs = [e.properties.settings["cloudConfig"] for e in ext_mod.ordered(exts)
                     if (e.properties.publisher, e.properties.type) == CLOUD_CONFIG]
    docs = cloudinit.render(cloudinit.SeedSpec(
        instance_id=ci_instance_id, hostname=inst.computer_name, admin_user=osp.adminUsername,
        ssh_keys=keys, mac=mac_of(inst), runcmd=runcmd, write_files=write_files, custom_data=custom,
        cloud_configs=cloud_configs, grow_root=profile.storageProfile.osDisk.diskSizeGB is not None,
        password_hash=osp.adminPasswordHash))
    return seed_iso(docs["user-data"], docs["meta-data"], docs["network-config"])


def _bare_spec(inst: Instance) -> DomainSpec:
    return DomainSpec(name=inst.domain, home=Path("/"), disks=[], console_log=Path("/"), forwards=[])


def mac_of(inst: Instance) -> str:
    return _bare_spec(inst).mac


def domain_uuid(inst: Instance) -> str:
    return _bare_spec(inst).uuid


@functools.cache
def direct_io(directory: Path) -> bool:
    """Whether files in `directory` open with O_DIRECT (libvirt's cache='none'); tmpfs says no."""
    probe = directory / f".direct-{os.getpid()}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        os.close(os.open(probe, os.O_CREAT | os.O_RDWR | getattr(os, "O_DIRECT", 0), 0o600))
        return hasattr(os, "O_DIRECT")
    except OSError:
        return False
    finally:
        probe.unlink(missing_ok=True)


def _target(i: int) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return "vd" + (letters[i] if i < 26 else letters[i // 26 - 1] + letters[i % 26])


def domain_xml(paths: LabPaths, inst: Instance, data_disks: dict[int, str], accel: accel_mod.Accel,
               here: bool = True) -> str:
    """The domain on the instance's OS disk and seed; `data_disks`: LUN -> volume path (disks.py).
    On another host (`here` False) paths of this machine mean nothing: the console is a pty, and
    qemu runs as that host's libvirt makes it (not as the lab's owner here)."""
    profile = typed_profile(inst)
    storage = profile.storageProfile
    direct = direct_io(paths.disks)
    disks = [Disk(Path(inst.os_disk), "vda", cache=cache_mode(storage.osDisk.caching, direct))]
    for i, d in enumerate(sorted(storage.dataDisks, key=lambda d: d.lun)):
        disks.append(Disk(Path(data_disks[d.lun]), _target(i + 1), serial=f"lun-{d.lun}",
                          cache=cache_mode(d.caching, direct)))
    disks.append(Disk(Path(inst.seed), _target(len(disks)), format="raw", readonly=True))
    spec = DomainSpec(
        name=inst.domain, home=paths.home, disks=disks,
        console_log=console_log(paths, inst) if here else None,
        forwards=[Forward(h, g) for g, h in sorted(inst.ports.items())], domain_type=accel.domain_type,
        memory_mib=int(inst.profile["memoryMiB"]), vcpus=int(inst.profile["vcpus"]),
        scale_set=inst.scale_set, instance_id=str(inst.instance_id),
        run_as=run_as_owner(paths.home) if here else None,
        network=inst.profile.get("network", "user"),
        title=f"{inst.scale_set} instance {inst.instance_id} ({inst.computer_name})")
    return render(spec)


def boot(hv: Hypervisor, paths: LabPaths, xml: str, inst: Instance) -> tuple[Domain, float]:
    """(Re)define the domain and start it; returns it and the monotonic start time."""
    console_log(paths, inst).unlink(missing_ok=True)
    dom = hv.define(xml)
    started = time.monotonic()
    dom.start()
    return dom, started


@dataclass
class Booted:
    readiness: Readiness
    extensions: list[dict]


def wait(hv: Hypervisor, paths: LabPaths, inst: Instance, started: float, timeout: float,
         route: Route | None = None, here: bool = True) -> Booted:
    """Wait for the guest to be ready; a guest on another host (not `here`, or `route.remote`)
    has no console log here, so only SSH tells."""
    log = None if not here or (route is not None and route.remote) else console_log(paths, inst)
    r = wait_ready(hv, inst.domain, log, ssh(paths, inst, hv, route), started, timeout,
                   extra=ext_mod.READ_STATUSES)
    return Booted(r, ext_mod.parse_statuses(r.extra))
