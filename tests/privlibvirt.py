"""A libvirtd (and virtlogd) of the test's own, in new mount and PID namespaces and, by default,
a new network namespace: its config, state, runtime and logs are bind mounts of folders under
`root`, so the host's libvirtd, its domains and networks, and the host's network are never
touched. Commands run inside with `run()`. Closing kills everything in the PID namespace.

    with PrivateLibvirt(tmp / "ns") as ns:
        ns.run(["virsh", "list"])

With `tcp_port` (and `own_network=False`) the daemon also listens on 127.0.0.1:PORT without
authentication (`--listen`, `listen_tcp`, `auth_tcp = "none"`, no TLS): a second "host" reached as
`ns.uri` = `qemu+tcp://127.0.0.1:PORT/system`.
"""
from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Self

# host path -> folder under root
CAPS = Path(__file__).resolve().parent.parent / ".cache" / "libvirt-qemu"  # kept between runs
# PID 1 of the namespace: reaps orphans (the daemons' children) and reads a pipe from this
# process; when that closes (closed, or this process died), it exits and the kernel kills
# everything in the namespace.
_INIT = """
import os, sys, threading, time
def reap():
    while True:
        try:
            os.wait()
        except ChildProcessError:
            time.sleep(0.2)
threading.Thread(target=reap, daemon=True).start()
sys.stdin.buffer.read()
"""
MOUNTS = {"/etc/libvirt": "etc", "/run/libvirt": "run", "/var/lib/libvirt": "lib",
          "/var/cache/libvirt": "cache", "/var/log/libvirt": "log"}


class PrivateLibvirt:
    def __init__(self, root: Path, own_network: bool = True, pool: str = "default", caps: Path | None = CAPS,
                 tcp_port: int | None = None):
        if tcp_port is not None and own_network:
            raise ValueError("tcp_port needs own_network=False (the host's loopback)")
        self.root, self.own_network, self.pool, self.caps = Path(root), own_network, pool, caps
        self.tcp_port = tcp_port
        self.proc: subprocess.Popen | None = None
        self.pid = 0  # PID 1 of the namespace, as the host sees it

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self, timeout: float = 120.0) -> None:
        try:
            self._start(timeout)
        except BaseException:
            self.close()
            raise

    def _start(self, timeout: float) -> None:
        for sub in MOUNTS.values():
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        shutil.copytree("/etc/libvirt", self.root / "etc", dirs_exist_ok=True, symlinks=True)
        # The host's config, without its networks, pools and domains.
        for d in ("qemu/networks", "storage"):
            shutil.rmtree(self.root / "etc" / d, ignore_errors=True)
        for xml in (self.root / "etc/qemu").glob("*.xml"):
            xml.unlink()
        (self.root / "lib/images").mkdir(exist_ok=True)
        if self.tcp_port is not None:
            with (self.root / "etc/libvirtd.conf").open("a") as conf:
                conf.write(f'\nlisten_tls = 0\nlisten_tcp = 1\nlisten_addr = "127.0.0.1"\n'
                           f'tcp_port = "{self.tcp_port}"\nauth_tcp = "none"\n')
        # QEMU's capabilities as libvirt probed them before (a minute per binary under TCG).
        for known in (Path("/var/cache/libvirt/qemu"), self.caps):
            if known and known.is_dir():
                shutil.copytree(known, self.root / "cache/qemu", dirs_exist_ok=True)
        binds = " && ".join(f"mount --bind {shlex.quote(str(self.root / sub))} {host}"
                            for host, sub in MOUNTS.items())
        script = (f"{binds} && " + ("ip link set lo up && " if self.own_network else "")
                  + f"virtlogd -d -p /run/libvirt/virtlogd.pid && {self.daemon_command}"
                  f" && exec {shlex.quote(sys.executable)} -c {shlex.quote(_INIT)}")
        flags = ["--mount", "--propagation", "private", "--pid", "--fork", "--mount-proc"]
        if self.own_network:
            flags.insert(0, "--net")
        self.proc = subprocess.Popen(["unshare", *flags, "sh", "-ec", script], stdin=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, stderr=(self.root / "ns.log").open("w"))
        sock = self.root / "run/libvirt-sock"
        deadline = time.monotonic() + timeout
        while not (sock.exists() and self._child()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = (self.root / "ns.log").read_text()[-2000:]
                raise RuntimeError(f"private libvirtd did not start: {log or 'no output'}")
            time.sleep(0.1)
        self.pid = self._child()
        self._wait_virsh(deadline)
        if self.pool:
            self.run(["virsh", "-q", "pool-define-as", self.pool, "dir", "--target", "/var/lib/libvirt/images"])
            self.run(["virsh", "-q", "pool-start", self.pool])

    @property
    def daemon_command(self) -> str:
        """The shell command that starts libvirtd inside (again, after `stop_daemon`)."""
        return "libvirtd -d -p /run/libvirt/libvirtd.pid" + (" --listen" if self.tcp_port is not None else "")

    @property
    def uri(self) -> str:
        """The URI the host reaches this daemon at (TCP on 127.0.0.1 with `tcp_port`)."""
        if self.tcp_port is None:
            raise ValueError("no tcp_port: the daemon is reached only inside (`run`)")
        return f"qemu+tcp://127.0.0.1:{self.tcp_port}/system"

    def signal_daemon(self, sig: int) -> None:
        """Send `sig` to libvirtd (SIGSTOP: a hung host, SIGKILL: a dead one)."""
        self.run(["sh", "-c", f"kill -{int(sig)} $(cat /run/libvirt/libvirtd.pid)"])

    def start_daemon(self, timeout: float = 60.0) -> None:
        """Start libvirtd again after SIGKILL (its pid file is stale then)."""
        self.run(["sh", "-c", f"rm -f /run/libvirt/libvirtd.pid && {self.daemon_command}"])
        self._wait_virsh(time.monotonic() + timeout)

    def _child(self) -> int:
        try:
            kids = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        except OSError:
            return 0
        return int(kids[0]) if kids else 0

    def _wait_virsh(self, deadline: float) -> None:
        while True:
            try:
                res = self.run(["virsh", "-q", "pool-list", "--all"], check=False, timeout=20)
                if res.returncode == 0:
                    return
            except subprocess.TimeoutExpired:
                res = subprocess.CompletedProcess([], 1, "", "virsh pool-list timed out")
            if time.monotonic() > deadline:
                raise RuntimeError(f"private libvirtd does not answer: {res.stderr.strip()}")
            time.sleep(0.2)

    def command(self, argv: list[str], cwd: str | Path | None = None) -> list[str]:
        """`argv` as run inside the namespaces, in `cwd` (default: this process's)."""
        return ["nsenter", "-t", str(self.pid), "--mount", "--pid", *(["--net"] if self.own_network else []),
                f"--wd={cwd or os.getcwd()}", "--", *argv]

    def run(self, argv: list[str], check: bool = True, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
        res = subprocess.run(self.command(argv), capture_output=True, text=True, timeout=timeout, **kw)
        if check and res.returncode != 0:
            raise RuntimeError(f"{shlex.join(argv)} exited {res.returncode}: {(res.stderr or res.stdout).strip()[-800:]}")
        return res

    def leftovers(self) -> dict[str, list[str]]:
        """Domains, networks and volumes (in the test's pool) still defined, and processes still running
        besides the daemons and the namespace's keeper."""
        def lines(argv):
            return [x.strip() for x in self.run(argv, check=False).stdout.splitlines() if x.strip()]
        ps = [p.split(None, 1) for p in lines(["ps", "-e", "-o", "pid=,comm="])]
        return {"domains": lines(["virsh", "-q", "list", "--all", "--name"]),
                "networks": lines(["virsh", "-q", "net-list", "--all", "--name"]),
                "volumes": lines(["virsh", "-q", "vol-list", self.pool]) if self.pool else [],
                "processes": [c for pid, c in ps if pid != "1" and c not in ("libvirtd", "virtlogd", "ps", "nsenter")]}

    def close(self) -> None:
        """Kill every process in the namespaces (their PID 1 first), then wait for the keeper."""
        if self.proc is None:
            return
        if self.caps and (self.root / "cache/qemu").is_dir():
            shutil.copytree(self.root / "cache/qemu", self.caps, dirs_exist_ok=True)
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc, self.pid = None, 0
