"""Environment faults are one ERROR line naming the file or field, a non-zero exit, no traceback:
a damaged state.db, a read-only home, a full disk, two concurrent imports, a too-long name."""
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from controller.cli import main as cli_main
from controller.state.db import connect
from tests import fakepool

REPO = Path(__file__).resolve().parent.parent
REF = ["--publisher", "p", "--offer", "o", "--sku", "s"]


def cli(env: dict, *argv: str, namespace: str | None = None) -> subprocess.CompletedProcess:
    """`python -m controller.cli ARGV`; with `namespace`, inside a private mount namespace after
    the shell commands `namespace` (mounts there never reach the host)."""
    cmd = [sys.executable, "-m", "controller.cli", *argv]
    if namespace:
        cmd = ["unshare", "-m", "sh", "-c", f'{namespace} && exec "$0" "$@"', *cmd]
    return subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=60)


def failed_cleanly(res: subprocess.CompletedProcess, code: str, names: str) -> str:
    err = res.stderr
    assert res.returncode != 0, err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    line = [ln for ln in err.splitlines() if ln.startswith("ERROR:")]
    assert len(line) == 1 and line[0].startswith(f"ERROR: ({code}) "), err
    assert names in line[0], err
    return line[0]


@pytest.fixture
def env(lab, tmp_path) -> dict:
    return {**os.environ, "SCALESET_HOME": str(lab.home), "SCALESET_PORTS_DIR": str(tmp_path),
            "SCALESET_LIBVIRT_URI": "test:///default", "PYTHONPATH": fakepool.PYTHONPATH}


@pytest.fixture(scope="module")
def namespaces() -> None:
    ok = subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0
    if not ok:
        pytest.skip("no private mount namespace here (unshare -m); the in-process tests cover the mapping")


def test_garbage_state_db(env, lab):
    lab.db.write_bytes(os.urandom(8192))
    for argv in (["image", "list"], ["show", "--name", "web"]):
        failed_cleanly(cli(env, *argv), "StateCorrupt", str(lab.db))


def test_truncated_state_db(env, lab):
    connect(lab.db).close()
    whole = lab.db.read_bytes()
    assert len(whole) > 4096
    for f in lab.home.glob("state.db-*"):
        f.unlink()
    lab.db.write_bytes(whole[:1000])
    failed_cleanly(cli(env, "image", "list"), "StateCorrupt", str(lab.db))


def test_read_only_home(env, lab, tmp_path, qcow2_file, namespaces):
    connect(lab.db).close()
    src = tmp_path / "payload.sh"
    src.write_text("echo hi\n")
    ro = f"mount --bind {shlex.quote(str(lab.home))} {shlex.quote(str(lab.home))} && " \
         f"mount -o remount,bind,ro {shlex.quote(str(lab.home))}"
    failed_cleanly(cli(env, "files", "put", "--file", str(src), namespace=ro), "ReadOnlyStorage",
                   str(lab.home / "files"))
    failed_cleanly(cli(env, "image", "import", *REF, "--version", "1.0.0", "--file", str(qcow2_file), namespace=ro),
                   "ReadOnlyStorage", str(lab.home))
    failed_cleanly(cli(env, "show", "--name", "web", namespace=ro), "ReadOnlyStorage", str(lab.db))


def test_full_disk(env, lab, tmp_path, namespaces):
    """A 1 MiB tmpfs as the home, filled up: `show` and `files put` fail cleanly, and `files put`
    leaves no truncated file to serve (nor a temporary one)."""
    src = tmp_path / "payload.bin"
    src.write_bytes(os.urandom(256 * 1024))
    home, out, py = (shlex.quote(str(p)) for p in (lab.home, tmp_path, sys.executable))
    script = (f"mount -t tmpfs -o size=1m,mode=0700 tmpfs {home} && {py} -m controller.cli image list >/dev/null"
              f" && (head -c 2m /dev/zero > {home}/filler 2>/dev/null; "
              f"{py} -m controller.cli show --name web 2> {out}/show.err; echo $? > {out}/show.rc; "
              f"{py} -m controller.cli files put --file {shlex.quote(str(src))} --name payload.bin 2> {out}/put.err; "
              f"echo $? > {out}/put.rc; ls -A {home}/files > {out}/files.ls)")
    subprocess.run(["unshare", "-m", "sh", "-c", script], env=env, cwd=REPO, check=True, timeout=60)

    def result(step):
        return subprocess.CompletedProcess([step], int((tmp_path / f"{step}.rc").read_text()), "",
                                           (tmp_path / f"{step}.err").read_text())
    failed_cleanly(result("show"), "InsufficientStorage", str(lab.home))
    failed_cleanly(result("put"), "InsufficientStorage", str(lab.home / "files" / "payload.bin"))
    assert (tmp_path / "files.ls").read_text().split() == []  # no truncated file, no temporary file


def test_concurrent_import_of_one_version(env, lab, qcow2_file):
    """Two processes import the same version at once: one wins, the other says Conflict; the
    gallery holds one file for it and no partial files."""
    cmd = [sys.executable, "-m", "controller.cli", "image", "import", *REF, "--version", "1.0.0",
           "--file", str(qcow2_file)]
    procs = [subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(p.wait(timeout=60), *p.communicate()) for p in procs]
    codes = sorted(r[0] for r in results)
    assert codes == [0, 1], results
    loser = next(r for r in results if r[0] == 1)
    assert "Traceback" not in loser[2] and loser[2].startswith("ERROR: (Conflict) "), loser[2]
    assert "1.0.0" in loser[2]
    files = [p for p in lab.gallery.rglob("*") if p.is_file()]
    assert [p.name for p in files] == ["1.0.0.qcow2"], files
    assert not [p for p in lab.gallery.rglob("*") if "partial" in p.name or p.name.startswith(".import-")]


def test_files_put_name_of_300_characters(env, lab, tmp_path):
    src = tmp_path / "payload.sh"
    src.write_text("echo hi\n")
    failed_cleanly(cli(env, "files", "put", "--file", str(src), "--name", "a" * 300), "InvalidParameter", "--name")
    assert list((lab.home / "files").iterdir()) == []


def test_an_unexpected_error_is_one_line_and_a_log_file(lab, capsys, monkeypatch):
    """The last net: `ERROR: (InternalError) Type: message; traceback in FILE`, the traceback
    only in that file under the lab's logs/."""
    def boom(args):
        raise ValueError("unexpected state")
    monkeypatch.setattr(cli_main, "cmd_accel", boom)
    assert cli_main.main(["accel"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith("ERROR: (InternalError) ValueError: unexpected state; traceback in ")
    log = Path(err.rsplit("traceback in ", 1)[1].strip())
    assert log.parent == lab.logs and "Traceback" in log.read_text() and "boom" in log.read_text()


def test_os_and_sqlite_errors_name_the_file(lab, capsys, monkeypatch):
    import errno
    import sqlite3

    def enospc(args):
        raise OSError(errno.ENOSPC, "No space left on device", str(lab.home / "x"))

    def locked(args):
        raise sqlite3.OperationalError("database is locked")
    for fn, code, name in ((enospc, "InsufficientStorage", str(lab.home / "x")), (locked, "Conflict", str(lab.db))):
        monkeypatch.setattr(cli_main, "cmd_accel", fn)
        assert cli_main.main(["accel"]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"ERROR: ({code}) {name}: ") and "Traceback" not in err, err
