#!/usr/bin/env bash
# CI entry point: bring up the Vagrant lab host (./Vagrantfile), run the tests in it with JUnit
# XML output, copy the XML and logs out, and always destroy the machine (on failure and Ctrl-C
# too). Exits with the tests' status.
#   scripts/vagrant-ci.sh [--box FILE] [--out DIR] [-- COMMAND]
#   --box FILE  add this box file (e.g. from `make box`) and use it; else $SCALESET_VAGRANT_BOX
#   --out DIR   where results go (default ci-out/): junit.xml, tests.log, vagrant.log, journal.txt
#   COMMAND     run in /vagrant (default: make test)
set -uo pipefail
cd "$(dirname "$0")/.."
out=ci-out box="" cmd="make test"
while [ $# -gt 0 ]; do
  case "$1" in
    --box) box=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --) shift; cmd="$*"; break ;;
    *) echo "vagrant-ci: unknown argument '$1' (see the header of $0)" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
log="$out/vagrant.log"
: > "$log"
exec 3>&2  # the script's own stderr, also while a step's output goes to the log
say() { echo "vagrant-ci: $*" | tee -a "$log" >&3; }
now() { date +%s; }

# Each long command runs in the background, in a process group of its own, while the script
# waits: a signal is handled at once, the group is stopped, then the machine destroyed.
child=""
bg() {
  setsid "$@" &
  child=$!
  wait "$child"
  local rc=$?
  child=""
  return $rc
}
destroyed=""
destroy() {
  [ -n "$destroyed" ] && return
  destroyed=1
  t=$(now)
  vagrant destroy -f >>"$log" 2>&1 || say "vagrant destroy failed: see $log"
  say "destroy: $(( $(now) - t )) s"
}
interrupted() {
  say "interrupted"
  if [ -n "$child" ]; then kill -TERM -- "-$child" 2>/dev/null; wait "$child"; fi
  exit "$1"
}
trap destroy EXIT
trap 'interrupted 130' INT
trap 'interrupted 143' TERM

if [ -n "$box" ]; then
  [ -f "$box" ] || { say "--box: $box is not a file"; exit 2; }
  export SCALESET_VAGRANT_BOX=scaleset-lab/lab-host
  t=$(now)
  bg vagrant box add --force --name "$SCALESET_VAGRANT_BOX" "$box" >>"$log" 2>&1 || { say "box add failed: see $log"; exit 1; }
  say "box add: $(( $(now) - t )) s"
fi

step() {  # step NAME COMMAND...: run, log, time; exit with its status on failure
  local name=$1 t rc; shift
  t=$(now)
  bg "$@" >>"$log" 2>&1
  rc=$?
  say "$name: $(( $(now) - t )) s (exit $rc)"
  [ $rc -eq 0 ] || { tail -n 30 "$log" >&2; exit $rc; }
}
step up vagrant up --no-provision --provider libvirt
step provision vagrant provision

t=$(now)
inside="cd /vagrant && mkdir -p ci-out && export PYTEST_ADDOPTS='--junitxml=ci-out/junit.xml' && $cmd"
bg bash -c 'vagrant ssh -c "$1" 2>&1 | tee "$2"; exit "${PIPESTATUS[0]}"' _ "$inside" "$out/tests.log"
status=$?
say "tests ($cmd): $(( $(now) - t )) s (exit $status)"

vagrant ssh-config > "$out/ssh-config" 2>>"$log" \
  && vagrant ssh -c "sudo journalctl -b --no-pager > /vagrant/ci-out/journal.txt" >>"$log" 2>&1 \
  && scp -q -F "$out/ssh-config" -r "default:/vagrant/ci-out/." "$out/" >>"$log" 2>&1 \
  || say "could not copy the results out: see $log"
rm -f "$out/ssh-config"
exit "$status"
