"""The demo (`make demo`): the scenario lab/scenarios/demo.yaml, run by `scaleset rehearse`.

v1 -> v2 rolls out by itself in batches of one, health-checked by the in-guest agent; then a
v3 whose application never becomes healthy is rolled back in its first batch and the upgrade
ends Faulted. It runs in its own lab home (`<lab home>/demo`, wiped at each start; the scale
set is left running at the end); the package-set cache is shared with the main lab, so only
the first run builds from scratch. The controller serves the web view meanwhile: the runner
prints a one-time login link when it starts.
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

SCENARIO = Path(__file__).resolve().parent / "scenarios" / "demo.yaml"


def prepare_home() -> Path:
    main_home = Path(os.environ.get("SCALESET_HOME") or Path.home() / ".local/share/scaleset-lab")
    home = main_home / "demo"
    os.environ.setdefault("SCALESET_CACHE", str(main_home / "cache"))
    os.environ["SCALESET_HOME"] = str(home)
    if home.exists():  # a previous run: remove its scale set, then its files
        from controller.ops import commands as ops
        from controller.ops.lab import Lab
        lab = Lab.open()
        for ss in lab.models.list():
            ops.delete(lab, ss.name)
        lab.close()
        shutil.rmtree(home)
    return home


def main() -> int:
    home = prepare_home()
    from controller.cli.main import main as scaleset
    code = scaleset(["rehearse", str(SCENARIO), "--keep", "--report", str(home / "report")])
    if code == 0:
        print(f"scale set left running: SCALESET_HOME={home} .venv/bin/scaleset list-instances -n demo -o table",
              flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
