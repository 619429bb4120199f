"""SIGINT and SIGTERM end any command within 2 seconds.

`install()` (the CLI's main) handles both signals. The first one sets `STOP`, a process-wide
event every blocking wait of the lab checks (`sleep`, `check`, `interruptible`), and raises
`Interrupted(signum)` in the main thread. A watchdog thread, woken through the signal wakeup
fd even while the main thread is stuck in C code, ends the process `GRACE` seconds later with
128 + signum if threads still linger. A second signal ends it at once; neither prints a traceback.
"""
from __future__ import annotations

import os
import select
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, TypeVar

from controller.core.errors import Interrupted

GRACE = 1.5  # seconds from the first signal to a forced exit
SIGNALS = (signal.SIGINT, signal.SIGTERM)
STOP = threading.Event()
T = TypeVar("T")


@dataclass
class _State:
    signum: int = 0
    handled: int = 0  # signals the main-thread handler saw
    raising: bool = False  # a command runs: the handler raises Interrupted
    reported: bool = False  # the ERROR line was printed
    deferred: bool = False  # the command cleans up after a first signal: no forced exit for it
    farewell: Callable[[int], str | None] | None = None  # the line instead of the ERROR line, if any
    deadline: float | None = None
    pipe: tuple[int, int] | None = None
    previous: dict = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


_S = _State()


def error_line(signum: int) -> str:
    exc = Interrupted(signum)
    return f"ERROR: ({exc.code}) {exc}"


def exit_code(signum: int) -> int:
    return 128 + signum


def install() -> None:
    """Handle SIGINT and SIGTERM from now on (main thread only; idempotent)."""
    if threading.current_thread() is not threading.main_thread():
        return
    if _S.pipe is None:
        r, w = os.pipe()
        os.set_blocking(w, False)
        _S.pipe = (r, w)
        threading.Thread(target=_watch, args=(r,), name="scaleset-signal-watchdog", daemon=True).start()
    if not _S.previous:
        for sig in SIGNALS:
            _S.previous[sig] = signal.signal(sig, _handler)
        _S.previous["wakeup"] = signal.set_wakeup_fd(_S.pipe[1], warn_on_full_buffer=False)
    _S.raising = True


def hold() -> None:
    """From now on a signal no longer raises (the command is over or reporting): the watchdog
    still ends the process if it does not end by itself."""
    _S.raising = False


def uninstall() -> None:
    """Give the previous handlers back (for callers of main() other than the process entry)."""
    hold()
    _S.farewell = None
    if _S.previous and threading.current_thread() is threading.main_thread():
        for sig in SIGNALS:
            signal.signal(sig, _S.previous[sig])
        signal.set_wakeup_fd(_S.previous["wakeup"])
        _S.previous = {}


def defer() -> None:
    """For a command that deletes what it made after the first signal (`scaleset rehearse`):
    that signal stops its work but arms no forced exit; a second one still ends it at once.
    The command then does its clean-up in `cleaning_up()`."""
    _S.deferred = True


@contextmanager
def cleaning_up() -> Iterator[None]:
    """Work that must finish after a first signal (deleting what a run created): the stop
    request and the watchdog's deadline are set aside while it runs, then armed again."""
    with _S.lock:
        pending, _S.deadline = _S.signum if STOP.is_set() else 0, None
        STOP.clear()
    try:
        yield
    finally:
        _S.deferred = False
        if pending:
            trigger(pending)


def reported() -> None:
    """The ERROR line is out: the watchdog does not print it again."""
    _S.reported = True


def say_instead(farewell: Callable[[int], str | None] | None) -> None:
    """A command that can tell a clean stop (`scaleset controller`, nothing cut off): `farewell(signum)`
    is the line said instead of the ERROR line, or None for the ERROR line (something was cut off)."""
    _S.farewell = farewell


def stop_line(signum: int) -> str:
    """The line that says how the command stopped: the command's farewell, else the ERROR line."""
    try:
        line = _S.farewell(signum) if _S.farewell is not None else None
    except Exception:  # noqa: BLE001 - when it cannot tell, the ERROR line (repair is always safe)
        line = None
    return line or error_line(signum)


def was_reported() -> bool:
    """Whether the line that says how the command stopped is out."""
    return _S.reported


def reset() -> None:
    """Forget a past signal (tests)."""
    STOP.clear()
    _S.signum, _S.handled, _S.reported, _S.deadline, _S.deferred = 0, 0, False, None, False
    _S.farewell = None


def trigger(signum: int) -> None:
    """Ask everything to stop and arm the watchdog (idempotent)."""
    with _S.lock:
        if _S.deadline is None:
            _S.signum = _S.signum or signum
            _S.deadline = None if _S.deferred else time.monotonic() + GRACE
            STOP.set()
    if _S.pipe is not None:
        try:
            os.write(_S.pipe[1], b"\0")  # wake the watchdog
        except OSError:
            pass


def signum() -> int:
    """The signal that asked the lab to stop (SIGINT if none was recorded)."""
    return _S.signum or signal.SIGINT


def check() -> None:
    """Raise Interrupted if a signal asked the lab to stop."""
    if STOP.is_set():
        raise Interrupted(signum())


def sleep(seconds: float) -> None:
    """time.sleep that ends early with Interrupted once a signal asked the lab to stop."""
    if STOP.wait(max(0.0, seconds)):
        check()


def interruptible(fn: Callable[..., T], *args, poll: float = 0.1, timeout: float | None = None, **kwargs) -> T:
    """Run a blocking call that cannot watch STOP itself (a library's connect) in a daemon
    thread; raise Interrupted as soon as STOP is set (TimeoutError after `timeout` seconds),
    leaving the call to the process's end."""
    check()
    deadline = None if timeout is None else time.monotonic() + timeout
    box: dict = {}
    done = threading.Event()

    def run() -> None:
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, name=f"scaleset-{getattr(fn, '__name__', 'call')}", daemon=True).start()
    while not done.wait(poll if deadline is None else max(0.0, min(poll, deadline - time.monotonic()))):
        check()
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(f"no answer within {timeout:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _handler(signum: int, frame) -> None:
    _S.handled += 1
    if _S.handled > 1:
        exit_now(signum)
    trigger(signum)
    if _S.raising:
        raise Interrupted(signum)


def _watch(r: int) -> None:
    while True:
        deadline = _S.deadline
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready, _, _ = select.select([r], [], [], timeout)
        if ready:
            for b in os.read(r, 64):
                if b in SIGNALS:
                    trigger(b)
        if _S.deadline is not None and time.monotonic() >= _S.deadline:
            exit_now(_S.signum)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - best effort: the process ends next
            pass


def exit_now(signum: int) -> None:
    """Flush what was printed (bounded: another thread may hold the stream), say the ERROR line
    unless it is out, and end the process with 128 + signum."""
    flusher = threading.Thread(target=_flush, daemon=True)
    flusher.start()
    flusher.join(0.2)
    if not _S.reported:
        _S.reported = True
        try:
            os.write(2, (stop_line(signum) + "\n").encode())
        except OSError:
            pass
    os._exit(exit_code(signum))
