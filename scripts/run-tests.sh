#!/usr/bin/env bash
# `make test`: every tier, in two lanes at once. The VM and az tiers (real guests) spend most of
# their time waiting on boots and health gates; the fast and Vagrant tiers (the lab host runs in
# namespaces and a libvirtd of its own) use that time. The VM lane prints as it goes, the other
# lane's log follows it; the exit status fails if either lane fails or runs no test.
set -uo pipefail
cd "$(dirname "$0")/.."

log=$(mktemp -t scaleset-fast-lane.XXXXXX)
set -m  # a background job of a script ignores SIGINT; with job control it keeps it (Ctrl-C tests need it)
.venv/bin/pytest -v --durations=10 -m "not vm and not azcli" >"$log" 2>&1 &
lane=$!
set +m
trap 'kill -TERM "$lane" 2>/dev/null; wait "$lane"; cat "$log"; exit 130' INT TERM

.venv/bin/pytest -v --durations=30 -m "vm or azcli"
vm_rc=$?
wait "$lane"
fast_rc=$?
trap - INT TERM
echo "===== fast and Vagrant tiers (ran beside the VM tier) ====="
cat "$log"
rm -f "$log"
echo "make test: VM and az tiers exit $vm_rc; fast and Vagrant tiers exit $fast_rc"
[ "$vm_rc" -eq 0 ] && [ "$fast_rc" -eq 0 ]
