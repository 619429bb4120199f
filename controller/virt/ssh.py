"""SSH to guests with paramiko: one ed25519 key per lab, host keys pinned on first contact."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from controller.core import signals
from controller.core.files import atomic_create, atomic_write

# paramiko's transport thread logs a traceback for every refused early connection.
logging.getLogger("paramiko.transport").setLevel(logging.CRITICAL)


_KEYGEN = threading.Lock()


def ensure_keypair(keys_dir: Path) -> tuple[Path, str]:
    """Return (private key path, public key line), generating them once (private key 0600)."""
    with _KEYGEN:  # instances are prepared in threads
        return _ensure_keypair(keys_dir)


def _ensure_keypair(keys_dir: Path) -> tuple[Path, str]:
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    priv = keys_dir / "id_ed25519"
    pub = keys_dir / "id_ed25519.pub"
    if not priv.exists():  # of two processes racing, one key wins (created whole, never replaced)
        key = Ed25519PrivateKey.generate()
        atomic_create(priv, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                              serialization.NoEncryption()), 0o600)
    if not pub.exists():  # derived from the private key that won: the pair always matches
        key = serialization.load_ssh_private_key(priv.read_bytes(), None)
        line = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                             serialization.PublicFormat.OpenSSH).decode()
        atomic_write(pub, f"{line} scaleset-lab\n", 0o644)
    return priv, pub.read_text().strip()


class HostKeyChanged(Exception):
    pass


class PinnedHostKeys(paramiko.MissingHostKeyPolicy):
    """Pin a guest's host key on first contact; a different key later is refused, unless the
    lab itself reimaged the guest and called `forget` first."""

    def __init__(self, store: Path, name: str) -> None:
        self.path = store / f"{name}.hostkey"

    def pinned(self) -> str | None:
        return self.path.read_text().strip() if self.path.exists() else None

    def forget(self) -> None:
        self.path.unlink(missing_ok=True)

    def check(self, key: paramiko.PKey) -> None:
        line = f"{key.get_name()} {key.get_base64()}"
        pinned = self.pinned()
        if pinned is None:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            atomic_write(self.path, line + "\n", 0o600)
        elif pinned != line:
            raise HostKeyChanged(f"host key of {self.path.stem} changed (pinned {pinned.split()[0]}); "
                                 "refusing to connect")

    def missing_host_key(self, client, hostname, key) -> None:  # paramiko hook
        self.check(key)


@dataclass
class CommandResult:
    exit_status: int
    stdout: str
    stderr: str


class GuestSSH:
    def __init__(self, port: int, user: str, key_path: Path, hostkeys: PinnedHostKeys,
                 host: str | Callable[[], str | None] = "127.0.0.1",
                 sock: Callable[[], paramiko.Channel] | None = None) -> None:
        """`host` may be a function (a NAT guest's address appears with its DHCP lease); `sock`
        gives a fresh channel to the guest's SSH port for each connect (a guest on another host:
        `lambda: tunnels.open_channel(endpoint, port)`), used instead of a TCP connection; `wait`
        retries a refused channel (the guest is booting), not a host that is down (TunnelError)."""
        self.port, self.user, self.key_path, self.hostkeys = port, user, key_path, hostkeys
        self.host, self.sock = host, sock
        self._client: paramiko.SSHClient | None = None

    def connect(self, timeout: float = 10.0) -> None:
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(self.hostkeys)
        host = self.host() if callable(self.host) else self.host
        if not host:
            raise OSError("the guest has no address yet")
        # in a daemon thread: a signal ends the wait at once, not after paramiko's timeouts
        sock = self.sock() if self.sock else None
        try:
            signals.interruptible(client.connect, host, port=self.port, username=self.user,
                                  key_filename=str(self.key_path), timeout=timeout, banner_timeout=timeout,
                                  auth_timeout=timeout, allow_agent=False, look_for_keys=False, sock=sock)
        except BaseException:
            if sock is not None:  # a channel of a shared connection: give it back
                sock.close()
            raise
        self._client = client

    def wait(self, deadline: float) -> None:
        """Connect, retrying until `deadline` (time.monotonic)."""
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                self.connect(timeout=min(10.0, max(1.0, deadline - time.monotonic())))
                return
            except HostKeyChanged:
                raise
            except (paramiko.SSHException, OSError, EOFError) as exc:
                last = exc
                signals.sleep(1.0)
        where = " of the guest's host, through its SSH tunnel," if self.sock else ""
        raise TimeoutError(f"no SSH on 127.0.0.1:{self.port}{where} in time (last error: {last})")

    def run(self, command: str, timeout: float = 300.0, stdin: bytes | None = None) -> CommandResult:
        """Run `command`; raises TimeoutError when it has not exited within `timeout` seconds."""
        if self._client is None:
            self.connect()
        assert self._client is not None
        transport = self._client.get_transport()
        assert transport is not None
        chan = signals.interruptible(transport.open_session)
        chan.settimeout(1.0)
        chan.exec_command(command)
        if stdin is not None:
            chan.sendall(stdin)
        chan.shutdown_write()
        out, err = bytearray(), bytearray()
        deadline = time.monotonic() + timeout
        while True:
            while chan.recv_ready():
                out += chan.recv(65536)
            while chan.recv_stderr_ready():
                err += chan.recv_stderr(65536)
            if chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
                break
            if time.monotonic() > deadline:
                chan.close()
                raise TimeoutError(f"command did not finish within {timeout:.0f} s")
            signals.sleep(0.05)
        status = chan.recv_exit_status()
        chan.close()
        return CommandResult(status, out.decode(errors="replace"), err.decode(errors="replace"))

    def close(self) -> None:
        if self._client:
            self._client.close()
            self._client = None
