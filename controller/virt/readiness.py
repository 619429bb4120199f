"""The wait chain from a started domain to "ready".

The wait chain follows pycloudlib: domain started -> cloud-init's final message on the
console -> SSH answers -> cloud-init's result.json -> boot id and image stamp read back.
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import libvirt

from controller.core import signals
from controller.core.errors import HypervisorError
from controller.virt.hypervisor import Hypervisor
from controller.virt.ssh import GuestSSH

STAMP = "/etc/scaleset-lab/image.json"
SEP = "----scaleset-lab----"
EXTRA_SEP = "----scaleset-lab-extra----"
# A guest whose console stays empty this long after its start is reset once: our images print
# within seconds of userspace, and an early-boot hang (seen rarely under TCG) never recovers alone.
SILENT_RESET = 240.0
QEMU_LOGS = "/var/log/libvirt/qemu"  # the system libvirtd's per-domain qemu logs
log = logging.getLogger("scaleset.virt")
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


def wait_ready(hv: Hypervisor, name: str, console_log: Path | None, client: GuestSSH, started_at: float,
               timeout: float = 600.0, extra: str | None = None) -> Readiness:
    """Wait for cloud-init's final stage on the console (no guest CPU spent on polling; skipped
    when `console_log` is None: a guest on another host has its log there), then over SSH wait
    for cloud-init's result.json and read it, the boot id and the stamp (and the output of
    `extra`, a command run right after)."""
    deadline = started_at + timeout
    t_console = t_reset = None
    unanswered = False
    while console_log is not None and time.monotonic() < deadline - 30:
        if console_finished(console_log):
            t_console = time.monotonic() - started_at
            break
        try:
            if check_domain(hv, name, console_log, started_at, reset=t_reset is None):
                t_reset = time.monotonic() - started_at
        except (HypervisorError, libvirt.libvirtError) as exc:
            # libvirt did not answer this time (a stalled daemon, a connection it dropped): the
            # console and SSH still tell, and the deadline bounds the wait
            if not unanswered:
                log.warning("%s: libvirt does not answer while the guest boots (%s); waiting on", name, exc)
            unanswered = True
        signals.sleep(0.25)  # a signal ends the wait at once
    try:
        client.wait(deadline)
    except TimeoutError as exc:  # say where the boot stood: the console's last line
        if console_log is None:
            raise
        reset = f" (reset after {t_reset:.0f} s of a silent console)" if t_reset else ""
        raise TimeoutError(f"{exc}; the console's last line{reset}: {console_tail(console_log)!r}") from None
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
                     {"consoleCloudInitFinished": t_console, "ssh": t_ssh, "cloudInitDone": t_ci}
                     | ({"silentConsoleReset": t_reset} if t_reset else {}), extra_out)


def check_domain(hv: Hypervisor, name: str, console_log: Path, started_at: float, reset: bool) -> bool:
    """One look at a booting domain: RuntimeError saying why when it stopped or is paused on a
    disk I/O error; a hard reset (True returned) when `reset` and its console has been silent for
    SILENT_RESET seconds. One state call while it runs."""
    dom = hv.lookup(name)
    state = dom.state() if dom is not None else "gone"
    if state not in ("running", "paused"):
        why = "it is no longer defined" if dom is None else dom.why_stopped()
        raise RuntimeError(f"{name} stopped while booting: {why}; console: {console_log}"
                           + qemu_log_line(hv.uri, name))
    if state == "paused" and dom.io_error():
        free = shutil.disk_usage(console_log.parent).free / 2**20
        raise RuntimeError(f"{name} paused on a disk I/O error (a full disk? {free:.0f} MiB free "
                           f"beside its console log {console_log})")
    if reset and time.monotonic() - started_at > SILENT_RESET and not console_tail(console_log):
        dom.reset()
        log.warning("%s: the console was silent for %.0f s; the guest was reset once", name,
                    time.monotonic() - started_at)
        return True
    return False


def qemu_log_line(uri: str, name: str) -> str:
    """'; qemu's log: <its last line>' for a guest of this machine's system libvirtd, else ''."""
    path = Path(QEMU_LOGS) / f"{name}.log"
    last = console_tail(path) if uri == "qemu:///system" else ""
    return f"; qemu's log {path}: {last!r}" if last else ""


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


def console_tail(path: Path, limit: int = 160) -> str:
    """The last non-empty line of the console log (printable, at most `limit` characters)."""
    try:
        with path.open("rb") as f:
            f.seek(max(0, f.seek(0, 2) - 4096))
            lines = [ln.strip() for ln in f.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    last = lines[-1] if lines else ""
    return "".join(c for c in last if c.isprintable())[-limit:]
