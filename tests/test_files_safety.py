"""Files the lab writes are whole or absent, private where they must be, and files/ serves only
plain names of regular files."""
import errno
import os
import stat
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from controller.ops import fileserver as files_mod
from controller.cli.main import main
from controller.core import files as core_files
from controller.core.files import TMP_PREFIX, atomic_create, atomic_open, atomic_write
from controller.core.settings import LabPaths
from controller.ops import fileserver
from controller.virt import seed as seed_mod
from controller.virt import disks, vm
from controller.virt.ssh import PinnedHostKeys, ensure_keypair
from images import qcow2


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def temporaries(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(TMP_PREFIX)]


# -- the atomic-write helper -------------------------------------------------------------------
def test_atomic_write_replaces_whole_with_the_mode_asked(tmp_path):
    target = tmp_path / "state.json"
    target.write_text("old")
    os.chmod(target, 0o644)
    atomic_write(target, '{"new": 1}', 0o600)
    assert target.read_text() == '{"new": 1}' and mode(target) == 0o600
    assert temporaries(tmp_path) == []


def test_a_failure_mid_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "seed.iso"
    target.write_bytes(b"old contents")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(core_files.os, "fsync", full)
    with pytest.raises(OSError):
        atomic_write(target, b"x" * 100000)
    monkeypatch.undo()
    with pytest.raises(RuntimeError), atomic_open(target) as f:
        f.write(b"half of it")
        raise RuntimeError("the writer failed half-way")
    assert target.read_bytes() == b"old contents"
    assert temporaries(tmp_path) == []


def test_atomic_create_keeps_the_first_file(tmp_path):
    key = tmp_path / "fileserver.key"
    assert atomic_create(key, b"first", 0o600) is True
    assert atomic_create(key, b"second", 0o600) is False
    assert key.read_bytes() == b"first" and mode(key) == 0o600 and temporaries(tmp_path) == []


# -- files put / files url -------------------------------------------------------------------------
def put(capsys, src, *name):
    code = main(["files", "put", "--file", str(src), *(("--name", name[0]) if name else ())])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("name", ["../state.db", "a/b", ".hidden", "a\x00b", "tab\there", "a" * 256, "é" * 128, ""])
def test_files_put_refuses_names_that_are_not_plain(lab, tmp_path, capsys, name):
    src = tmp_path / "payload.sh"
    src.write_text("echo hi\n")
    code, err = put(capsys, src, name)
    assert code == 1 and err.startswith("ERROR: (InvalidParameter) --name: "), err
    assert list(lab.files.iterdir()) == []


def test_files_put_on_a_full_disk_keeps_the_served_file_whole(lab, tmp_path, capsys, monkeypatch):
    """A copy that fails half-way (ENOSPC) leaves the file served before, whole, and no temporary."""
    (lab.files / "payload.sh").write_text("echo version one\n")
    src = tmp_path / "payload.sh"
    src.write_bytes(b"echo version two\n" * 10000)

    def half_then_full(fin, fout, length=0):
        fout.write(fin.read(1000))
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(files_mod.shutil, "copyfileobj", half_then_full)
    code, err = put(capsys, src)
    assert code == 1 and err.startswith(f"ERROR: (InsufficientStorage) {lab.files / 'payload.sh'}: "), err
    assert (lab.files / "payload.sh").read_text() == "echo version one\n"
    assert temporaries(lab.files) == []


def test_files_put_writes_a_private_whole_copy(lab, tmp_path, capsys):
    src = tmp_path / "payload.sh"
    src.write_bytes(os.urandom(300000))
    assert put(capsys, src, "x" * 255)[0] == 0
    copy = lab.files / ("x" * 255)
    assert copy.read_bytes() == src.read_bytes() and mode(copy) == 0o600


@pytest.mark.parametrize("name", ["../state.db", "a/../../x", "link", "folder", "missing", ".fileserver"])
def test_files_url_signs_only_regular_files_directly_in_files(lab, capsys, name):
    (lab.files / "folder").mkdir()
    (lab.files / "link").symlink_to(lab.db)
    assert main(["files", "url", "--name", name]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ERROR: (") and "--name" in err and "Traceback" not in err, err


def test_files_url_signs_a_plain_regular_file(lab, capsys):
    (lab.files / "payload.sh").write_text("echo hi\n")
    assert main(["files", "url", "--name", "payload.sh"]) == 0
    assert "/files/payload.sh?se=" in capsys.readouterr().out


# -- private folders and files --------------------------------------------------------------------
def test_ensure_makes_an_existing_home_private_and_says_so_once(tmp_path, capsys):
    home = tmp_path / "home"
    for d in ("", "disks", "keys", "gallery", "logs", "run", "files"):
        (home / d).mkdir(exist_ok=True)
        os.chmod(home / d, 0o755)
    paths = LabPaths(home).ensure()
    for d in (home, paths.disks, paths.keys, paths.gallery, paths.logs, paths.run, paths.files):
        assert mode(d) == 0o700, d
    assert f"{home} was mode 0755; now 0700" in capsys.readouterr().err
    paths.ensure()
    assert capsys.readouterr().err == ""  # already private: nothing said


def test_keys_seed_and_secret_are_private_and_whole(lab):
    priv, pub_line = ensure_keypair(lab.keys)
    assert mode(priv) == 0o600 and mode(lab.keys) == 0o700
    derived = subprocess.run(["ssh-keygen", "-y", "-f", str(priv)], capture_output=True, text=True)
    if derived.returncode == 0:
        assert derived.stdout.split()[:2] == pub_line.split()[:2]  # the pair matches
    pins = PinnedHostKeys(lab.keys / "hostkeys", "vm0")
    pins.check(SimpleNamespace(get_name=lambda: "ssh-ed25519", get_base64=lambda: "AAAA"))
    assert mode(pins.path) == 0o600
    fileserver.secret(lab)
    assert mode(lab.keys / "fileserver.key") == 0o600


def test_a_seed_is_built_in_memory_and_never_written_on_the_controller(lab, monkeypatch):
    """It may hold protected settings: its bytes go up to the host's pool (disks.write_seed) only."""
    before = sorted(lab.home.rglob("*"))
    assert seed_mod.seed_iso("#cloud-config\n", "instance-id: a\n")[32769:32774] == b"CD001"

    def broken(self, fp, *a, **k):
        fp.write(b"\0" * 4096)
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(seed_mod.pycdlib.PyCdlib, "write_fp", broken)
    with pytest.raises(OSError):
        seed_mod.seed_iso("#cloud-config\n", "instance-id: b\n")
    assert sorted(lab.home.rglob("*")) == before


def test_instance_disks_come_from_the_storage_api_not_qemu_img():
    """No instance disk is a file the controller makes: disks.py asks the host's pool (storage.py)."""
    assert "qemu-img" not in Path(vm.__file__).read_text()
    text = Path(disks.__file__).read_text()
    assert not [w for w in ("qemu-img", "open(", "unlink", "pathlib", "import os") if w in text]
    assert not any(hasattr(qcow2, f) for f in ("create_overlay", "create_blank", "grow"))
