"""Which process owns a journalled step, and whether it still lives; child processes that
end with the lab's process."""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from controller.core import signals
from controller.core.errors import Interrupted

_OWN: dict[int, str] = {}


def process_tag(pid: int | None = None) -> str:
    """pid plus its start time: a recycled pid is not mistaken for a live owner."""
    if pid is None:
        pid = os.getpid()
        if pid not in _OWN:  # after a fork the pid differs: computed again
            _OWN[pid] = process_tag(pid)
        return _OWN[pid]
    try:
        start = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        start = "?"
    return f"{pid}:{start}"


def owner_alive(tag: str) -> bool:
    pid = int(tag.split(":", 1)[0])
    return Path(f"/proc/{pid}").exists() and process_tag(pid) == tag


TERM_GRACE = 1.0  # seconds from SIGTERM to SIGKILL of a child's group (the watchdog ends us at 1.5)
POLL = 0.1


class Children:
    """Child processes that belong to this process (image builds): each in a process group of
    its own, so that stopping it stops whatever it started (mmdebstrap's apt and dpkg, a chroot
    script). `stop()` (the controller stopping) or a signal (signals.STOP) ends them all; no
    child is started after `stop()`."""

    def __init__(self) -> None:
        self.running: set[subprocess.Popen] = set()
        self.stopped = False
        self.lock = threading.Lock()

    def run(self, args: list[str], *, input: str | bytes | None = None, capture_output: bool = False,
            text: bool = False, check: bool = False, **kw) -> subprocess.CompletedProcess:
        """subprocess.run in a group of its own; Interrupted once asked to stop (the group ended)."""
        pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE} if capture_output else {}
        with self.lock:
            self._check()
            proc = subprocess.Popen(args, stdin=subprocess.PIPE if input is not None else None, text=text,
                                    start_new_session=True, **pipes, **kw)
            self.running.add(proc)
        try:
            while True:
                try:
                    out, err = proc.communicate(input, timeout=POLL)
                    break
                except subprocess.TimeoutExpired:
                    if self.stopped or signals.STOP.is_set():
                        end_group(proc)
                        proc.communicate()
                        self._check()
        except BaseException:
            end_group(proc)
            raise
        finally:
            with self.lock:
                self.running.discard(proc)
        with self.lock:
            self._check()  # stopped while it ended: what it made is not to be used
        if check and proc.returncode:
            raise subprocess.CalledProcessError(proc.returncode, args, out, err)
        return subprocess.CompletedProcess(args, proc.returncode, out, err)

    def _check(self) -> None:
        if self.stopped:
            raise Interrupted(signal.SIGTERM)
        signals.check()

    def stop(self) -> None:
        """End every running child's group (SIGTERM, SIGKILL after TERM_GRACE); refuse new ones."""
        with self.lock:
            self.stopped = True
            procs = list(self.running)
        for proc in procs:
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + TERM_GRACE
        for proc in procs:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _signal_group(proc, signal.SIGKILL)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    """Signal the child's group while its leader is not reaped (its pgid cannot be reused then)."""
    if proc.returncode is None:
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def end_group(proc: subprocess.Popen) -> None:
    """SIGTERM the child's group, SIGKILL after TERM_GRACE, and reap the child."""
    _signal_group(proc, signal.SIGTERM)
    try:
        proc.wait(TERM_GRACE)
    except subprocess.TimeoutExpired:
        pass
    _signal_group(proc, signal.SIGKILL)
    proc.wait()


_LOCAL = threading.local()
DEFAULT = Children()  # the CLI's: ended by a signal


def children() -> Children:
    """This thread's owner of children (`owned_by`), else the process's."""
    return getattr(_LOCAL, "owner", None) or DEFAULT


@contextmanager
def owned_by(owner: Children) -> Iterator[Children]:
    """Children started by this thread in the block belong to `owner`."""
    previous, _LOCAL.owner = getattr(_LOCAL, "owner", None), owner
    try:
        yield owner
    finally:
        _LOCAL.owner = previous


def run(args: list[str], **kw) -> subprocess.CompletedProcess:
    """subprocess.run for a child that must not outlive the lab's process (see Children)."""
    return children().run(args, **kw)
