"""Domain XML from the jinja2 template, XML-escaped: model values can never inject XML."""
from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

import jinja2

TEMPLATES = Path(__file__).resolve().parents[2] / "lab" / "templates"
METADATA_NS = "https://scaleset-lab.dev/xmlns/instance/1"
NIC_SLOT = "0x10"  # a PCI slot libvirt leaves free on the 'pc' machine
# The model's host caching as libvirt's disk cache mode: ReadWrite caches reads and writes in the
# host's page cache, ReadOnly reads only (writes reach the file before they complete), None neither
# (O_DIRECT; where the filesystem has no O_DIRECT, as tmpfs, writethrough is the nearest).
CACHE_MODES = {"readwrite": "writeback", "readonly": "writethrough", "none": "none"}


@dataclass(frozen=True)
class Disk:
    path: Path
    target: str  # vda, vdb, ...
    format: str = "qcow2"
    serial: str | None = None
    readonly: bool = False
    cache: str | None = None  # libvirt's cache mode (CACHE_MODES); None: libvirt's default


@dataclass(frozen=True)
class Forward:
    host: int
    guest: int


@dataclass
class DomainSpec:
    name: str
    home: Path
    disks: list[Disk]
    console_log: Path | None  # None: the console is a pty (a host that does not share our files)
    forwards: list[Forward]
    domain_type: str = "qemu"
    memory_mib: int = 512
    vcpus: int = 1
    scale_set: str = ""
    instance_id: str = ""
    run_as: str | None = None  # "+UID:+GID": qemu runs as the lab's owner
    title: str = ""
    network: str = "user"  # "user": QEMU user-mode net, 127.0.0.1 forwards; "nat": a libvirt network
    nat_network: str = "default"

    @property
    def uuid(self) -> str:
        """Stable per name: redefining the domain (a new OS disk) keeps its identity."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{METADATA_NS}#{self.name}"))

    @property
    def mac(self) -> str:
        """Stable per name: a reimage keeps the instance's address."""
        h = hashlib.sha256(self.name.encode()).digest()
        return "52:54:00:%02x:%02x:%02x" % (h[0], h[1], h[2])


_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES)),
    autoescape=True,  # every interpolation is XML-escaped
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)
_NETDEV_SAFE = re.compile(r"[0-9]+")


def netdev_arg(forwards: list[Forward]) -> str:
    """QEMU user-mode network; every forward listens on 127.0.0.1 only."""
    parts = ["user", "id=n0"]
    for f in forwards:
        if not (_NETDEV_SAFE.fullmatch(str(f.host)) and _NETDEV_SAFE.fullmatch(str(f.guest))):
            raise ValueError(f"forward ports must be integers: {f}")
        parts.append(f"hostfwd=tcp:127.0.0.1:{int(f.host)}-:{int(f.guest)}")
    return ",".join(parts)


def cache_mode(caching: str, direct_io: bool = True) -> str:
    """libvirt's cache mode for the model's `caching` (validated: None, ReadOnly or ReadWrite)."""
    mode = CACHE_MODES[caching.lower()]
    return mode if mode != "none" or direct_io else "writethrough"


def render(spec: DomainSpec) -> str:
    return _env.get_template("domain.xml.j2").render(
        name=spec.name, title=spec.title or spec.name, home=str(spec.home), scale_set=spec.scale_set,
        instance_id=spec.instance_id, metadata_ns=METADATA_NS, memory_mib=int(spec.memory_mib),
        vcpus=int(spec.vcpus), domain_type=spec.domain_type, run_as=spec.run_as,
        disks=[{"path": str(d.path), "target": d.target, "format": d.format, "serial": d.serial,
                "readonly": d.readonly, "cache": d.cache} for d in spec.disks],
        console_log=str(spec.console_log) if spec.console_log else None, forwards=spec.forwards,
        netdev=netdev_arg(spec.forwards),
        mac=spec.mac, nic_slot=NIC_SLOT, uuid=spec.uuid, network=spec.network,
        nat_network=spec.nat_network,
    )
