"""Pick the hypervisor acceleration: KVM where it really works, TCG otherwise.

A /dev/kvm node alone proves nothing (nested hosts expose one that hangs guests), so KVM
needs the vmx/svm CPU flag and a /dev/kvm that answers KVM_GET_API_VERSION. Nothing here
can block: every check is a flag read or one ioctl.
"""
from __future__ import annotations

import fcntl
import os
import re
from dataclasses import dataclass

KVM_GET_API_VERSION = 0xAE00
KVM_API_VERSION = 12


@dataclass(frozen=True)
class Accel:
    kind: str  # "kvm" or "tcg"
    reason: str

    @property
    def domain_type(self) -> str:
        """libvirt's <domain type=...>."""
        return "kvm" if self.kind == "kvm" else "qemu"


def _cpu_has_virt(cpuinfo: str) -> bool:
    return re.search(r"^flags\s*:.*\b(vmx|svm)\b", cpuinfo, re.MULTILINE) is not None


def _kvm_api_ok(dev: str) -> tuple[bool, str]:
    try:
        fd = os.open(dev, os.O_RDWR | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        return False, f"{dev}: {exc.strerror}"
    try:
        version = fcntl.ioctl(fd, KVM_GET_API_VERSION)
    except OSError as exc:
        return False, f"{dev}: KVM_GET_API_VERSION failed ({exc.strerror})"
    finally:
        os.close(fd)
    if version != KVM_API_VERSION:
        return False, f"{dev}: unexpected KVM API version {version}"
    return True, f"{dev} answers (API {version})"


def detect(cpuinfo_path: str = "/proc/cpuinfo", dev: str = "/dev/kvm") -> Accel:
    """Return the acceleration to use; `$SCALESET_ACCEL=kvm|tcg` overrides the probe."""
    forced = os.environ.get("SCALESET_ACCEL", "").strip().lower()
    if forced in ("kvm", "tcg"):
        return Accel(forced, "forced by SCALESET_ACCEL")
    if forced:
        raise ValueError(f"SCALESET_ACCEL: '{forced}' is not one of kvm, tcg")
    try:
        with open(cpuinfo_path, encoding="utf-8", errors="replace") as f:
            cpuinfo = f.read()
    except OSError as exc:
        return Accel("tcg", f"cannot read {cpuinfo_path}: {exc.strerror}")
    if not _cpu_has_virt(cpuinfo):
        return Accel("tcg", "CPU has no vmx/svm flag (no usable KVM)")
    ok, why = _kvm_api_ok(dev)
    if not ok:
        return Accel("tcg", why)
    return Accel("kvm", f"vmx/svm present, {why}")
