import multiprocessing
import socket

from controller.virt.ports import PortAllocator


def _grab(args):
    registry, owner = args
    return PortAllocator(registry).allocate(owner, 3)


def test_concurrent_labs_never_get_the_same_port(tmp_path):
    registry = tmp_path / "ports.json"
    homes = []
    for i in range(8):
        home = tmp_path / f"lab{i}"
        home.mkdir()
        homes.append(f"{home}#vm")
    with multiprocessing.get_context("fork").Pool(4) as pool:
        results = pool.map(_grab, [(registry, h) for h in homes])
    ports = [p for r in results for p in r]
    assert len(ports) == len(set(ports)) == 24
    assert PortAllocator(registry).allocate(homes[0], 3) == sorted(results[0])  # idempotent per owner


def test_ports_in_use_are_skipped_and_released_ports_reused(tmp_path):
    registry = tmp_path / "ports.json"
    (tmp_path / "lab").mkdir()
    owner = f"{tmp_path / 'lab'}#vm"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy_port = busy.getsockname()[1]
        alloc = PortAllocator(registry, port_range=(busy_port, busy_port + 5))
        got = alloc.allocate(owner, 2)
        assert busy_port not in got
    alloc.release(owner)
    assert alloc.leases() == {}


def test_leases_of_vanished_labs_are_reclaimed(tmp_path):
    registry = tmp_path / "ports.json"
    gone = tmp_path / "gone"
    gone.mkdir()
    alloc = PortAllocator(registry, port_range=(31000, 31001))
    alloc.allocate(f"{gone}#vm", 2)
    gone.rmdir()
    (tmp_path / "new").mkdir()
    assert len(alloc.allocate(f"{tmp_path / 'new'}#vm", 2)) == 2
