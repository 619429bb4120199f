#!/usr/bin/env bash
# `make demo`: build image versions and boot a guest (needs root for image builds).
set -euo pipefail
cd "$(dirname "$0")/.."
export SCALESET_HOME="${SCALESET_HOME:-${XDG_DATA_HOME:-$HOME/.local/share}/scaleset-lab}"
if [ "$(id -u)" -ne 0 ]; then
  exec sudo --preserve-env=SCALESET_HOME,SCALESET_LIBVIRT_URI,SCALESET_ACCEL,SCALESET_CACHE .venv/bin/python -m lab.demo
fi
exec .venv/bin/python -m lab.demo
