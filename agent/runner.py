"""In-guest extension runner: runs the model's extensions in order on a new OS disk.

Shipped in the NoCloud seed and started by cloud-init (runcmd). Standard library only.
Reads CONFIG (written 0600 by cloud-init), writes one status file per extension to
STATUS_DIR as it goes, and exits 1 when any extension failed (the statuses say which; the
seed's runcmd does not make it a cloud-init error). Script output goes to files only, never
to the console: it may carry secrets.

`runner.py UPDATE.json` applies an extension-only model change in the running guest (sent
over SSH by the controller, controller/virt/guestext.py): it removes the extensions listed
in `removed`, runs those in `extensions` (a prerequisite that is not in the file counts by
its status file), then deletes UPDATE.json. One run at a time (a lock file).
"""
from __future__ import annotations

import base64
import fcntl
import gzip
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

BASE = Path("/var/lib/scaleset-lab/extensions")
CONFIG = BASE / "config.json"
STATUS_DIR = BASE / "status"
TAIL = 4096
CUSTOM_SCRIPT = "CustomScript"
HEALTH = "ApplicationHealthLinux"
CLOUD_CONFIG = "CloudConfig"  # lab: its document is a part of the seed's user-data
AGENT_HOME = Path("/opt/scaleset-lab")
HEALTH_SETTINGS = Path("/etc/scaleset-lab/health.json")
AGENT_UNIT = Path("/etc/systemd/system/scaleset-health-agent.service")
AGENT_PORT = 8765
UNIT_TEXT = f"""[Unit]
Description=scaleset-lab Application Health agent
After=network.target

[Service]
Environment=PYTHONPATH={AGENT_HOME}
ExecStart=/usr/bin/python3 -m agent.server --settings {HEALTH_SETTINGS} --listen 0.0.0.0:{AGENT_PORT}
Restart=always
RestartSec=1

[Install]
WantedBy=multi-user.target
"""


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}Z"


def tail(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return data[-TAIL:].decode(errors="replace")


def redact(uri: str) -> str:
    """A URL without its query string: tokens never reach a status message."""
    parts = urllib.parse.urlsplit(uri)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def write_status(ext: dict, **fields) -> dict:
    status = {"name": ext["name"], "publisher": ext["publisher"], "type": ext["type"],
              "typeHandlerVersion": ext.get("typeHandlerVersion", "1.0"), **fields}
    STATUS_DIR.mkdir(parents=True, exist_ok=True)
    tmp = STATUS_DIR / f".{ext['name']}.tmp"
    tmp.write_text(json.dumps(status))
    os.chmod(tmp, 0o640)
    os.replace(tmp, STATUS_DIR / f"{ext['name']}.json")
    return status


def download(uri: str, dest: Path, timeout: float) -> None:
    name = os.path.basename(urllib.parse.urlsplit(uri).path) or "download"
    try:
        with urllib.request.urlopen(uri, timeout=timeout) as resp:  # noqa: S310 (lab URLs only)
            (dest / name).write_bytes(resp.read())
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"download of {redact(uri)} failed: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise RuntimeError(f"download of {redact(uri)} failed: {getattr(exc, 'reason', exc)}") from None


def run_custom_script(ext: dict, workdir: Path, timeout: float) -> tuple[int, str]:
    """(exit code, message) of a CustomScript extension; output lands in workdir."""
    cfg = {**(ext.get("settings") or {}), **(ext.get("protectedSettings") or {})}
    download_dir = workdir / "download"
    download_dir.mkdir(parents=True, exist_ok=True)
    for uri in cfg.get("fileUris") or []:
        download(uri, download_dir, timeout=min(timeout, 120))
    if cfg.get("script"):
        raw = base64.b64decode(cfg["script"])
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        script = workdir / "script.sh"
        script.write_bytes(raw)
        script.chmod(0o700)
        argv = ["/bin/sh", str(script)]
    elif cfg.get("commandToExecute"):
        argv = ["/bin/sh", "-c", str(cfg["commandToExecute"])]
    else:
        raise RuntimeError("settings need commandToExecute or script")
    with open(workdir / "stdout", "wb") as out, open(workdir / "stderr", "wb") as err:
        try:
            proc = subprocess.run(argv, cwd=download_dir, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return 124, f"timed out after {int(timeout)} s"
    return proc.returncode, f"exit code {proc.returncode}"


def install_health_agent(ext: dict) -> tuple[bool, str]:
    """Validate the settings as Azure does, write them, enable and start the agent's unit."""
    sys.path.insert(0, str(AGENT_HOME))
    try:
        from agent.settings import SettingsError, parse_settings
    except ImportError as exc:
        return False, f"the health agent is not installed: {exc}"
    try:
        parse_settings(ext.get("settings") or {})
    except SettingsError as exc:
        return False, f"invalid settings: {exc}"
    HEALTH_SETTINGS.parent.mkdir(parents=True, exist_ok=True)
    HEALTH_SETTINGS.write_text(json.dumps(ext.get("settings") or {}))
    AGENT_UNIT.write_text(UNIT_TEXT)
    problem = systemctl(["daemon-reload"], ["enable", AGENT_UNIT.name], ["restart", AGENT_UNIT.name])
    if problem:  # restart: new settings are read by a new agent process
        return False, problem
    return True, f"health agent running, view on port {AGENT_PORT}"


def systemctl(*calls: list[str]) -> str | None:
    """Run `systemctl ARGS` for each call in turn; the first failure's message, or None."""
    for args in calls:
        proc = subprocess.run(["systemctl", *args], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            return f"systemctl {' '.join(args)} failed: {proc.stderr.strip()[-300:]}"
    return None


def remove_one(name: str, ext_type: str) -> None:
    """An extension gone from the model: its status and work folder (its output) go; the
    health agent is stopped and disabled, with its settings, so nothing answers on its port."""
    if ext_type == HEALTH:
        systemctl(["disable", "--now", AGENT_UNIT.name])
        for path in (AGENT_UNIT, HEALTH_SETTINGS):
            path.unlink(missing_ok=True)
        systemctl(["daemon-reload"])
    (STATUS_DIR / f"{name}.json").unlink(missing_ok=True)
    workdir = BASE / name
    if workdir.is_dir() and workdir.parent == BASE:
        subprocess.run(["rm", "-rf", "--", str(workdir)], check=False)


def run_one(ext: dict, timeout: float) -> bool:
    workdir = BASE / ext["name"]
    workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
    start = now()
    write_status(ext, provisioningState="Creating", message="running", startTime=start)
    code: int | None = None
    try:
        if ext["type"] == CUSTOM_SCRIPT:
            code, message = run_custom_script(ext, workdir, timeout)
            ok = code == 0
        elif ext["type"] == HEALTH:
            ok, message = install_health_agent(ext)
        elif ext["type"] == CLOUD_CONFIG:
            ok, message = True, "applied by cloud-init (its errors show in cloud-init's result)"
        else:
            ok, message = False, f"unsupported extension type '{ext['type']}'"
    except (RuntimeError, ValueError, OSError) as exc:
        ok, message = False, str(exc)
    write_status(ext, provisioningState="Succeeded" if ok else "Failed", message=message, exitCode=code,
                 startTime=start, endTime=now(), stdout=tail(workdir / "stdout"), stderr=tail(workdir / "stderr"))
    return ok


def succeeded_before(name: str) -> bool:
    try:
        return json.loads((STATUS_DIR / f"{name}.json").read_text()).get("provisioningState") == "Succeeded"
    except (OSError, ValueError, AttributeError):
        return False


def main(argv: list[str] | None = None) -> int:
    path = Path(argv[0]) if argv else CONFIG
    BASE.mkdir(parents=True, exist_ok=True)
    with open(BASE / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # an update killed half-way may still run: wait for it
        return run_config(path)


def run_config(path: Path) -> int:
    cfg = json.loads(path.read_text())
    timeout = float(cfg.get("timeoutSeconds", 600))
    for gone in cfg.get("removed") or []:
        remove_one(gone["name"], gone["type"])
    result: dict[str, bool] = {}
    for ext in cfg["extensions"]:  # already in dependency order
        failed = [d for d in ext.get("provisionAfterExtensions") or []
                  if not (result[d] if d in result else succeeded_before(d))]
        if failed:
            result[ext["name"]] = False
            write_status(ext, provisioningState="Failed", startTime=None, endTime=now(), exitCode=None,
                         message=f"not run: prerequisite {', '.join(failed)} did not succeed")
        else:
            result[ext["name"]] = run_one(ext, timeout)
        print(f"scaleset-lab extension {ext['name']}: {'Succeeded' if result[ext['name']] else 'Failed'}",
              flush=True)
    if path == CONFIG:
        forget_secrets(cfg)
    else:  # an update's file is needed once
        path.unlink(missing_ok=True)
    return 0 if all(result.values()) else 1


def forget_secrets(cfg: dict) -> None:
    """protectedSettings are needed once: drop them from the config file after the run."""
    for ext in cfg["extensions"]:
        if ext.get("protectedSettings"):
            ext["protectedSettings"] = {}
    tmp = CONFIG.with_suffix(".tmp")
    tmp.write_text(json.dumps(cfg))
    os.chmod(tmp, 0o600)
    os.replace(tmp, CONFIG)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
