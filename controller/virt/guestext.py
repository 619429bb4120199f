"""An extension-only model change applied in the running guest, over SSH: no new OS disk, no reboot.

One round trip: `sudo sh -s` reads a script on stdin (one brace group: parsed whole before any of
it runs, so a connection lost half-way runs nothing) that writes the current runner (and the
health agent's files when the health extension runs), writes the update's config (0600; it may
hold protectedSettings: they travel on stdin, never on a command line), runs the runner on it
(output to a 0600 log file, never to the console), then prints what the readiness wait prints:
cloud-init's result, the boot id, the image stamp and the extension statuses.
"""
from __future__ import annotations

import base64
import json
import time

from controller.core.settings import LabPaths
from controller.model import extensions as ext_mod
from controller.model.instance import Instance
from controller.virt.hypervisor import Hypervisor
from controller.virt.reach import Route
from controller.virt.readiness import (
    EXTRA_SEP,
    READINESS_PROBE,
    Readiness,
    parse_readiness,
)
from controller.virt.vm import Booted, ssh

UPDATE_CONFIG = f"{ext_mod.GUEST_DIR}/update.json"
UPDATE_LOG = f"{ext_mod.GUEST_DIR}/update.log"


def _put(path: str, data: bytes, mode: str) -> str:
    """Shell text writing `data` to `path` (through a temporary file, then renamed)."""
    b64 = base64.encodebytes(data).decode()
    return f"base64 -d > {path}.tmp <<'SCALESET_B64'\n{b64}SCALESET_B64\nchmod {mode} {path}.tmp && mv {path}.tmp {path}\n"


def update_script(config: dict, agent: bool) -> bytes:
    """The script `sudo sh -s` runs (pure: its text holds the config, so never log it)."""
    parts = ["umask 077\n", f"mkdir -p {ext_mod.GUEST_STATUS}\n",
             _put(ext_mod.GUEST_RUNNER, ext_mod.RUNNER_SOURCE.read_bytes(), "0700")]
    if agent:  # the health extension may be new to this guest: its agent's files, current
        home = f"{ext_mod.GUEST_AGENT_HOME}/agent"
        parts.append(f"mkdir -p {home} && chmod 0755 {ext_mod.GUEST_AGENT_HOME} {home}\n")
        parts += [_put(f"{home}/{f.name}", f.read_bytes(), "0644") for f in ext_mod.agent_sources()]
    parts.append(_put(UPDATE_CONFIG, json.dumps(config).encode(), "0600"))
    parts.append(f"python3 {ext_mod.GUEST_RUNNER} {UPDATE_CONFIG} >> {UPDATE_LOG} 2>&1\n")
    parts.append(f"{READINESS_PROBE}; echo {EXTRA_SEP}; {ext_mod.READ_STATUSES}\n")
    return ("{\n" + "".join(parts) + "}\n").encode()  # one group: sh runs nothing of a script cut short


def parse_update(stdout: str, started: float) -> Booted:
    """The script's output, read as the readiness wait reads its own."""
    main, _, extra = stdout.partition(EXTRA_SEP + "\n")
    status, boot_id, stamp = parse_readiness(main)
    if not boot_id:
        raise RuntimeError("the guest did not report its boot id after the extension update")
    return Booted(Readiness(status, boot_id, stamp, {"extensions": time.monotonic() - started}),
                  ext_mod.parse_statuses(extra))


def update_extensions(hv: Hypervisor, paths: LabPaths, inst: Instance, config: dict, agent: bool,
                      timeout: float, route: Route | None = None) -> Booted:
    """Run the update `config` (runner_config with `only` and `removed`) in `inst`'s guest
    (reached through `route`: a tunnel for a guest on another host)."""
    started = time.monotonic()
    client = ssh(paths, inst, hv, route)
    try:
        client.wait(started + min(60.0, timeout))
        res = client.run("sudo sh -s", timeout=max(1.0, started + timeout - time.monotonic()),
                         stdin=update_script(config, agent))
    finally:
        client.close()
    if res.exit_status != 0:
        last = (res.stderr.strip().splitlines() or [""])[-1][:200]
        raise RuntimeError(f"the extension update exited {res.exit_status}: {last}")
    return parse_update(res.stdout, started)

