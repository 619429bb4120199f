"""A `scaleset controller` (with its API) as a process of its own that a test kills with SIGKILL
and starts again, on a lab whose test-driver domains and volumes outlive it (tests/killctl.py)."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import requests

from controller.api import tls, tokens
from controller.core.settings import LabPaths
from controller.model.armid import DEFAULT_RESOURCE_GROUP, SUBSCRIPTION_ID
from tests.persistvirt import URI

REPO = Path(__file__).resolve().parent.parent
API_VERSION = "2024-07-01"


def until(what, timeout: float = 30.0, why: str = "") -> object:
    """Wait for `what()` to be true (an observable state), polling; fails after `timeout` s."""
    end = time.monotonic() + timeout
    while True:
        got = what()
        if got:
            return got
        assert time.monotonic() < end, f"never reached: {why or what}"
        time.sleep(0.05)


class KillLab:
    def __init__(self, paths: LabPaths, tmp: Path) -> None:
        self.paths, self.tmp = paths, tmp
        self.state = tmp / "virt-state.json"
        self.hold = tmp / "hold"
        self.proc: subprocess.Popen | None = None
        self.err: Path | None = None
        self.port = 0
        self.qcow2: Path | None = None  # an image file for the test to publish versions from
        self.env = {**os.environ, "SCALESET_HOME": str(paths.home), "SCALESET_PORTS_DIR": str(tmp),
                    "SCALESET_LIBVIRT_URI": URI, "PYTHONPATH": str(REPO), "SCALESET_TEST_VIRT_STATE": str(self.state),
                    "SCALESET_TEST_HOLD": str(self.hold)}
        self.env.pop("SCALESET_CACHE", None)

    # -- the process -------------------------------------------------------------------------------
    def start(self, hold_at: str = "boot") -> None:
        """The controller and its API; the steps `hold_at` wait from hold() to release() (tests/killctl.py)."""
        self.env["SCALESET_TEST_HOLD_AT"] = hold_at
        self.err = self.tmp / f"controller-{time.monotonic_ns()}.err"
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.killctl", "controller", "--interval", "0.1",
                                      "--no-files", "--api-port", "0"], env=self.env, cwd=REPO,
                                     stdout=subprocess.DEVNULL, stderr=self.err.open("w"))
        self.port = until(self._serving, 60, "the controller's API up")

    def _serving(self) -> int:
        assert self.proc is not None
        assert self.proc.poll() is None, self.log()
        try:
            doc = json.loads((self.paths.run / "api.json").read_text())
        except (OSError, ValueError):
            return 0
        return doc["port"] if doc.get("pid") == self.proc.pid else 0

    def hold_steps(self, scale_set: str = "") -> None:
        """The held steps wait from now on (only those of `scale_set`'s guests, if named)."""
        self._hold(scale_set).touch()

    def release(self, scale_set: str = "") -> None:
        self._hold(scale_set).unlink(missing_ok=True)

    def _hold(self, scale_set: str) -> Path:
        return self.hold.with_name(f"{self.hold.name}-{scale_set}") if scale_set else self.hold

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"signal {sig} did not end the controller:\n{self.log()}") from None

    def log(self) -> str:
        return self.err.read_text() if self.err and self.err.exists() else ""

    # -- the API -----------------------------------------------------------------------------------
    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}/subscriptions/{SUBSCRIPTION_ID}/{path}"

    def set_url(self, name: str, tail: str = "") -> str:
        return self.url(f"resourceGroups/{DEFAULT_RESOURCE_GROUP}/providers/Microsoft.Compute/"
                        f"virtualMachineScaleSets/{name}{tail}")

    def call(self, method: str, url: str, body: object = None, **params) -> requests.Response:
        headers = {"Authorization": f"Bearer {tokens.mint(self.paths, 600)}"}
        return requests.request(method, url, json=body, headers=headers, timeout=30, verify=str(self.ca),
                                params={"api-version": API_VERSION, **params})

    @property
    def ca(self) -> Path:
        return tls.ensure_certs(self.paths).ca

    def poll(self, op_url: str, **params) -> requests.Response:
        """The operation resource at the URL the API handed out, from the current process."""
        tail = op_url.split("/subscriptions/", 1)[1].split("?", 1)[0]
        return self.call("GET", f"https://127.0.0.1:{self.port}/subscriptions/{tail}", **params)

    # -- what the lab holds ------------------------------------------------------------------------
    def db(self, sql: str, *args) -> list[tuple]:
        with sqlite3.connect(f"file:{self.paths.db}?mode=ro", uri=True, timeout=5) as db:
            return db.execute(sql, args).fetchall()

    def virt(self) -> dict:
        """What the killed or running process left in libvirt (its state file)."""
        return json.loads(self.state.read_text()) if self.state.exists() else {"pools": [], "domains": []}
