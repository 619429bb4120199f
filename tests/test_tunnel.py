"""SSH tunnels to another host's 127.0.0.1 ports, against a real sshd on 127.0.0.1 (tests/sshd.py)."""
from __future__ import annotations

import http.server
import os
import socket
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import paramiko
import pytest

from controller.core.errors import HypervisorError, ModelError
from controller.core.settings import LabPaths
from controller.virt.ssh import GuestSSH, PinnedHostKeys, ensure_keypair
from controller.virt.tunnel import SshEndpoint, TunnelError, Tunnels
from tests.sshd import SSHD, Sshd, descendants, free_port

needs_sshd = pytest.mark.skipif(not (os.path.exists(SSHD) and os.geteuid() == 0),
                                reason="needs root and openssh-server (scripts/setup.sh installs it)")


@pytest.mark.parametrize("text, want", [
    ("root@h1", ("root", "h1", 22)),
    ("lab@H1.Example.org:2222", ("lab", "h1.example.org", 2222)),
    ("root@127.0.0.1:2200", ("root", "127.0.0.1", 2200)),
    ("root@[::1]:2200", ("root", "::1", 2200)),
])
def test_an_endpoint_is_parsed_from_user_at_host_port(text, want):
    ep = SshEndpoint.parse(text)
    assert (ep.user, ep.host, ep.port) == want
    assert SshEndpoint.parse(str(ep)) == ep


@pytest.mark.parametrize("uri, want", [
    ("qemu+ssh://root@h1/system", ("root", "h1", 22)),
    ("qemu+ssh://lab@10.1.2.3:2222/system?keyfile=x", ("lab", "10.1.2.3", 2222)),
    ("qemu+libssh2://root@[fd00::5]:22/system", ("root", "fd00::5", 22)),
])
def test_an_endpoint_is_parsed_from_a_libvirt_ssh_uri(uri, want):
    ep = SshEndpoint.from_uri(uri)
    assert (ep.user, ep.host, ep.port) == want


@pytest.mark.parametrize("parse, text, reason", [
    (SshEndpoint.parse, "h1", "names no user"),
    (SshEndpoint.parse, "root@h1:ssh", "is not a number"),
    (SshEndpoint.parse, "root@h1:70000", "is not from 1 to 65535"),
    (SshEndpoint.parse, "root@h_1", "neither a host name nor an IP address"),
    (SshEndpoint.parse, "root@", "neither a host name"),
    (SshEndpoint.parse, "ro ot@h1", "not a valid user name"),
    (SshEndpoint.parse, "root@::1", "is not a number"),
    (SshEndpoint.from_uri, "qemu+tcp://127.0.0.1:16509/system", "is not an SSH libvirt URI"),
    (SshEndpoint.from_uri, "qemu:///system", "is not an SSH libvirt URI"),
    (SshEndpoint.from_uri, "qemu+ssh://h1/system", "names no user"),
    (SshEndpoint.from_uri, "qemu+ssh://root@h1:99999/system", "not a number from 1 to 65535"),
])
def test_a_bad_endpoint_is_a_model_error_naming_the_field(parse, text, reason):
    with pytest.raises(ModelError) as err:
        parse(text, field="--host")
    assert err.value.field == "--host" and err.value.code == "InvalidParameter" and reason in err.value.reason


def test_tunnels_for_a_lab_use_its_key_and_pin_hosts_under_its_keys(tmp_path):
    paths = LabPaths(tmp_path / "lab")
    t = Tunnels.for_lab(paths)
    assert t.key_path == paths.keys / "id_ed25519" and t.key_path.exists()
    assert t.pinned(SshEndpoint.parse("root@[::1]:2200")).path == paths.keys / "hosts" / "--1_2200.hostkey"


# -- against a real sshd ---------------------------------------------------------------------------

class Server(http.server.ThreadingHTTPServer):
    """HTTP on 127.0.0.1; each answer takes `delay` s; `peak` counts requests served at once."""

    daemon_threads = True

    def __init__(self, delay: float = 0.0, handler: type[http.server.BaseHTTPRequestHandler] | None = None) -> None:
        self.delay, self.now, self.peak, self.lock = delay, 0, 0, threading.Lock()
        super().__init__(("127.0.0.1", 0), handler or Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return self.server_address[1]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        s: Server = self.server  # type: ignore[assignment]
        with s.lock:
            s.now += 1
            s.peak = max(s.peak, s.now)
        time.sleep(s.delay)
        with s.lock:
            s.now -= 1
        body = self.body()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self) -> bytes:
        return f"hello {self.path}".encode()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def key(tmp_path):
    return ensure_keypair(tmp_path / "keys")


@pytest.fixture
def sshd(tmp_path, key):
    with Sshd(tmp_path / "sshd", key[1]) as server:
        yield server
    assert server.pids() == []


@pytest.fixture
def web():
    server = Server()
    yield server
    server.shutdown()
    server.server_close()


def tunnels(tmp_path: Path, key, timeout: float = 5.0) -> Tunnels:
    return Tunnels(key[0], tmp_path / "hosts", timeout=timeout, allow_agent=False, look_for_keys=False)


def endpoint(sshd: Sshd) -> SshEndpoint:
    return SshEndpoint.parse(f"root@127.0.0.1:{sshd.port}")


def http_over(chan_or_sock, path: str = "/") -> bytes:
    chan_or_sock.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
    data = b""
    while chunk := chan_or_sock.recv(65536):
        data += chunk
    return data


@needs_sshd
def test_a_channel_reaches_a_server_on_the_hosts_loopback(tmp_path, key, sshd, web):
    with tunnels(tmp_path, key) as t:
        chan = t.open_channel(endpoint(sshd), web.port)
        assert isinstance(chan, paramiko.Channel)
        reply = http_over(chan, "/via-channel")
        chan.close()
        assert reply.startswith(b"HTTP/1.0 200") and reply.endswith(b"hello /via-channel")
        pinned = t.pinned(endpoint(sshd)).pinned()
        assert pinned == (tmp_path / "sshd" / "id_ed25519.pub").read_text().split(" scaleset-lab")[0]
        with pytest.raises(ConnectionRefusedError, match="refused"):  # the host answers: nothing listens there
            t.open_channel(endpoint(sshd), free_port())
    assert sshd.accepted() == 1


@needs_sshd
def test_a_forward_carries_many_parallel_connections_over_one_ssh_connection(tmp_path, key, sshd, web):
    web.delay = 0.3
    with tunnels(tmp_path, key) as t:
        port = t.forward(endpoint(sshd), web.port)
        assert t.forward(endpoint(sshd), web.port) == port  # one listener per (endpoint, port)
        with ThreadPoolExecutor(40) as pool:
            replies = list(pool.map(lambda i: urllib.request.urlopen(f"http://127.0.0.1:{port}/{i}", timeout=30)
                                    .read(), range(40)))
        assert replies == [f"hello /{i}".encode() for i in range(40)]
        assert web.peak >= 20  # the connections were really open at the same time
        assert sshd.accepted() == 1 and sshd.log_text().count("Connection from 127.0.0.1") == 1
        # a far port where nothing listens: the local client is reset at once, the forward lives on
        dead = t.forward(endpoint(sshd), free_port())
        with socket.create_connection(("127.0.0.1", dead), timeout=5) as s, pytest.raises(ConnectionResetError):
            s.recv(1)
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}/again", timeout=10).read() == b"hello /again"
    with pytest.raises(ConnectionRefusedError):  # close() ends the forwards
        socket.create_connection(("127.0.0.1", port), timeout=5)


@needs_sshd
def test_every_listener_the_module_opens_is_on_loopback(tmp_path, key, sshd, web):
    with tunnels(tmp_path, key) as t:
        before = _my_listeners()
        ports = {t.forward(endpoint(sshd), p) for p in (web.port, sshd.port, free_port())}
        mine = _my_listeners() - before
        assert {port for _, port in mine} == ports and len(mine) == 3
        assert {addr for addr, _ in mine} == {"127.0.0.1"}


@needs_sshd
def test_a_dead_host_raises_within_the_bound_and_never_hangs(tmp_path, key, sshd, web):
    ep = endpoint(sshd)
    with tunnels(tmp_path, key, timeout=1.0) as t:
        t.open_channel(ep, web.port).close()
        sshd.pause()  # the host stops answering; TCP still accepts, nothing replies
        try:
            start = time.monotonic()
            with pytest.raises(TunnelError) as err:  # the old connection, then one fresh try
                t.open_channel(ep, web.port)
            on_old = time.monotonic() - start
            start = time.monotonic()
            with pytest.raises(TunnelError):
                t.open_channel(ep, web.port)
            fresh = time.monotonic() - start
        finally:
            sshd.resume()
        port = t.forward(ep, web.port)
        sshd.stop()
        start = time.monotonic()
        with pytest.raises(TunnelError, match="cannot connect.*refused"):
            t.open_channel(ep, web.port)
        refused = time.monotonic() - start
        try:  # a forward's client is closed or reset, not left waiting (recv would time out)
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                got = s.recv(1)
        except ConnectionResetError:  # on a loaded machine the reset can come before connect() returns
            got = b""
        assert got == b""
    print(f"\ndead host: {on_old:.2f} s on the old connection, {fresh:.2f} s fresh (timeout 1 s), "
          f"{refused:.3f} s refused")
    assert isinstance(err.value, HypervisorError) and err.value.code == "HypervisorError"
    assert err.value.field == str(ep) and err.value.status == 502
    assert on_old < 10 and fresh < 10 and refused < 5  # bounded, not hung (the figures are printed above)


@needs_sshd
def test_after_the_host_restarts_the_next_call_reconnects(tmp_path, key, sshd, web):
    ep = endpoint(sshd)
    with tunnels(tmp_path, key) as t:
        port = t.forward(ep, web.port)
        assert http_over(t.open_channel(ep, web.port)).endswith(b"hello /")
        first = t.transport(ep)
        sshd.restart()  # every connection dropped
        assert http_over(t.open_channel(ep, web.port), "/back").endswith(b"hello /back")
        assert t.transport(ep) is not first and not first.is_active()
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}/fwd", timeout=10).read() == b"hello /fwd"
    assert sshd.accepted() == 2


@needs_sshd
def test_a_changed_host_key_is_refused(tmp_path, key, sshd, web):
    ep = endpoint(sshd)
    with tunnels(tmp_path, key) as t:
        t.open_channel(ep, web.port).close()
        pinned = t.pinned(ep).pinned()
        sshd.stop()
        sshd.new_host_key()
        sshd.start()
        with pytest.raises(TunnelError, match="changed.*refusing to connect.*delete .*127.0.0.1_\\d+.hostkey"):
            t.open_channel(ep, web.port)
        assert t.pinned(ep).pinned() == pinned
    assert sshd.accepted() == 1  # never authenticated to the impostor


@needs_sshd
def test_a_key_the_host_does_not_accept_is_refused_by_name(tmp_path, sshd):
    other = ensure_keypair(tmp_path / "other")
    with tunnels(tmp_path, other) as t, pytest.raises(TunnelError, match="authentication as root failed.*"
                                                                         "authorized_keys") as err:
        t.open_channel(endpoint(sshd), sshd.port)
    assert err.value.field == str(endpoint(sshd)) and sshd.accepted() == 0


@needs_sshd
def test_guest_ssh_runs_a_command_through_a_tunnel_channel(tmp_path, key, sshd):
    ep = endpoint(sshd)
    with tunnels(tmp_path, key) as t:
        guest = GuestSSH(sshd.port, "root", key[0], PinnedHostKeys(tmp_path / "guestkeys", "vm0"),
                         host="unused.invalid", sock=lambda: t.open_channel(ep, sshd.port))
        guest.wait(time.monotonic() + 10)
        try:
            inner = guest._client.get_transport()
            assert isinstance(inner.sock, paramiko.Channel)  # SSH inside the tunnel, not a TCP connection
            result = guest.run("echo hello; echo oops >&2; exit 3", timeout=20)
        finally:
            guest.close()
    assert (result.exit_status, result.stdout, result.stderr) == (3, "hello\n", "oops\n")
    assert sshd.accepted() == 2 and sshd.log_text().count("Connection from 127.0.0.1") == 2


@needs_sshd
def test_guest_ssh_wait_retries_until_the_guests_port_answers_through_the_tunnel(tmp_path, key, sshd):
    guest_sshd = Sshd(tmp_path / "guest-sshd", key[1])  # the guest: its port answers only after its boot
    booted = threading.Timer(1.5, guest_sshd.start)
    booted.start()
    try:
        with tunnels(tmp_path, key) as t:
            guest = GuestSSH(guest_sshd.port, "root", key[0], PinnedHostKeys(tmp_path / "guestkeys", "vm1"),
                             sock=lambda: t.open_channel(endpoint(sshd), guest_sshd.port))
            start = time.monotonic()
            guest.wait(start + 20)
            waited = time.monotonic() - start
            assert guest.run("echo up").stdout == "up\n"
            guest.close()
    finally:
        booted.join()
        guest_sshd.stop()
    assert 1.0 < waited < 10 and sshd.accepted() == 1 and guest_sshd.accepted() == 1


@needs_sshd
def test_the_test_sshd_stops_with_nothing_left(tmp_path, key):
    with Sshd(tmp_path / "s", key[1]) as server, tunnels(tmp_path, key) as t:
        t.transport(endpoint(server))
        pids = server.pids()
        assert len(pids) >= 2  # the listener and the connection's processes
    assert all(not Path(f"/proc/{p}").exists() or _zombie(p) for p in pids)
    assert descendants(pids[0]) == [] and not (tmp_path / "s" / "sshd.pid").exists()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=5)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return True


def my_sockets() -> set[str]:
    """The inodes of this process's sockets."""
    inodes = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _my_listeners() -> set[tuple[str, int]]:
    """(address, port) of this process's listening TCP sockets, from /proc/net/tcp{,6}."""
    inodes = my_sockets()
    out = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A" and f[9] in inodes:  # LISTEN
                addr, port = f[1].split(":")
                out.add((_addr(addr), int(port, 16)))
    return out


def _addr(hex_addr: str) -> str:
    if len(hex_addr) == 8:
        return socket.inet_ntop(socket.AF_INET, bytes.fromhex(hex_addr)[::-1])
    raw = bytes.fromhex(hex_addr)
    return socket.inet_ntop(socket.AF_INET6, b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))
