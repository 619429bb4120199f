"""Regions: named sets of libvirt hosts (a URI and a storage pool each), typed and validated.

A host's position in its region is its fault domain. `local` always exists: the lab's own
libvirt with a lab-owned `dir` pool. A location that names no configured region is a label
on the local host (`configured=False`), as it was before regions.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

from controller.core.errors import ModelError
from controller.model.checks import check_region_name
from controller.model.extcheck import shown

LOCAL = "local"
SCHEMES = ("qemu", "qemu+ssh", "qemu+tcp", "qemu+tls", "qemu+unix", "qemu+libssh2", "test")
REMOTE = ("qemu+ssh", "qemu+tcp", "qemu+tls", "qemu+libssh2")  # need a host name
SSH_SCHEMES = ("qemu+ssh", "qemu+libssh2")  # `ssh` defaults from these URIs
MAX_HOSTS = 100
_POOL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_USER = re.compile(r"[A-Za-z0-9._][A-Za-z0-9._-]{0,31}")
_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]{2,45}\]")
_CONTROL = re.compile(r"[\x00-\x20\x7f]")


def _ssh_default(uri: str) -> str | None:
    """`user@host[:port]` of a qemu+ssh URI (None for other schemes or an unreadable URI)."""
    try:
        u = urlsplit(uri)
        port = u.port
    except ValueError:
        return None
    if u.scheme.lower() not in SSH_SCHEMES or not u.hostname:
        return None
    host = f"[{u.hostname}]" if ":" in u.hostname else u.hostname
    return f"{u.username + '@' if u.username else ''}{host}{f':{port}' if port else ''}"


@dataclass(frozen=True)
class Host:
    """One libvirt host of a region. `pool`: the storage pool the lab keeps its volumes in;
    `pool_path`: where a `dir` pool of that name is made if missing; `ssh`: `[user@]host[:port]`
    for SSH tunnels to the guests (defaults to a qemu+ssh URI's user, host and port)."""

    uri: str
    pool: str
    pool_path: str | None = None
    ssh: str | None = None

    def __post_init__(self) -> None:
        if self.ssh is None:
            object.__setattr__(self, "ssh", _ssh_default(self.uri))

    def to_json(self, fault_domain: int) -> dict:
        return {"faultDomain": fault_domain, "uri": self.uri, "pool": self.pool,
                "poolPath": self.pool_path, "ssh": self.ssh}


@dataclass(frozen=True)
class Region:
    """A region; `configured`: added with `scaleset region add` (False: `local`, or a label)."""

    name: str
    hosts: tuple[Host, ...] = field(default_factory=tuple)
    configured: bool = True

    def to_json(self) -> dict:
        return {"name": self.name, "configured": self.configured,
                "hosts": [h.to_json(fd) for fd, h in enumerate(self.hosts)]}


def local_host(home: Path, uri: str) -> Host:
    """The lab's own libvirt (`uri`) with its `dir` pool `scaleset-lab-<8 hex of home>` at `<home>/pool`."""
    tag = hashlib.sha256(str(home).encode()).hexdigest()[:8]
    return Host(uri=uri, pool=f"scaleset-lab-{tag}", pool_path=str(Path(home) / "pool"))


def local_region(host: Host, name: str = LOCAL) -> Region:
    """`local` (or a location naming no configured region: a label on the local host)."""
    return Region(name=name, hosts=(host,), configured=False)


def is_local(name: str) -> bool:
    return name.lower() == LOCAL


def _split(uri: str, path: str) -> SplitResult:
    if not uri or len(uri) > 1024 or _CONTROL.search(uri):
        raise ModelError(path, "is not a libvirt URI: 1-1024 characters without spaces or control characters")
    try:
        u = urlsplit(uri)
        u.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise ModelError(path, f"'{shown(uri)}' is not a libvirt URI ({exc})") from None
    return u


def check_uri(uri: str, path: str) -> None:
    """A libvirt URI: SCHEME://[user@][host[:port]]/path[?query] with a scheme the lab speaks."""
    u = _split(uri, path)
    example = "e.g. qemu+ssh://root@h1/system, qemu+tcp://127.0.0.1:16509/system, qemu:///system"
    if u.scheme.lower() not in SCHEMES or "://" not in uri:
        raise ModelError(path, f"'{shown(uri)}' is not a libvirt URI with a scheme of {', '.join(SCHEMES)} "
                               f"({example})")
    if not u.path.startswith("/") or u.path == "/":
        raise ModelError(path, f"'{shown(uri)}' names no driver instance after the host (/system, /session, "
                               f"/default, ...; {example})")
    if u.scheme.lower() in REMOTE and not u.hostname:
        raise ModelError(path, f"'{shown(uri)}': {u.scheme} needs a host name ({u.scheme}://HOST/system)")
    if u.scheme.lower() == "qemu+unix" and u.netloc:
        raise ModelError(path, f"'{shown(uri)}': qemu+unix is this machine's socket and takes no host")
    if u.netloc and not _HOSTNAME.fullmatch(re.sub(r":[0-9]*$", "", u.netloc.rpartition("@")[2])):
        raise ModelError(path, f"'{shown(uri)}' has no valid host name")


def check_ssh(ssh: str, path: str) -> None:
    """`[user@]host[:port]`."""
    user, _, rest = ssh.rpartition("@")
    hostpart, port = rest, ""
    if not rest.endswith("]") and ":" in rest:
        hostpart, _, port = rest.rpartition(":")
    ok = (not user or _USER.fullmatch(user)) and _HOSTNAME.fullmatch(hostpart) and \
        (not port or (port.isdecimal() and 1 <= int(port) <= 65535))
    if not ok or len(ssh) > 300:
        raise ModelError(path, f"'{shown(ssh)}' is not [user@]host[:port] (e.g. root@h1 or root@h1:2222)")


def check_pool(pool: str, path: str) -> None:
    if not _POOL.fullmatch(pool):
        raise ModelError(path, f"'{shown(pool)}' is not a pool name: 1-64 letters, digits, '.', '-' or '_', "
                               "starting with a letter or digit")


def check_pool_path(pool_path: str, path: str) -> None:
    p = Path(pool_path)
    if _CONTROL.search(pool_path) or len(pool_path) > 1024 or not p.is_absolute() or ".." in p.parts:
        raise ModelError(path, f"'{shown(pool_path)}' is not an absolute directory path (no '..', no spaces "
                               "or control characters)")


def check_host(host: Host, path: str) -> None:
    check_uri(host.uri, f"{path}.uri")
    check_pool(host.pool, f"{path}.pool")
    if host.pool_path is not None:
        check_pool_path(host.pool_path, f"{path}.poolPath")
    if host.ssh is not None:
        check_ssh(host.ssh, f"{path}.ssh")


def validate_region(region: Region) -> None:
    """Raise ModelError (JSON path: $.name, $.hosts[i].uri, ...) for the first thing wrong."""
    check_region_name(region.name, "$.name")
    if not region.hosts:
        raise ModelError("$.hosts", f"region '{region.name}' needs at least one host")
    if len(region.hosts) > MAX_HOSTS:
        raise ModelError("$.hosts", f"has more than {MAX_HOSTS} hosts")
    seen: dict[tuple[str, str], int] = {}
    for i, h in enumerate(region.hosts):
        check_host(h, f"$.hosts[{i}]")
        key = (h.uri, h.pool)
        if key in seen:
            raise ModelError(f"$.hosts[{i}]", f"{h.uri} with pool {h.pool} is already host {seen[key]} of the "
                                              "region (a host and pool are one fault domain)")
        seen[key] = i
