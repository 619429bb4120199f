"""SIGINT and SIGTERM end a command within seconds (even one blocked in a boot wait in a worker
thread), with 130/143, one ERROR line and no traceback; what is left is the journal's to repair."""
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from controller.core import signals
from controller.core.errors import Interrupted
from controller.state.db import connect
from images.gallery import Gallery
from tests import fakepool

REPO = Path(__file__).resolve().parent.parent
LINE = re.compile(r"ERROR: \(OperationPreempted\) interrupted by SIG(INT|TERM); run scaleset repair .*")


@pytest.fixture
def env(lab, tmp_path, qcow2_file):
    """A lab on libvirt's test driver with image 1.0.0, for CLI subprocesses."""
    db = connect(lab.db)
    Gallery(lab, db).import_file("p", "o", "s", "1.0.0", qcow2_file)
    db.close()
    return {**os.environ, "SCALESET_HOME": str(lab.home), "SCALESET_PORTS_DIR": str(tmp_path),
            "SCALESET_LIBVIRT_URI": "test:///default", "PYTHONPATH": fakepool.PYTHONPATH}


def start(env, tmp_path, *argv) -> tuple[subprocess.Popen, Path]:
    err = tmp_path / f"stderr-{time.monotonic_ns()}"
    proc = subprocess.Popen([sys.executable, "-m", "controller.cli", *argv], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=err.open("w"))
    return proc, err


def until(what, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < end, "the command never got where the test waits for it"
        time.sleep(0.1)


def swap_phase(home: Path) -> str | None:
    try:
        with sqlite3.connect(f"file:{home / 'state.db'}?mode=ro", uri=True, timeout=1) as db:
            row = db.execute("SELECT phase FROM disk_swaps ORDER BY id DESC LIMIT 1").fetchone()
    except sqlite3.Error:
        return None
    return row[0] if row else None


def opened(pid: int, path: Path) -> bool:
    """Whether process `pid` has `path` open."""
    try:
        return any(os.readlink(f) == str(path) for f in Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False


def stop(proc: subprocess.Popen, sig: int, again: bool = False) -> float:
    """Send `sig` (twice with `again`) and return the seconds until the process ended."""
    t0 = time.monotonic()
    proc.send_signal(sig)
    if again:  # at once: the second lands while the first is being handled
        proc.send_signal(sig)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"signal {sig} did not end the command in 15 s")
    return time.monotonic() - t0


def check_ended(proc, err: Path, sig: int, seconds: float, what: str) -> None:
    text = err.read_text()
    print(f"\n{what}: {signal.Signals(sig).name} -> exit in {seconds:.2f} s (rc {proc.returncode})")
    assert proc.returncode == 128 + sig, text
    assert "Traceback" not in text and "Exception ignored" not in text, text
    lines = [ln for ln in text.splitlines() if ln.startswith("ERROR:")]
    assert len(lines) == 1 and LINE.fullmatch(lines[0]), text
    assert signal.Signals(sig).name in lines[0]
    assert seconds < 10, f"{seconds:.1f} s"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_ends_a_create_blocked_in_its_boot_wait(env, lab, tmp_path, sig):
    """`create` on the test driver: the guest never writes a console, so the boot wait (a worker
    thread, 600 s) blocks; the signal ends it, and the swap stays open for `scaleset repair`."""
    proc, err = start(env, tmp_path, "create", "--name", "web", "--image", "p:o:s:1.0.0", "--instance-count", "1")
    try:
        until(lambda: swap_phase(lab.home) == "swapped" or proc.poll() is not None)
        assert proc.poll() is None, err.read_text()
        time.sleep(0.5)  # inside the console wait
        seconds = stop(proc, sig)
    finally:
        if proc.poll() is None:
            proc.kill()
    check_ended(proc, err, sig, seconds, "create in its boot wait")
    assert swap_phase(lab.home) == "swapped"  # not settled as failed: repair finishes it


def test_a_second_ctrl_c_ends_it_without_a_traceback(env, lab, tmp_path):
    proc, err = start(env, tmp_path, "create", "--name", "web", "--image", "p:o:s:1.0.0", "--instance-count", "1")
    try:
        until(lambda: swap_phase(lab.home) == "swapped" or proc.poll() is not None)
        time.sleep(0.5)
        seconds = stop(proc, signal.SIGINT, again=True)
    finally:
        if proc.poll() is None:
            proc.kill()
    check_ended(proc, err, signal.SIGINT, seconds, "create, Ctrl-C twice")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_the_long_running_controller(env, tmp_path, sig):
    proc, err = start(env, tmp_path, "controller", "--interval", "0.2", "--no-files", "--api-port", "0")
    try:
        until(lambda: "controller watching" in err.read_text() or proc.poll() is not None)
        assert proc.poll() is None, err.read_text()
        time.sleep(0.5)
        seconds = stop(proc, sig)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = err.read_text()
    assert proc.returncode == 128 + sig and seconds < 10, text
    # an idle controller cut nothing off: it says it stopped, not ERROR ... run scaleset repair
    assert f"controller stopped ({signal.Signals(sig).name})" in text, text
    assert "ERROR" not in text and "Traceback" not in text and "repair" not in text, text


def test_waits_end_once_stop_is_set_and_the_watchdog_is_armed():
    """In-process: sleep and interruptible give up at once after a signal."""
    signals.reset()
    try:
        signals._S.signum = signal.SIGTERM  # what trigger() records, without arming the watchdog
        signals.STOP.set()
        t0 = time.monotonic()
        with pytest.raises(Interrupted) as exc:
            signals.sleep(30)
        assert exc.value.signum == signal.SIGTERM and exc.value.code == "OperationPreempted"
        with pytest.raises(Interrupted):
            signals.interruptible(threading.Event().wait, 30)
        assert time.monotonic() - t0 < 1
    finally:
        signals.reset()


def test_interruptible_returns_and_raises_what_the_call_does():
    signals.reset()
    assert signals.interruptible(lambda a, b=0: a + b, 2, b=3) == 5
    with pytest.raises(KeyError):
        signals.interruptible({}.__getitem__, "x")


def test_watchdog_ends_a_command_stuck_in_c_code(env, lab, tmp_path):
    """The main thread waits inside SQLite's busy handler (C code, another writer holds the lock),
    where no Python signal handler runs: the watchdog ends the process GRACE seconds later."""
    holder = sqlite3.connect(lab.db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        proc, err = start(env, tmp_path, "image", "update", "--publisher", "p", "--offer", "o", "--sku", "s",
                          "--version", "1.0.0", "--exclude-from-latest", "true")
        until(lambda: opened(proc.pid, lab.db) or proc.poll() is not None)
        time.sleep(0.5)  # into the 30 s busy wait
        assert proc.poll() is None, err.read_text()
        seconds = stop(proc, signal.SIGINT)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    check_ended(proc, err, signal.SIGINT, seconds, "image update in SQLite's busy wait")
    assert seconds >= signals.GRACE - 0.2  # it was the watchdog, not the handler
