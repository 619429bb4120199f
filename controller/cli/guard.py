"""How a command ends: its exit code and at most one ERROR line, never a traceback.

LabError -> `ERROR: (Code) message` (1); Interrupted -> 128 + signum; OSError and sqlite3.Error
-> the lab's error naming the file; a closed pipe -> 141; anything else -> InternalError with
the path of a log file that holds the traceback.
"""
from __future__ import annotations

import os
import sqlite3
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable

from controller.core import signals
from controller.core.errors import Interrupted, LabError, from_db_error, from_os_error
from controller.core.files import atomic_write
from controller.core.settings import lab_paths


def _say(line: str) -> None:
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def _flush_stdout() -> None:
    """Surface a write error of the command's output (a full disk, a closed pipe) here."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:  # what is left in the buffer goes nowhere, not into a second error at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise from_os_error(exc, "standard output") from None


def log_traceback(exc: BaseException) -> Path | None:
    """Write the traceback under $SCALESET_HOME/logs/, else the temp dir; the path, or None."""
    text = "".join(traceback.format_exception(exc))
    name = f"error-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.log"
    for folder in (lab_paths().logs, Path(tempfile.gettempdir())):
        try:
            if folder.is_dir():
                return atomic_write(folder / name, text, 0o600)
        except OSError:
            continue
    return None


def run(command: Callable[[], int], entry: bool) -> int:
    """Run `command` with the signal handlers installed; `entry`: this is the process's main
    (the handlers stay to the end of the process), else they are given back afterwards."""
    signals.install()
    try:
        try:
            code = command()
            _flush_stdout()
            signals.check()  # a wait that swallowed the interruption still ends as interrupted
            return code
        finally:
            signals.hold()
    except KeyboardInterrupt:  # handlers not installed (main() called outside the main thread)
        return 130
    except Exception as exc:  # noqa: BLE001 - every error ends as one line
        if signals.STOP.is_set() and not isinstance(exc, Interrupted):
            exc = Interrupted(signals.signum())  # what failed, failed because of the signal
        code = report(exc)
        if entry and isinstance(exc, Interrupted):  # no interpreter shutdown: it joins worker threads
            signals.exit_now(exc.signum)
        return code
    finally:
        if not entry:
            signals.uninstall()


def report(exc: Exception) -> int:
    """Say `exc` in one line; its exit code."""
    if isinstance(exc, Interrupted):
        if not signals.was_reported():
            _say(signals.stop_line(exc.signum))  # the ERROR line, or the command's own (`controller stopped`)
        signals.reported()
        return signals.exit_code(exc.signum)
    if isinstance(exc, BrokenPipeError):  # `scaleset ... | head`: the reader left; no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    if isinstance(exc, OSError):
        exc = from_os_error(exc)
    elif isinstance(exc, sqlite3.Error):
        exc = from_db_error(exc, lab_paths().db)
    if isinstance(exc, LabError):
        _say(f"ERROR: ({exc.code}) {exc}")
        return 1
    log = log_traceback(exc)  # the last net: a line and a log file, not a traceback
    where = f"; traceback in {log}" if log else ""
    _say(f"ERROR: (InternalError) {type(exc).__name__}: {exc}{where}")
    return 1
