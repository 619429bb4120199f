"""Turn a root filesystem tree into a self-contained bootable qcow2, without mounting.

Layout: an MBR with GRUB's boot.img, GRUB's core.img in the sectors before the first
partition (it embeds the ext2 and linux modules and finds /boot/grub/grub.cfg on
partition 1), and one ext4 partition made by `mkfs.ext4 -d`. The kernel and initramfs
live on the disk, so swapping the OS disk swaps the kernel too.
"""
from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

from controller.core import procs
from controller.core.errors import ImageError

SECTOR = 512
PART_START = 2048  # sectors: 1 MiB, room for core.img
GRUB_MODULES = ["biosdisk", "part_msdos", "ext2", "normal", "linux", "configfile", "echo", "test", "boot"]


def _run(args: list[str], what: str, **kw) -> subprocess.CompletedProcess:
    res = procs.run(args, capture_output=True, text=True, **kw)
    if res.returncode != 0:
        tail = (res.stderr or res.stdout).strip().splitlines()[-5:]
        raise ImageError("build", f"{what} failed (exit {res.returncode}): {' | '.join(tail)}", "BuildFailed")
    return res


def _boot_file(root: Path, link: str, pattern: str) -> str:
    """Path (inside the guest) of the kernel or initramfs: follow /vmlinuz, else newest /boot match."""
    p = root / link
    if p.is_symlink():
        target = os.readlink(p)
        return "/" + target.lstrip("/") if not target.startswith("/") else target
    found = sorted((root / "boot").glob(pattern))
    if not found:
        raise ImageError("build", f"no {pattern} in /boot of the image", "BuildFailed")
    return "/boot/" + found[-1].name


def write_boot_config(root: Path, fs_uuid: str, cmdline: str) -> None:
    """grub.cfg and fstab that name the root filesystem by UUID."""
    kernel = _boot_file(root, "vmlinuz", "vmlinuz-*")
    initrd = _boot_file(root, "initrd.img", "initrd.img-*")
    grub = root / "boot/grub"
    grub.mkdir(parents=True, exist_ok=True)
    (grub / "grub.cfg").write_text(
        "# scaleset-lab: boot straight away, no menu\n"
        "set timeout=0\n"
        f"linux {kernel} root=UUID={fs_uuid} {cmdline}\n"
        f"initrd {initrd}\n"
        "boot\n"
    )
    (root / "etc/fstab").write_text(f"UUID={fs_uuid} / ext4 defaults,noatime 0 0\n")


def make_core_img(root: Path) -> Path:
    """Build GRUB's core.img with the image's own grub-pc-bin (run inside its root)."""
    out = root / "boot/grub/core.img"
    out.parent.mkdir(parents=True, exist_ok=True)
    _run(["chroot", str(root), "grub-mkimage", "-O", "i386-pc", "-o", "/boot/grub/core.img",
          "-p", "(hd0,msdos1)/boot/grub", *GRUB_MODULES], "grub-mkimage")
    return out


def assemble(root: Path, disk_size_gb: int, cmdline: str, work: Path) -> Path:
    """Make work/disk.qcow2 from the tree at `root`; returns its path."""
    fs_uuid = str(uuid.uuid4())
    write_boot_config(root, fs_uuid, cmdline)
    core = make_core_img(root)
    boot_img = root / "usr/lib/grub/i386-pc/boot.img"
    if not boot_img.is_file():
        raise ImageError("build", "the image has no GRUB boot.img (install grub-pc-bin)", "BuildFailed")
    core_bytes = core.read_bytes()
    if len(core_bytes) > (PART_START - 1) * SECTOR:
        raise ImageError("build", f"core.img is {len(core_bytes)} bytes, too large for the boot gap", "BuildFailed")

    total = disk_size_gb * 1024**3
    part_bytes = total - PART_START * SECTOR
    part = work / "rootfs.ext4"
    _run(["mkfs.ext4", "-q", "-F", "-L", "rootfs", "-U", fs_uuid, "-E", "lazy_itable_init=1",
          "-d", str(root), str(part), f"{part_bytes // 1024}k"], "mkfs.ext4 -d")

    raw = work / "disk.raw"
    with raw.open("wb") as f:
        f.truncate(total)
    _run(["sfdisk", "-q", "--no-reread", "--no-tell-kernel", str(raw)], "sfdisk",
         input=f"label: dos\nstart={PART_START}, type=83, bootable\n")
    with raw.open("r+b") as f:
        f.write(boot_img.read_bytes()[:440])  # boot code only: keep the partition table
        f.seek(SECTOR)
        f.write(core_bytes)  # boot.img loads sector 1; diskboot's blocklist starts at 2
        f.seek(PART_START * SECTOR)
        with part.open("rb") as src:
            while block := src.read(8 * 1024 * 1024):
                if block.count(0) == len(block):
                    f.seek(len(block), os.SEEK_CUR)  # keep the raw file sparse
                else:
                    f.write(block)
    part.unlink()
    out = work / "disk.qcow2"
    _run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(out)], "qemu-img convert")
    raw.unlink()
    return out
