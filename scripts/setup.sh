#!/usr/bin/env bash
# Idempotent set-up for scaleset-lab on Debian 12: apt packages, libvirt daemons, .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

# SCALESET_WHEELHOUSE (a folder of wheels from `make wheelhouse`): Python packages come from it,
# with no index, so a machine without a network provisions too.
wheels=${SCALESET_WHEELHOUSE:-}
if [ -n "$wheels" ] && [ ! -d "$wheels" ]; then
  echo "setup: SCALESET_WHEELHOUSE: $wheels is not a folder" >&2; exit 1
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

PACKAGES=(
  qemu-system-x86 qemu-utils                      # the hypervisor and qcow2 tools
  libvirt-daemon-system libvirt-clients           # libvirtd, virtlogd, virsh
  libvirt-dev pkg-config gcc python3-dev python3-venv  # to build libvirt-python
  mmdebstrap e2fsprogs fdisk                      # image builds: rootfs, ext4, partition table
  ca-certificates
  chromium libnss3-tools                          # the web view's browser tests (certutil: trust the lab CA)
  openssh-server                                  # the tunnel tests' own sshd (127.0.0.1; never the system's)
)
# The Vagrant tier (a lab host under vagrant-libvirt); not needed inside that lab host itself.
[ "${SCALESET_IN_VAGRANT:-}" = 1 ] || PACKAGES+=(vagrant vagrant-libvirt dnsmasq-base rsync)
missing=()
for p in "${PACKAGES[@]}"; do
  [[ "$p" == \#* ]] && continue
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq || { echo "setup: cannot reach Debian's package mirror to install ${missing[*]}" >&2; exit 1; }
  # A newly installed openssh-server must not start a system sshd on every address: policy-rc.d
  # (only when the machine has none) holds its service back, and systemd does not start it later.
  # An sshd the user already had is left alone.
  new_sshd=""
  [[ " ${missing[*]} " == *" openssh-server "* ]] && new_sshd=1
  policy=""
  if [ -n "$new_sshd" ] && [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    trap "$SUDO rm -f $policy" EXIT
    printf '#!/bin/sh\n# scaleset-lab setup: no service starts during this install\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod 0755 "$policy"
  fi
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ -n "$policy" ]; then
    $SUDO rm -f "$policy"
    trap - EXIT
  fi
  if [ -n "$new_sshd" ]; then
    if [ "$(ps -p 1 -o comm= 2>/dev/null)" = "systemd" ]; then
      $SUDO systemctl disable --now ssh.service ssh.socket >/dev/null 2>&1 || true
    fi
    echo "setup: openssh-server is for the tests' own sshd on 127.0.0.1; its system service stays stopped and disabled"
  fi
fi

# /dev/kvm as Debian's udev rules leave it (root:kvm 0660). Where udev does not run, a 0600
# node makes libvirt re-probe QEMU for every call (~30 s per domain define).
if [ -c /dev/kvm ] && [ "$(stat -c %G:%a /dev/kvm)" != "kvm:660" ] && getent group kvm >/dev/null; then
  $SUDO chgrp kvm /dev/kvm && $SUDO chmod 0660 /dev/kvm
fi

# libvirt daemons: systemctl where systemd is PID 1, the daemons themselves otherwise.
if [ "$(ps -p 1 -o comm= 2>/dev/null)" = "systemd" ]; then
  $SUDO systemctl enable --now virtlogd.socket libvirtd.socket libvirtd.service >/dev/null 2>&1 || true
  $SUDO systemctl start virtlogd libvirtd
else
  pgrep -x virtlogd >/dev/null || $SUDO virtlogd -d
  pgrep -x libvirtd >/dev/null || $SUDO libvirtd -d
fi
for _ in $(seq 1 50); do
  [ -S /var/run/libvirt/libvirt-sock ] && break
  sleep 0.2
done
[ -S /var/run/libvirt/libvirt-sock ] || { echo "setup: libvirtd did not start" >&2; exit 1; }
if [ "$(id -u)" -ne 0 ] && ! id -nG | grep -qw libvirt; then
  echo "setup: note: add yourself to the 'libvirt' group (sudo adduser $USER libvirt) for qemu:///system" >&2
fi

# Python virtualenv with the project installed; redone only when pyproject.toml changes.
PY=${PYTHON:-python3}
stamp=.venv/.scaleset-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  if [ -n "$wheels" ]; then
    echo "setup: installing the project into .venv from $wheels (no index)"
    # --no-compile: bytecode is written on first import instead (minutes less under TCG)
    .venv/bin/pip install -q --no-index --find-links "$wheels" --no-compile -e '.[test]'
  else
    echo "setup: installing the project into .venv"
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -e '.[test]'
  fi
  echo "$want" > "$stamp"
fi
echo "setup: ready ($(.venv/bin/python --version), $(virsh --version 2>/dev/null | sed 's/^/libvirt /'), $(.venv/bin/scaleset accel 2>/dev/null || echo 'accel: ?'))"
