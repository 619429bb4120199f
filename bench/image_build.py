"""Benchmark: build time of a first and a second image version of the same recipe.

    sudo .venv/bin/python bench/image_build.py [--cache DIR]

The first build starts from an empty package-set cache (unless --cache names a warm one);
the second reuses the package set and runs a customize script.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from controller.core.settings import LabPaths  # noqa: E402
from controller.state.db import connect  # noqa: E402
from images.builder import build  # noqa: E402
from images.gallery import Gallery  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", help="package-set cache (default: a new, empty one)")
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="scaleset-bench-build-"))
    os.environ["SCALESET_HOME"] = str(home)
    os.environ["SCALESET_CACHE"] = args.cache or str(home / "cache")
    gallery = Gallery(LabPaths(home).ensure(), connect(LabPaths(home).db))
    script = home / "v2.sh"
    script.write_text("echo v2 > /etc/motd\n")
    log = lambda m: print(f"# {m}", file=sys.stderr)  # noqa: E731
    v1 = build(gallery, "bench", "debian", "debian-12", "1.0.0", log=log)
    v2 = build(gallery, "bench", "debian", "debian-12", "2.0.0", customize=[script], log=log)
    print(f"first version: {v1.build_seconds:.1f} s ({v1.size_bytes / 2**20:.0f} MiB qcow2)")
    print(f"second version: {v2.build_seconds:.1f} s (package set reused)")
    print(f"lab home: {home}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
