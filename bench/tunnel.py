"""Benchmark: SSH tunnels (controller/virt/tunnel.py) against a real sshd on 127.0.0.1 (tests/sshd.py).

    sudo .venv/bin/python bench/tunnel.py [--mb 200] [--runs 5] [--channels 100]

Printed: the time to open the first channel (TCP, key exchange, authentication, the channel),
the time per extra channel on the reused connection, and the throughput of MB bytes read from a
server on 127.0.0.1 directly, through one channel and through a `forward` port (MB/s).
Needs root and openssh-server (scripts/setup.sh installs it).
"""
from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from controller.virt.ssh import ensure_keypair
from controller.virt.tunnel import SshEndpoint, Tunnels
from tests.sshd import Sshd

CHUNK = b"\0" * (1 << 20)


def source(mb: int) -> int:
    """A server on 127.0.0.1 that sends `mb` MiB to each connection, then closes it."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve(conn: socket.socket) -> None:
        with conn:
            try:
                for _ in range(mb):
                    conn.sendall(CHUNK)
            except OSError:  # a channel opened only to time it: closed at once
                pass

    def accept() -> None:
        while True:
            conn, _ = server.accept()
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return server.getsockname()[1]


def drain(recv) -> tuple[int, float]:
    start, n = time.perf_counter(), 0
    while data := recv(1 << 20):
        n += len(data)
    return n, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--channels", type=int, default=100)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-tunnel-"))
    key, pub = ensure_keypair(tmp / "keys")
    port, idle = source(args.mb), source(0)
    with Sshd(tmp / "sshd", pub) as sshd:
        ep = SshEndpoint.parse(f"root@127.0.0.1:{sshd.port}")
        firsts = []
        for _ in range(args.runs):
            with Tunnels(key, tmp / "hosts", allow_agent=False, look_for_keys=False) as t:
                start = time.perf_counter()
                t.open_channel(ep, idle).close()
                firsts.append(time.perf_counter() - start)
        with Tunnels(key, tmp / "hosts", allow_agent=False, look_for_keys=False) as t:
            t.open_channel(ep, port).close()
            start = time.perf_counter()
            for _ in range(args.channels):
                t.open_channel(ep, idle).close()
            extra = (time.perf_counter() - start) / args.channels
            with socket.create_connection(("127.0.0.1", port)) as s:
                n_direct, t_direct = drain(s.recv)
            chan = t.open_channel(ep, port)
            n_chan, t_chan = drain(chan.recv)
            chan.close()
            with socket.create_connection(("127.0.0.1", t.forward(ep, port))) as s:
                n_fwd, t_fwd = drain(s.recv)
        logins = sshd.accepted()
    mib = 1 << 20
    assert n_direct == n_chan == n_fwd == args.mb * mib
    print(f"first channel (connect + auth + open): median {statistics.median(firsts) * 1000:.1f} ms "
          f"over {args.runs} runs (min {min(firsts) * 1000:.1f}, max {max(firsts) * 1000:.1f})")
    print(f"extra channel on the reused connection: {extra * 1000:.2f} ms each ({args.channels} opened)")
    print(f"{args.mb} MiB direct to 127.0.0.1: {n_direct / mib / t_direct:.0f} MiB/s")
    print(f"{args.mb} MiB through one channel: {n_chan / mib / t_chan:.0f} MiB/s")
    print(f"{args.mb} MiB through a forward port: {n_fwd / mib / t_fwd:.0f} MiB/s")
    print(f"sshd logins: {logins} ({args.runs} first-channel runs + 1 for the rest)")


if __name__ == "__main__":
    main()
