"""A thin pair of classes over libvirt: the Hypervisor (a connection) and its Domains."""
from __future__ import annotations

import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass

import libvirt

from controller.core import signals
from controller.core.errors import HypervisorError
from controller.virt.domain_xml import METADATA_NS

# Silence libvirt's default error printer; errors arrive as exceptions.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)

START_TRIES = 3  # a start that fails with EAGAIN (os.strerror(errno.EAGAIN)) is tried this often
EAGAIN = "Resource temporarily unavailable"
KEEPALIVE = (5, 3)  # seconds between probes, unanswered probes before libvirt drops the connection
OPEN_TIMEOUT = 25.0  # seconds: libvirt's open has no timeout of its own (a stopped daemon: forever)
_events = threading.Lock()
_events_started = False


def _event_loop() -> None:
    """libvirt's default event loop in a daemon thread, once per process: keepalive needs it."""
    global _events_started
    with _events:
        if _events_started:
            return
        libvirt.virEventRegisterDefaultImpl()

        def run() -> None:
            while True:
                libvirt.virEventRunDefaultImpl()

        threading.Thread(target=run, name="libvirt-events", daemon=True).start()
        _events_started = True

_STATES = {
    libvirt.VIR_DOMAIN_NOSTATE: "unknown", libvirt.VIR_DOMAIN_RUNNING: "running",
    libvirt.VIR_DOMAIN_BLOCKED: "running", libvirt.VIR_DOMAIN_PAUSED: "paused",
    libvirt.VIR_DOMAIN_SHUTDOWN: "stopping", libvirt.VIR_DOMAIN_SHUTOFF: "stopped",
    libvirt.VIR_DOMAIN_CRASHED: "crashed", libvirt.VIR_DOMAIN_PMSUSPENDED: "suspended",
}
_SHUTOFF_WHY = {
    libvirt.VIR_DOMAIN_SHUTOFF_SHUTDOWN: "the guest powered itself off",
    libvirt.VIR_DOMAIN_SHUTOFF_DESTROYED: "it was destroyed (a forced stop, by libvirt or another client)",
    libvirt.VIR_DOMAIN_SHUTOFF_CRASHED: "qemu crashed",
    libvirt.VIR_DOMAIN_SHUTOFF_FAILED: "qemu failed to start",
    libvirt.VIR_DOMAIN_SHUTOFF_DAEMON: "libvirtd stopped it (it could not reconnect to its qemu)",
}


@dataclass(frozen=True)
class LabTag:
    """What the lab wrote into a domain's <metadata>."""
    home: str
    scale_set: str
    instance_id: str


class Domain:
    def __init__(self, dom: libvirt.virDomain) -> None:
        self._dom = dom

    @property
    def name(self) -> str:
        return self._dom.name()

    def uuid(self) -> str:
        return self._dom.UUIDString()

    def state(self) -> str:
        st, _ = self._dom.state()
        return _STATES.get(st, "unknown")

    def io_error(self) -> bool:
        """Paused by qemu on a disk I/O error (a full disk, mostly): it waits, never boots on."""
        st, reason = self._dom.state()
        return st == libvirt.VIR_DOMAIN_PAUSED and reason == libvirt.VIR_DOMAIN_PAUSED_IOERROR

    def why_stopped(self) -> str:
        """libvirt's reason for a domain that is not running, in words."""
        st, reason = self._dom.state()
        if st == libvirt.VIR_DOMAIN_SHUTOFF:
            return _SHUTOFF_WHY.get(reason, f"shut off (libvirt's reason {reason})")
        return _STATES.get(st, "unknown")

    def reset(self) -> None:
        """A hard reset of the running guest (same qemu process, same console file)."""
        self._dom.reset(0)

    def start(self, tries: int = START_TRIES) -> None:
        """Start it (a no-op when running). A start that fails with EAGAIN is tried again: libvirtd's
        cgroup BPF program load gives up when a signal is pending (seen with creates at once)."""
        for attempt in range(1, tries + 1):
            if self._dom.isActive():
                return
            try:
                self._dom.create()
                return
            except libvirt.libvirtError as exc:
                why = exc.get_error_message() or str(exc)
                if EAGAIN not in why or attempt == tries:
                    raise HypervisorError(f"cannot start {self.name}: {why}") from exc
            signals.sleep(0.25 * attempt)

    def shutdown(self, timeout: float = 60.0) -> None:
        """ACPI power-off, then hard stop after `timeout`."""
        if not self._dom.isActive():
            return
        try:
            self._dom.shutdown()
        except libvirt.libvirtError:
            pass
        deadline = time.monotonic() + timeout
        while self._dom.isActive() and time.monotonic() < deadline:
            signals.sleep(0.5)  # a signal ends the wait at once
        self.destroy()

    def destroy(self) -> None:
        if self._dom.isActive():
            try:
                self._dom.destroy()
            except libvirt.libvirtError:
                if self._dom.isActive():
                    raise

    def undefine(self) -> None:
        self.destroy()
        self._dom.undefine()

    def lease_address(self) -> str | None:
        """First IPv4 address from libvirt's DHCP leases (NAT mode), None before the lease."""
        try:
            ifaces = self._dom.interfaceAddresses(libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE)
        except libvirt.libvirtError:
            return None
        for iface in ifaces.values():
            for addr in iface.get("addrs") or []:
                if addr.get("type") == libvirt.VIR_IP_ADDR_TYPE_IPV4:
                    return addr["addr"]
        return None

    def xml(self) -> str:
        return self._dom.XMLDesc(0)

    def lab_tag(self) -> LabTag | None:
        try:
            raw = self._dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, METADATA_NS)
        except libvirt.libvirtError:
            return None
        root = ET.fromstring(raw)

        def text(tag: str) -> str:
            # libvirt hands the element back without our namespace prefix: match local names
            for el in root:
                if el.tag.rsplit("}", 1)[-1] == tag:
                    return el.text or ""
            return ""

        return LabTag(text("home"), text("scaleSet"), text("instanceId"))


def _open(uri: str, timeout: float) -> libvirt.virConnect:
    """libvirt.open in a thread, given up after `timeout` (a late connection is closed when it comes)."""
    out: dict = {}
    lock = threading.Lock()

    def run() -> None:
        try:
            conn = libvirt.open(uri)
        except libvirt.libvirtError as exc:
            out["error"] = exc
            return
        with lock:
            if out.get("late"):
                try:
                    conn.close()
                except libvirt.libvirtError:
                    pass
            else:
                out["conn"] = conn

    t = threading.Thread(target=run, name=f"libvirt-open {uri}", daemon=True)
    t.start()
    t.join(timeout)
    with lock:
        out["late"] = "conn" not in out and "error" not in out
    if out["late"]:
        raise HypervisorError(f"cannot connect to libvirt at {uri}: no answer in {timeout:.0f} s "
                              "(the host or its libvirtd hangs)")
    if "error" in out:
        raise HypervisorError(f"cannot connect to libvirt at {uri}: {out['error'].get_error_message()} "
                              "(is libvirtd running? run `make setup`)") from out["error"]
    return out["conn"]


class Hypervisor:
    def __init__(self, uri: str, open_timeout: float = OPEN_TIMEOUT) -> None:
        """Connect to `uri`; on a remote daemon (qemu:///system included) with keepalive, so a call
        to a host that stops answering fails after about 5 + 5 * 3 s instead of hanging."""
        self.uri = uri
        _event_loop()
        self.conn = _open(uri, open_timeout)
        try:
            self.conn.setKeepAlive(*KEEPALIVE)
        except libvirt.libvirtError:  # a driver in this process (test:///default) has no keepalive
            pass

    def alive(self) -> bool:
        """False once libvirt closed the connection (missed keepalives, a restarted daemon)."""
        try:
            return self.conn.isAlive() == 1
        except libvirt.libvirtError:
            return False

    def close(self) -> None:
        try:
            self.conn.close()
        except libvirt.libvirtError:
            pass

    def define(self, xml: str) -> Domain:
        try:
            return Domain(self.conn.defineXML(xml))
        except libvirt.libvirtError as exc:
            raise HypervisorError(f"libvirt rejected the domain: {exc.get_error_message()}") from exc

    def lookup(self, name: str) -> Domain | None:
        """The domain, None when it is not defined; HypervisorError when libvirt cannot tell
        (a dead connection is not a missing domain)."""
        try:
            return Domain(self.conn.lookupByName(name))
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise HypervisorError(f"libvirt at {self.uri}: {exc.get_error_message()}") from exc

    def domains(self) -> list[Domain]:
        return [Domain(d) for d in self.conn.listAllDomains()]

    def states(self, names: Iterable[str], active_only: bool = False) -> dict[str, str | None]:
        """The state of each of these domains, None for one that is not defined (one listing of
        the domains, not a lookup each)."""
        out: dict[str, str | None] = dict.fromkeys(names)
        flags = libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE if active_only else 0
        for d in self.conn.listAllDomains(flags):
            try:
                if d.name() in out:
                    out[d.name()] = _STATES.get(d.state()[0], "unknown")
            except libvirt.libvirtError:  # gone since the listing
                pass
        return out

    def running(self, names: Iterable[str]) -> set[str]:
        """Which of these domains are running."""
        return {n for n, st in self.states(names, active_only=True).items() if st == "running"}

    def active_count(self) -> int:
        """How many guests run on this host (every domain, not only the lab's)."""
        return len(self.conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE))

    def available_mib(self) -> int | None:
        """The host's free memory plus its page cache, in MiB (None: the driver does not say)."""
        try:
            stats = self.conn.getMemoryStats(libvirt.VIR_NODE_MEMORY_STATS_ALL_CELLS)
        except libvirt.libvirtError:
            return None
        return sum(stats.get(k, 0) for k in ("free", "buffers", "cached")) // 1024

    def lab_domains(self, home: str) -> list[Domain]:
        """Domains this lab (identified by its home directory) created."""
        out = []
        for d in self.domains():
            tag = d.lab_tag()
            if tag and tag.home == home:
                out.append(d)
        return out


def attached_os_disk(hv: Hypervisor, domain: str) -> str | None:
    """The file libvirt has as the domain's first disk (vda), or None without a domain."""
    dom = hv.lookup(domain)
    if dom is None:
        return None
    for disk in ET.fromstring(dom.xml()).iter("disk"):
        target, source = disk.find("target"), disk.find("source")
        if target is not None and target.get("dev") == "vda" and source is not None:
            return source.get("file")
    return None
