"""The real Azure CLI for the tests: a virtualenv with `azure-cli`, made once, and `Az`, an `az`
registered as a custom cloud on the lab's https://127.0.0.1 endpoint and logged in with the lab's
managed-identity token endpoint. Findings behind the settings: /work/briefs/b-az-findings.md.

Nothing here sends traffic beyond 127.0.0.0/8: the endpoints are checked to be loopback, az's update
check is answered from a seeded cache, extension auto-install and telemetry are off, and every other
HTTP(S) request az might make goes to a closed loopback port through a proxy setting.
"""
from __future__ import annotations

import datetime
import fcntl
import ipaddress
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

REPO = Path(__file__).resolve().parent.parent
AZURE_CLI_VERSION = "2.91.0"  # the release the findings were recorded with
VENV = REPO / ".cache" / "azcli"
MARKER = "azcli-ready.json"  # written last: a venv without it is a broken install and is made again
CLOUD = "Lab"
DEAD_PROXY = "http://127.0.0.1:9"  # nothing listens: a request for any other host fails here, not outside
INSTALL_TIMEOUT = 1800.0
CHECK_TIMEOUT = 120.0
_READY: set[Path] = set()  # venvs this process has already checked


class AzError(Exception):
    """An az command that ended with a non-zero exit code; `proc` has its output."""

    def __init__(self, args: tuple[str, ...], proc: subprocess.CompletedProcess) -> None:
        super().__init__(f"az {' '.join(args)} -> exit {proc.returncode}: {proc.stderr.strip()[-2000:]}")
        self.proc = proc


def _loopback(url: str, what: str) -> None:
    """Refuse a URL whose host is not on 127.0.0.0/8 (or localhost)."""
    host = urlsplit(url).hostname or ""
    try:
        ok = host == "localhost" or ipaddress.ip_address(host) in ipaddress.ip_network("127.0.0.0/8")
    except ValueError:
        ok = False
    if not ok or urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"{what}: {url!r} is not an http(s) URL on 127.0.0.0/8")


def _versions(venv: Path) -> dict[str, str]:
    """The installed azure-cli, azure-cli-core and azure-cli-telemetry versions, read without running az."""
    code = ("import json, importlib.metadata as m; print(json.dumps({n: m.version(n) for n in "
            "('azure-cli', 'azure-cli-core', 'azure-cli-telemetry')}))")
    out = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True,
                         timeout=CHECK_TIMEOUT, check=True)
    return json.loads(out.stdout)


def seed_config_dir(config_dir: Path, versions: dict[str, str]) -> None:
    """Make an AZURE_CONFIG_DIR whose update-check cache is fresh, so az does not ask the internet for
    its latest version (it does on the first run in an empty config dir, and `az --version` always does)."""
    config_dir.mkdir(parents=True, exist_ok=True)
    now = str(datetime.datetime.now())
    cache = {"versions": {"azure-cli": {"local": versions["azure-cli"]}, "core": {"local": versions["azure-cli-core"]},
                          "telemetry": {"local": versions["azure-cli-telemetry"]}},
             "update_time": now, "check_time": now}
    (config_dir / "versionCheck.json").write_text(json.dumps(cache))


def az_env(venv: Path, home: Path, config_dir: Path, ca: Path | None = None, token_url_host: str | None = None) -> dict:
    """The whole environment az runs with: only what it needs, and settings that keep it quiet and local."""
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "AZURE_CONFIG_DIR": str(config_dir),
        "AZURE_CORE_COLLECT_TELEMETRY": "false",
        "AZURE_CORE_NO_COLOR": "true",
        "AZURE_CORE_OUTPUT": "json",
        "AZURE_CORE_SURVEY_MESSAGE": "false",
        "AZURE_CORE_DISABLE_PROGRESS_BAR": "true",
        "AZURE_CORE_DISABLE_CONFIRM_PROMPT": "true",
        "AZURE_CORE_ERROR_RECOMMENDATION": "off",
        "AZURE_CORE_INSTANCE_DISCOVERY": "false",
        "AZURE_EXTENSION_USE_DYNAMIC_INSTALL": "no",  # else a mistyped command fetches aka.ms/azExtCmdTree
        "HTTPS_PROXY": DEAD_PROXY, "HTTP_PROXY": DEAD_PROXY, "https_proxy": DEAD_PROXY, "http_proxy": DEAD_PROXY,
        "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
    }
    if ca is not None:
        env["REQUESTS_CA_BUNDLE"] = str(ca)
    if token_url_host is not None:
        # Read by every az call that needs a token; without it az asks http://169.254.169.254.
        env["AZURE_POD_IDENTITY_AUTHORITY_HOST"] = token_url_host
    return env


def _works(venv: Path) -> bool:
    """True when the venv was completely installed with the pinned azure-cli and `az version` runs."""
    try:
        ready = json.loads((venv / MARKER).read_text())
        if ready.get("azure-cli") != AZURE_CLI_VERSION or not (venv / "bin" / "az").exists():
            return False
        with tempfile.TemporaryDirectory(prefix="azcli-check-") as tmp:
            config = Path(tmp) / "config"
            seed_config_dir(config, ready)
            proc = subprocess.run([str(venv / "bin" / "az"), "version", "-o", "json"], check=False, capture_output=True,
                                  text=True, env=az_env(venv, Path(tmp), config), timeout=CHECK_TIMEOUT,
                                  stdin=subprocess.DEVNULL)
        return proc.returncode == 0 and json.loads(proc.stdout).get("azure-cli") == AZURE_CLI_VERSION
    except (OSError, ValueError, subprocess.SubprocessError):
        return False


def azcli_venv(root: Path = VENV) -> Path:
    """A virtualenv with azure-cli (its own: it pins its own azure-mgmt-compute), made once under
    `<repo>/.cache/azcli` and reused; a file lock keeps parallel sessions from installing at once."""
    if root in _READY:
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / "azcli.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _works(root):
            _READY.add(root)
            return root
        shutil.rmtree(root, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, timeout=CHECK_TIMEOUT)
        pip = subprocess.run([str(root / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                              f"azure-cli=={AZURE_CLI_VERSION}"],
                             check=False, capture_output=True, text=True, timeout=INSTALL_TIMEOUT,
                             stdin=subprocess.DEVNULL)
        if pip.returncode != 0:
            raise RuntimeError(f"pip install azure-cli=={AZURE_CLI_VERSION} failed: {pip.stderr.strip()[-2000:]}")
        (root / MARKER).write_text(json.dumps(_versions(root)))
        if not _works(root):
            raise RuntimeError(f"{root}: azure-cli {AZURE_CLI_VERSION} was installed but `az version` does not run")
        _READY.add(root)
        return root


@pytest.fixture(scope="session")
def az_venv() -> Path:
    """The azure-cli virtualenv (installed on first use: about 90 s)."""
    return azcli_venv()


class Az:
    """`az` in its own config dir, registered as cloud "Lab" on `endpoint` and logged in through the
    lab's managed-identity endpoint `token_url_host` (az appends /metadata/identity/oauth2/token)."""

    def __init__(self, endpoint: str, ca: Path, token_url_host: str, tmp: Path, *,
                 venv: Path | None = None, timeout: float = 300.0) -> None:
        _loopback(endpoint, "endpoint")
        _loopback(token_url_host, "token_url_host")
        self.endpoint = endpoint.rstrip("/") + "/"
        self.venv = venv or azcli_venv()
        self.timeout = timeout
        tmp = Path(tmp)
        self.config_dir = tmp / "az-config"
        home = tmp / "az-home"
        home.mkdir(parents=True, exist_ok=True)
        seed_config_dir(self.config_dir, json.loads((self.venv / MARKER).read_text()))
        self.env = az_env(self.venv, home, self.config_dir, Path(ca), token_url_host.rstrip("/"))
        self.json("cloud", "register", "-n", CLOUD, "--endpoint-resource-manager", self.endpoint,
                  "--endpoint-active-directory", self.endpoint,
                  "--endpoint-active-directory-resource-id", self.endpoint, "--skip-endpoint-discovery")
        self.json("cloud", "set", "-n", CLOUD)
        accounts = self.json("login", "--identity", "--allow-no-subscriptions")
        default = [a for a in accounts if a.get("isDefault")] or accounts
        self.subscription: str | None = default[0]["id"] if default else None
        self.tenant: str | None = default[0].get("tenantId") if default else None

    def __call__(self, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess:
        """Run `az ARGS -o json` (unless ARGS name an output) and return what it did, whatever its exit code."""
        argv = [str(a) for a in args]
        if not {"-o", "--output"} & set(argv):
            argv += ["-o", "json"]
        return subprocess.run([str(self.venv / "bin" / "az"), *argv], check=False, capture_output=True, text=True,
                              env=self.env, timeout=timeout or self.timeout, stdin=subprocess.DEVNULL)

    def json(self, *args: str, timeout: float | None = None) -> Any:
        """Run az and return its parsed JSON output (None when it printed nothing); AzError when it failed."""
        proc = self(*args, timeout=timeout)
        if proc.returncode != 0:
            raise AzError(args, proc)
        return json.loads(proc.stdout) if proc.stdout.strip() else None
