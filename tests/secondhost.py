"""A second libvirt "host" for tests: a libvirtd of its own (tests/privlibvirt.py, mount and PID
namespaces, the host's network) listening on 127.0.0.1:PORT only, reached as
`qemu+tcp://127.0.0.1:PORT/system`, with a `dir` pool of its own. Needs root.

    from tests.secondhost import second_host  # noqa: F401 (session fixture)

    def test_x(second_host):
        hv = Hypervisor(second_host.uri)
"""
from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.privlibvirt import PrivateLibvirt

POOL = "scaleset"


@dataclass(frozen=True)
class Host:
    ns: PrivateLibvirt
    uri: str
    pool: str  # a dir pool at /var/lib/libvirt/images inside (`ns.root / "lib/images"` from here)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def running_host(root: Path, pool: str = POOL) -> Iterator[Host]:
    """A second host under `root`; at the end its volumes must be gone (checked), then its daemons,
    its port and `root` are."""
    ns = PrivateLibvirt(root, own_network=False, pool=pool, caps=None, tcp_port=free_port())
    with ns:
        pid = ns.pid
        yield Host(ns, ns.uri, pool)
        left = ns.leftovers()
    assert not os.path.exists(f"/proc/{pid}"), "the second host's namespace outlived it"
    assert not listening(ns.tcp_port), f"127.0.0.1:{ns.tcp_port} still listens"
    shutil.rmtree(root)
    assert left["volumes"] == [] and left["domains"] == [], f"the tests left on the second host: {left}"


@pytest.fixture(scope="session")
def second_host(tmp_path_factory) -> Iterator[Host]:
    if os.geteuid() != 0:
        pytest.skip("a second libvirtd needs root (namespaces, bind mounts)")
    with running_host(tmp_path_factory.mktemp("secondhost") / "ns") as host:
        yield host
