"""bench/deploy.py at its smallest (1 resource, 1 run, 2 evaluations), so a benchmark that rots
fails here: it runs to its end and prints its figures as JSON."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_deploy_benchmark_runs_at_its_smallest(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path)}
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "deploy.py"), "--resources", "1", "--runs", "1",
                           "--evals", "2", "--json"], capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    f = json.loads(done.stdout)
    assert set(f["phases"]) == {"validate", "deploy", "put"}
    assert all(len(runs) == 1 and runs[0]["cpuMs"] > 0 for runs in f["phases"].values())
    assert f["deployOverPut"]["cpu"] > 0 and f["engine"]["evals"] == 2 and f["engine"]["medianMs"] > 0
    assert "serverS" in f["median"]["deploy"]
