"""A real OpenSSH server for tests: `/usr/sbin/sshd -D -e` on 127.0.0.1 and a free port, with
its own host key, authorized key, pid file and log, stopped with nothing left behind.

    with Sshd(tmp_path / "sshd", public_key_line) as sshd:
        sshd.port, sshd.accepted(), sshd.restart(), sshd.pause(), sshd.resume()
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Self

from controller.virt.ssh import ensure_keypair

SSHD = "/usr/sbin/sshd"
PRIVSEP = Path("/run/sshd")  # compiled into Debian's sshd: it must exist


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (sshd's per-connection children call setsid: not its group)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


class Sshd:
    def __init__(self, folder: Path, authorized_key: str, user: str = "root") -> None:
        self.folder, self.user = folder, user
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        (folder / "authorized_keys").write_text(authorized_key.strip() + "\n")
        self.port = free_port()
        self.log = folder / "sshd.log"
        self.proc: subprocess.Popen | None = None
        self.new_host_key()

    def new_host_key(self) -> None:
        """A fresh host key (takes effect at the next start)."""
        for name in ("id_ed25519", "id_ed25519.pub"):
            (self.folder / name).unlink(missing_ok=True)
        ensure_keypair(self.folder)

    def config(self) -> Path:
        f = self.folder
        conf = f / "sshd_config"
        conf.write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {f / 'id_ed25519'}",
            f"PidFile {f / 'sshd.pid'}", f"AuthorizedKeysFile {f / 'authorized_keys'}",
            "UsePAM no", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes", "PermitRootLogin prohibit-password", "StrictModes no",
            "AllowTcpForwarding local", "GatewayPorts no", "X11Forwarding no", "PermitTunnel no",
            "PrintMotd no", "LogLevel VERBOSE", "MaxStartups 100", ""]))
        return conf

    def start(self, timeout: float = 10.0) -> None:
        PRIVSEP.mkdir(mode=0o755, exist_ok=True)
        since = len(self.log_text())
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.config())], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + timeout
        while f"Server listening on 127.0.0.1 port {self.port}." not in self.log_text()[since:]:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"sshd did not start:\n{self.log_text()}")
            time.sleep(0.02)

    def pids(self) -> list[int]:
        """The listener and all its children (one set per SSH connection)."""
        if self.proc is None or self.proc.poll() is not None:
            return []
        return [self.proc.pid, *descendants(self.proc.pid)]

    def stop(self) -> None:
        """End the listener and every connection's processes; nothing is left running."""
        if self.proc is None:
            return
        pids = self.pids()
        for sig in (signal.SIGCONT, signal.SIGKILL):
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        self.proc.wait(10)
        deadline = time.monotonic() + 5
        while any(Path(f"/proc/{p}").exists() and _state(p) != "Z" for p in pids) and time.monotonic() < deadline:
            time.sleep(0.02)
        self.proc = None
        (self.folder / "sshd.pid").unlink(missing_ok=True)

    def restart(self) -> None:
        """Stop (dropping every connection) and start again on the same port."""
        self.stop()
        self.start()

    def pause(self) -> None:
        """SIGSTOP everything: connections stay open at the TCP level but nothing answers."""
        for pid in self.pids():
            os.kill(pid, signal.SIGSTOP)

    def resume(self) -> None:
        for pid in self.pids():
            os.kill(pid, signal.SIGCONT)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def accepted(self) -> int:
        """SSH connections that authenticated so far (sshd's log)."""
        return self.log_text().count(f"Accepted publickey for {self.user} from 127.0.0.1")

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return "X"
