"""Debian's Chromium driven by Playwright, trusting the lab's CA for real (an NSS database in a
HOME of its own), headless, started with the flags that keep it off the network."""
from __future__ import annotations

import os
import subprocess
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-default-apps", "--no-proxy-server"]


def trust(home: Path, ca: Path) -> None:
    """An NSS database under `home` (where Chromium looks) that trusts `ca` for TLS servers."""
    nss = home / ".pki" / "nssdb"
    nss.mkdir(parents=True, exist_ok=True)
    subprocess.run(["certutil", "-N", "-d", f"sql:{nss}", "--empty-password"], check=True, capture_output=True)
    subprocess.run(["certutil", "-A", "-d", f"sql:{nss}", "-n", "scaleset-lab", "-t", "C,,", "-i", str(ca)],
                   check=True, capture_output=True)


@contextmanager
def chromium(ca: Path, home: Path):
    """A headless Chromium that trusts `ca`; yields the Playwright browser."""
    from playwright.sync_api import sync_playwright
    trust(home, ca)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS,
                                    env={**os.environ, "HOME": str(home)})
        try:
            yield browser
        finally:
            browser.close()
