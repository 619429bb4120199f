#!/usr/bin/env bash
# `make box`: the lab-host recipe built by the lab's own image pipeline, with Vagrant's user and key
# (--customize images/customize/vagrant.sh), exported as a vagrant-libvirt box. Cached by content:
# a box is rebuilt only when the recipe, its overlay or the customize script change.
# Prints the box's path last. Needs root (image builds).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${SCALESET_BOX_DIR:-.cache/box}
mkdir -p "$out"
key=$(.venv/bin/python - <<'PY'
import hashlib
from pathlib import Path
from images.recipe import load
from images.vagrantbox import CUSTOMIZE
r = load("lab-host")
h = hashlib.sha256(f"{r.content_hash}\n".encode() + r.path.read_bytes() + CUSTOMIZE.read_bytes())
print(h.hexdigest()[:12])
PY
)
box="$out/scaleset-lab-host-$key.box"
if [ -f "$box" ]; then
  echo "box: cached ($box)" >&2
else
  # A gallery of its own: the user's lab is not touched; the version is deleted once exported.
  export SCALESET_HOME="$PWD/$out/lab" SCALESET_CACHE="${SCALESET_CACHE:-$PWD/.cache/images}"
  ref=(--publisher scaleset-lab --offer lab-host --sku lab-host --version 1.0.0)
  .venv/bin/scaleset image delete "${ref[@]}" >/dev/null 2>&1 || true
  .venv/bin/scaleset image build "${ref[@]}" --recipe lab-host --customize images/customize/vagrant.sh >/dev/null
  .venv/bin/scaleset image export "${ref[@]}" --format vagrant-box --output "$box"
  .venv/bin/scaleset image delete "${ref[@]}" >/dev/null
  find "$out" -maxdepth 1 -name 'scaleset-lab-host-*.box' ! -name "$(basename "$box")" -delete
fi
ln -sfn "$(basename "$box")" "$out/scaleset-lab-host.box"
echo "$out/scaleset-lab-host.box"
