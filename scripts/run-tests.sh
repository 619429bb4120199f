#!/usr/bin/env bash
# `make test`: every tier, in two lanes at once. The VM and az tiers (real guests) spend most of
# their time waiting on boots and health gates; the fast and Vagrant tiers (the lab host runs in
# namespaces and a libvirtd of its own) use that time, and that lane then runs the VM modules in
# LANE2_VM (a lab of their own each), which the first lane leaves out. The VM lane prints as it
# goes, the other lane's log follows it; the exit status fails if either lane fails or runs no test.
set -uo pipefail
cd "$(dirname "$0")/.."

LANE2_VM=(tests/test_vm_rehearse.py tests/test_vm_surge.py)
log=$(mktemp -t scaleset-fast-lane.XXXXXX)
# One port registry for the labs of both lanes: their 127.0.0.1 forwards never collide.
SCALESET_PORTS_DIR=$(mktemp -d -t scaleset-ports.XXXXXX)
export SCALESET_PORTS_DIR
set -m  # a background job of a script ignores SIGINT; with job control it keeps it (Ctrl-C tests need it)
(
  .venv/bin/pytest -v --durations=10 -m "not vm and not azcli"
  fast=$?
  echo "===== the VM modules of this lane: ${LANE2_VM[*]} ====="
  .venv/bin/pytest -v --durations=10 -m vm "${LANE2_VM[@]}"
  vm=$?
  echo "second lane: fast and Vagrant tiers exit $fast; its VM modules exit $vm"
  [ "$fast" -eq 0 ] && [ "$vm" -eq 0 ]
) >"$log" 2>&1 &
lane=$!
set +m
trap 'kill -TERM -- -"$lane" 2>/dev/null; wait "$lane"; cat "$log"; exit 130' INT TERM

ignore=()
for m in "${LANE2_VM[@]}"; do ignore+=(--ignore "$m"); done
.venv/bin/pytest -v --durations=30 -m "vm or azcli" "${ignore[@]}"
vm_rc=$?
wait "$lane"
lane_rc=$?
trap - INT TERM
echo "===== second lane: fast and Vagrant tiers, then ${LANE2_VM[*]} (ran beside the VM tier) ====="
cat "$log"
rm -rf "$log" "$SCALESET_PORTS_DIR"
echo "make test: VM and az tiers exit $vm_rc; second lane exit $lane_rc"
[ "$vm_rc" -eq 0 ] && [ "$lane_rc" -eq 0 ]
