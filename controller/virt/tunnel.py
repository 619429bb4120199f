"""SSH tunnels to other hypervisor hosts: ports that listen on 127.0.0.1 *there* (guests'
user-mode forwards) reached through paramiko `direct-tcpip` channels, one SSH connection per
host, opened on first use, reused, reopened when it died.

Errors: a host that cannot be reached, authenticated or trusted raises `TunnelError` (a
`HypervisorError`, field = the endpoint) within `2 * timeout` seconds, never later: one try on
the old connection, one fresh connection, each bounded by `timeout`. A host that answers but
has nothing listening on the port raises `ConnectionRefusedError`, as a direct connect would.
"""
from __future__ import annotations

import errno
import ipaddress
import re
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

import paramiko

from controller.core import signals
from controller.core.errors import HypervisorError, ModelError
from controller.core.settings import LabPaths
from controller.virt.ssh import HostKeyChanged, PinnedHostKeys, ensure_keypair

LOOPBACK = "127.0.0.1"
_HOSTNAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")
_USER = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")
_SSH_SCHEMES = ("ssh", "libssh", "libssh2")  # libvirt's transports that run over SSH
_BUF = 256 * 1024


@dataclass(frozen=True)
class SshEndpoint:
    """An SSH server on a hypervisor host: `user@host[:port]`."""

    user: str
    host: str
    port: int = 22

    @classmethod
    def parse(cls, text: str, field: str = "host") -> SshEndpoint:
        """`user@host`, `user@host:2222`, `user@[::1]:2222`."""
        user, at, rest = text.strip().rpartition("@")
        if not at:
            raise ModelError(field, f"{text!r} names no user: give user@host[:port]")
        m = re.fullmatch(r"\[([^\]]*)\](?::(.*))?|([^:]*)(?::(.*))?", rest)
        assert m is not None  # the pattern matches any text without two colons outside brackets
        host, port = (m.group(1), m.group(2)) if m.group(1) is not None else (m.group(3), m.group(4))
        if port is not None and not port.isdigit():
            raise ModelError(field, f"port {port!r} of {text!r} is not a number")
        return cls.make(user, host or "", int(port) if port is not None else 22, field)

    @classmethod
    def from_uri(cls, uri: str, field: str = "host") -> SshEndpoint:
        """The SSH server of a libvirt URI such as `qemu+ssh://root@h1:2222/system`."""
        parts = urlsplit(uri.strip())
        transport = parts.scheme.partition("+")[2]
        if transport not in _SSH_SCHEMES:
            raise ModelError(field, f"{uri!r} is not an SSH libvirt URI (qemu+ssh://user@host[:port]/system)")
        try:
            port = parts.port
        except ValueError:
            raise ModelError(field, f"the port of {uri!r} is not a number from 1 to 65535") from None
        if not parts.username:
            raise ModelError(field, f"{uri!r} names no user: give qemu+ssh://user@host[:port]/system")
        return cls.make(parts.username, parts.hostname or "", port if port is not None else 22, field)

    @classmethod
    def make(cls, user: str, host: str, port: int, field: str = "host") -> SshEndpoint:
        if not _USER.fullmatch(user):
            raise ModelError(field, f"user {user!r} is not a valid user name")
        try:
            host = str(ipaddress.ip_address(host))
        except ValueError:
            if not _HOSTNAME.fullmatch(host):
                raise ModelError(field, f"host {host!r} is neither a host name nor an IP address") from None
            host = host.lower()
        if not 1 <= port <= 65535:
            raise ModelError(field, f"port {port} is not from 1 to 65535")
        return cls(user, host, port)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user}@{host}:{self.port}"

    @property
    def key_name(self) -> str:
        """The name of the host's pinned key file (per host and port, not per user)."""
        return f"{self.host.replace(':', '-')}_{self.port}"


class TunnelError(HypervisorError):
    """The host cannot be reached, authenticated or trusted; `field` is the endpoint."""

    def __init__(self, endpoint: SshEndpoint, reason: str) -> None:
        super().__init__(reason, field=str(endpoint))


class Tunnels:
    """SSH connections to hypervisor hosts, one per endpoint, shared by threads. The lab owns
    one (`Tunnels.for_lab`) and closes it when it ends; `close()` also ends every forward."""

    def __init__(self, key_path: Path | None, hostkeys: Path, *, timeout: float = 5.0, keepalive: int = 15,
                 allow_agent: bool = True, look_for_keys: bool = True) -> None:
        """`key_path`: the lab's private key, tried first, then the user's agent and ~/.ssh keys;
        `hostkeys`: the folder of pinned host keys; `keepalive`: seconds between keepalives."""
        self.key_path, self.hostkeys, self.timeout, self.keepalive = key_path, hostkeys, timeout, keepalive
        self.allow_agent, self.look_for_keys = allow_agent, look_for_keys
        self._lock = threading.Lock()
        self._clients: dict[SshEndpoint, paramiko.SSHClient] = {}
        self._connecting: dict[SshEndpoint, threading.Lock] = {}
        self._forwards: dict[tuple[SshEndpoint, int], _Forward] = {}

    @classmethod
    def for_lab(cls, paths: LabPaths, **kwargs) -> Tunnels:
        """With the lab's key (`keys/id_ed25519`) and host keys pinned under `keys/hosts`."""
        key, _ = ensure_keypair(paths.keys)
        return cls(key, paths.keys / "hosts", **kwargs)

    def pinned(self, endpoint: SshEndpoint) -> PinnedHostKeys:
        return PinnedHostKeys(self.hostkeys, endpoint.key_name)

    def transport(self, endpoint: SshEndpoint) -> paramiko.Transport:
        """The endpoint's live connection, opened (or reopened) if need be."""
        return self._transport(endpoint)[0]

    def open_channel(self, endpoint: SshEndpoint, port: int) -> paramiko.Channel:
        """A channel to 127.0.0.1:`port` on the endpoint's host (a socket-like object)."""
        transport, fresh = self._transport(endpoint)
        try:
            return self._open(endpoint, transport, port)
        except _Dead as exc:
            self._drop(endpoint, transport)
            if fresh:
                raise TunnelError(endpoint, f"cannot open a channel: {exc}") from None
        transport, _ = self._transport(endpoint)
        try:
            return self._open(endpoint, transport, port)
        except _Dead as exc:
            self._drop(endpoint, transport)
            raise TunnelError(endpoint, f"cannot open a channel: {exc}") from None

    def forward(self, endpoint: SshEndpoint, port: int) -> int:
        """A port on 127.0.0.1 here whose connections reach 127.0.0.1:`port` on the endpoint's
        host (like `ssh -L`), one per (endpoint, port), kept until `close()`. It connects lazily:
        when the host is down, a connection to it is reset within the bound above."""
        with self._lock:
            fwd = self._forwards.get((endpoint, port))
            if fwd is None:
                fwd = self._forwards[(endpoint, port)] = _Forward(self, endpoint, port)
            return fwd.port

    def close(self) -> None:
        """End every forward and connection (the object stays usable: it reconnects on use)."""
        with self._lock:
            forwards, self._forwards = list(self._forwards.values()), {}
            clients, self._clients = list(self._clients.values()), {}
        for fwd in forwards:
            fwd.close()
        for client in clients:
            client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- connections --------------------------------------------------------------------------

    def _transport(self, endpoint: SshEndpoint) -> tuple[paramiko.Transport, bool]:
        """(live transport, whether it was opened just now); one connect at a time per endpoint."""
        with self._lock:
            gate = self._connecting.setdefault(endpoint, threading.Lock())
        with gate:
            with self._lock:
                client = self._clients.get(endpoint)
            transport = client.get_transport() if client else None
            if transport is not None and transport.is_active():
                return transport, False
            if client is not None:
                with self._lock:
                    if self._clients.get(endpoint) is client:
                        del self._clients[endpoint]
                client.close()
            client = self._connect(endpoint)
            with self._lock:
                self._clients[endpoint] = client
            transport = client.get_transport()
            assert transport is not None
            return transport, True

    def _drop(self, endpoint: SshEndpoint, transport: paramiko.Transport) -> None:
        with self._lock:
            client = self._clients.get(endpoint)
            if client is None or client.get_transport() is not transport:
                return  # another thread has replaced it already
            del self._clients[endpoint]
        client.close()

    def _connect(self, endpoint: SshEndpoint) -> paramiko.SSHClient:
        policy = self.pinned(endpoint)
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(policy)
        sockets: list[socket.socket] = []

        def connect() -> None:
            sock = socket.create_connection((endpoint.host, endpoint.port), timeout=self.timeout)
            sockets.append(sock)
            _tune(sock, self.keepalive)
            key = str(self.key_path) if self.key_path and self.key_path.exists() else None
            client.connect(endpoint.host, endpoint.port, username=endpoint.user, key_filename=key, sock=sock,
                           timeout=self.timeout, banner_timeout=self.timeout, auth_timeout=self.timeout,
                           allow_agent=self.allow_agent, look_for_keys=self.look_for_keys)

        def abandon() -> None:  # closing the socket ends paramiko's waits in the worker thread
            client.close()
            for sock in sockets:
                sock.close()

        try:
            _bounded(connect, self.timeout, abandon)
        except BaseException as exc:  # noqa: BLE001 - mapped to TunnelError, others re-raised
            abandon()
            raise _connect_error(endpoint, exc, policy, self.timeout) from None
        transport = client.get_transport()
        assert transport is not None
        transport.set_keepalive(self.keepalive)
        return client

    def _open(self, endpoint: SshEndpoint, transport: paramiko.Transport, port: int) -> paramiko.Channel:
        try:
            return signals.interruptible(transport.open_channel, "direct-tcpip", (LOOPBACK, port), (LOOPBACK, 0),
                                         timeout=self.timeout)
        except paramiko.ChannelException as exc:  # the host answered: nothing listens there
            raise ConnectionRefusedError(errno.ECONNREFUSED, f"{LOOPBACK}:{port} on {endpoint} refused the "
                                                             f"connection ({exc.text})") from None
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise _Dead(str(exc) or type(exc).__name__) from None


def _connect_error(endpoint: SshEndpoint, exc: BaseException, policy: PinnedHostKeys, timeout: float) -> BaseException:
    if isinstance(exc, HostKeyChanged):
        return TunnelError(endpoint, f"{exc}; if {endpoint.host} was reinstalled, delete {policy.path} to pin "
                                     "its new key")
    if isinstance(exc, paramiko.AuthenticationException):
        return TunnelError(endpoint, f"authentication as {endpoint.user} failed ({exc}): add the lab's public key "
                                     "(keys/id_ed25519.pub) to that user's authorized_keys there")
    if isinstance(exc, TimeoutError):
        return TunnelError(endpoint, f"no SSH session within {timeout:g} s")
    if isinstance(exc, (OSError, EOFError, paramiko.SSHException)):
        return TunnelError(endpoint, f"cannot connect: {exc or type(exc).__name__}")
    return exc  # Interrupted, or a bug


class _Dead(Exception):
    """The connection no longer carries channels."""


def _bounded(fn: Callable[[], None], seconds: float, abandon: Callable[[], None]) -> None:
    """Run `fn` in a daemon thread; after `seconds` call `abandon` and raise TimeoutError.
    SIGINT/SIGTERM end the wait at once (signals.check)."""
    box: dict = {}
    done = threading.Event()

    def run() -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, name="scaleset-tunnel-connect", daemon=True).start()
    deadline = time.monotonic() + seconds
    try:
        while not done.wait(min(0.1, max(0.0, deadline - time.monotonic()))):
            signals.check()
            if time.monotonic() >= deadline:
                raise TimeoutError
    except BaseException:
        abandon()
        raise
    if "error" in box:
        raise box["error"]


def _tune(sock: socket.socket, seconds: int) -> None:
    """No Nagle delay (a channel open is one small round trip: 8 ms -> 1 ms here), and find a
    peer that vanished without a word (TCP keepalives, unacknowledged data)."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for opt, value in (("TCP_KEEPIDLE", seconds), ("TCP_KEEPINTVL", seconds), ("TCP_KEEPCNT", 3),
                       ("TCP_USER_TIMEOUT", seconds * 4 * 1000)):
        if hasattr(socket, opt):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, opt), value)


class _Forward:
    """A listener on 127.0.0.1 piping each connection through a new channel."""

    def __init__(self, tunnels: Tunnels, endpoint: SshEndpoint, far_port: int) -> None:
        self.tunnels, self.endpoint, self.far_port = tunnels, endpoint, far_port
        self.listener = socket.create_server((LOOPBACK, 0), backlog=128)
        self.port: int = self.listener.getsockname()[1]
        self.closed = threading.Event()
        self._lock = threading.Lock()
        self._open: set[tuple[socket.socket, paramiko.Channel | None]] = set()
        self._thread = threading.Thread(target=self._accept, name=f"scaleset-forward-{self.port}", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), name=f"scaleset-forward-{self.port}-conn",
                             daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pair: tuple[socket.socket, paramiko.Channel | None] = (conn, None)
        with self._lock:
            self._open.add(pair)
        try:
            try:
                chan = self.tunnels.open_channel(self.endpoint, self.far_port)
            except Exception:  # noqa: BLE001 - refused or host down: the client sees a reset
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
                return
            with self._lock:
                self._open.discard(pair)
                pair = (conn, chan)
                self._open.add(pair)
                if self.closed.is_set():
                    return
            up = threading.Thread(target=_copy, args=(conn.recv, chan.sendall, chan.shutdown_write), daemon=True)
            up.start()
            _copy(chan.recv, conn.sendall, lambda: conn.shutdown(socket.SHUT_WR))
            up.join()
        finally:
            with self._lock:
                self._open.discard(pair)
            _close(*pair)

    def close(self) -> None:
        self.closed.set()
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes accept()
        except OSError:
            pass
        self.listener.close()
        self._thread.join(2.0)
        with self._lock:
            pairs = list(self._open)
        for pair in pairs:
            _close(*pair)


def _copy(recv: Callable[[int], bytes], send: Callable[[bytes], object], eof: Callable[[], object]) -> None:
    """One direction of a forwarded connection, until end of file or an error; then half-close."""
    try:
        while data := recv(_BUF):
            send(data)
        eof()
    except (OSError, EOFError, paramiko.SSHException):
        pass


def _close(conn: socket.socket, chan: paramiko.Channel | None) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)  # wakes a recv() blocked in another thread
    except OSError:
        pass
    conn.close()
    if chan is not None:
        chan.close()
