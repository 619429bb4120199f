"""Where the API listens: always 127.0.0.1; the port of the running controller, else
$SCALESET_API_PORT, else DEFAULT_PORT. The controller records its port in run/api.json."""
from __future__ import annotations

import json
import os
from pathlib import Path

from controller.core.errors import ModelError, from_os_error
from controller.core.files import atomic_write
from controller.core.procs import owner_alive, process_tag
from controller.core.settings import LabPaths

DEFAULT_PORT = 7443
HOST = "127.0.0.1"
PORT_ENV = "SCALESET_API_PORT"


def endpoint(port: int) -> str:
    return f"https://{HOST}:{port}"


def _port(value: object) -> int | None:
    """A TCP port 1..65535 from an int or a decimal string, else None."""
    if isinstance(value, str) and value.strip().isdecimal() and len(value.strip()) <= 5:
        value = int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535:
        return value
    return None


def record_path(paths: LabPaths) -> Path:
    return paths.run / "api.json"


def record(paths: LabPaths, port: int) -> None:
    """Say, in run/api.json, that this process serves the API on `port`."""
    if _port(port) is None or not isinstance(port, int):
        raise ModelError("--api-port", f"{port!r} is not a TCP port (1..65535)")
    doc = {"port": port, "pid": os.getpid(), "tag": process_tag()}  # tag: pid and start time, a recycled pid is no owner
    try:
        paths.run.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(record_path(paths), json.dumps(doc) + "\n", 0o600)
    except OSError as exc:
        raise from_os_error(exc, str(record_path(paths))) from None


def _alive(doc: dict) -> bool:
    tag, pid = doc.get("tag"), doc.get("pid")
    if isinstance(tag, str) and isinstance(pid, int) and tag.startswith(f"{pid}:"):
        return owner_alive(tag)
    return isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 and Path(f"/proc/{pid}").exists()


def recorded_port(paths: LabPaths) -> int | None:
    """The port in run/api.json when the process that wrote it still runs, else None."""
    try:
        doc = json.loads(record_path(paths).read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or not _alive(doc):
        return None
    return _port(doc.get("port"))


def configured_port() -> int:
    """A valid $SCALESET_API_PORT, else DEFAULT_PORT."""
    return _port(os.environ.get(PORT_ENV, "")) or DEFAULT_PORT


def current_port(paths: LabPaths) -> int:
    """The running controller's port, else configured_port()."""
    port = recorded_port(paths)
    return port if port is not None else configured_port()
