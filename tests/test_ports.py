import json
import multiprocessing
import os
import socket
import stat
from pathlib import Path

import pytest

from controller.core.errors import LabError
from controller.virt import ports
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


def test_registry_and_lock_are_private_files(tmp_path):
    (tmp_path / "lab").mkdir()
    registry = tmp_path / "rt" / "ports.json"
    PortAllocator(registry).allocate(f"{tmp_path / 'lab'}#vm", 1)
    for f in (registry, Path(f"{registry}.lock")):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    assert sorted(p.name for p in registry.parent.iterdir()) == ["ports.json", "ports.json.lock"]  # no temporaries


def test_default_registry_is_one_private_folder_per_user(monkeypatch):
    """Not a predictable world-readable file in $TMPDIR: a 0700 folder of the user, the same
    whatever TMPDIR or XDG_RUNTIME_DIR say (every lab of the user shares it)."""
    monkeypatch.delenv("SCALESET_PORTS_DIR", raising=False)
    monkeypatch.setenv("TMPDIR", "/var/tmp")
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/nonexistent")
    reg = ports.default_registry()
    assert reg == Path(f"/tmp/scaleset-lab-{os.getuid()}/ports.json")
    st = reg.parent.lstat()
    assert stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) == 0o700


def test_private_dir_tightens_ours_and_refuses_anyone_elses(tmp_path):
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    os.chmod(loose, 0o755)
    assert stat.S_IMODE(ports.private_dir(loose).stat().st_mode) == 0o700
    fresh = ports.private_dir(tmp_path / "fresh")
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700
    other = tmp_path / "other"
    other.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(fresh)
    bad_ones = [link]
    if os.getuid() == 0:
        os.chown(other, 65534, 65534)  # someone else's folder
        bad_ones.append(other)
    for bad in bad_ones:
        with pytest.raises(LabError) as exc:
            ports.private_dir(bad)
        assert exc.value.code == "AccessDenied" and exc.value.field == str(bad)


def test_leases_of_the_old_world_readable_registry_carry_over_once(tmp_path, monkeypatch):
    (tmp_path / "lab").mkdir()
    owner = f"{tmp_path / 'lab'}#vm"
    legacy = tmp_path / "legacy.json"
    legacy.write_text(json.dumps({"31005": owner}))
    monkeypatch.setattr(ports, "LEGACY", legacy)
    monkeypatch.setattr(ports, "default_registry", lambda: tmp_path / "rt" / "ports.json")
    assert PortAllocator(port_range=(31000, 31010)).allocate(owner, 1) == [31005]  # kept its port
    legacy.write_text(json.dumps({"31006": owner}))
    assert PortAllocator(port_range=(31000, 31010)).leases() == {31005: owner}  # read only while none exists
