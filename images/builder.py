"""`scaleset image build`: package set (cached by recipe hash) -> customize -> stamp -> qcow2."""
from __future__ import annotations

import fcntl
import json
import os
import shlex
import shutil
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from controller.core import procs
from controller.core.errors import ImageError

from . import bootdisk
from .aptsources import host_sources
from .gallery import Gallery, ImageVersion, owned
from .recipe import Recipe, choose

STAMP_PATH = "etc/scaleset-lab/image.json"
Log = Callable[[str], None]


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def _require_root() -> None:
    if os.geteuid() != 0:
        raise ImageError("build", "image builds need root (mmdebstrap, chroot): run with sudo", "PermissionDenied")


def _mmdebstrap_args(recipe: Recipe, sources: Path, out: Path) -> list[str]:
    args = ["mmdebstrap", "--quiet", f"--variant={recipe.variant}", f"--architectures={recipe.architecture}",
            "--aptopt=APT::Install-Recommends \"false\"",
            f"--include={','.join(recipe.packages)}"]
    args += [f"--dpkgopt=path-exclude={p}" for p in recipe.path_exclude]
    args += [f"--dpkgopt=path-include={p}" for p in recipe.path_include]
    if recipe.overlay:
        # Before any package: initramfs and cloud-init settings are in place for their first use.
        args.append(f"--setup-hook=tar -C {shlex.quote(str(recipe.overlay))} -c . | tar -C \"$1\" -x --no-same-owner")
    if recipe.mask_units:
        args.append("--customize-hook=chroot \"$1\" systemctl mask --quiet " + " ".join(map(shlex.quote, recipe.mask_units)))
    if recipe.enable_units:
        args.append("--customize-hook=chroot \"$1\" systemctl enable --quiet " + " ".join(map(shlex.quote, recipe.enable_units)))
    for command in recipe.commands:
        args.append("--customize-hook=chroot \"$1\" /bin/sh -ec " + shlex.quote(command))
    # Every instance gets its own host keys and machine id (cloud-init / systemd make them).
    args.append("--customize-hook=rm -f \"$1\"/etc/ssh/ssh_host_*; : > \"$1\"/etc/machine-id; rm -rf \"$1\"/var/lib/cloud/*")
    args += [recipe.suite, str(out), str(sources)]
    return args


def package_set(recipe: Recipe, cache: Path, log: Log) -> Path:
    """The recipe's root filesystem as a tarball, built once per recipe content."""
    tar = cache / f"pkgset-{recipe.name}-{recipe.content_hash[:16]}.tar"
    with _locked(cache / f".{tar.name}.lock"):
        if tar.is_file():
            log(f"package set: cached ({tar.name})")
            return tar
        _require_root()
        t0 = time.monotonic()
        with tempfile.TemporaryDirectory(dir=cache, prefix=owned(".mmdebstrap-")) as tmp:
            sources = Path(tmp) / "sources.list"
            sources.write_text(host_sources(recipe.suite))
            partial = Path(tmp) / "rootfs.tar"
            log(f"package set: mmdebstrap {recipe.suite} with {len(recipe.packages)} packages ...")
            res = procs.run(_mmdebstrap_args(recipe, sources, partial), capture_output=True, text=True)
            if res.returncode != 0:
                tail = " | ".join((res.stderr or res.stdout).strip().splitlines()[-6:])
                raise ImageError("build", f"mmdebstrap failed (exit {res.returncode}): {tail}", "BuildFailed")
            os.replace(partial, tar)
        log(f"package set: built in {time.monotonic() - t0:.1f} s")
        return tar


def run_customize(root: Path, script: Path, index: int) -> None:
    """Run a user script inside the root (chroot, private mounts of /proc, /sys, /dev)."""
    inside = f"/tmp/scaleset-customize-{index}"
    shutil.copyfile(script, root / inside.lstrip("/"))
    resolv = root / "etc/resolv.conf"
    had_resolv = resolv.exists() or resolv.is_symlink()
    if not had_resolv and Path("/etc/resolv.conf").is_file():
        shutil.copyfile("/etc/resolv.conf", resolv)
    r = shlex.quote(str(root))
    cmd = (f"mount -t proc proc {r}/proc && mount -t sysfs sys {r}/sys && mount --rbind /dev {r}/dev && "
           f"exec chroot {r} /bin/sh -e {inside}")
    try:
        res = procs.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", cmd],
                             capture_output=True, text=True,
                             env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive",
                                  "LC_ALL": "C.UTF-8", "HOME": "/root"})
    finally:
        (root / inside.lstrip("/")).unlink(missing_ok=True)
        if not had_resolv:
            resolv.unlink(missing_ok=True)
    if res.returncode != 0:
        tail = " | ".join((res.stderr or res.stdout).strip().splitlines()[-5:]) or "no output"
        raise ImageError(f"customize[{index}]", f"{script} exited {res.returncode}: {tail}", "CustomizeFailed")


def write_stamp(root: Path, publisher: str, offer: str, sku: str, version: str, recipe: Recipe) -> dict:
    stamp = {"publisher": publisher, "offer": offer, "sku": sku, "version": version,
             "recipe": recipe.name, "recipeHash": recipe.content_hash,
             "builtAt": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    path = root / STAMP_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(stamp, indent=1) + "\n")
    return stamp


def build(gallery: Gallery, publisher: str, offer: str, sku: str, version: str,
          customize: list[Path] | None = None, recipe_name: str | None = None,
          target_regions: list[str] | None = None, log: Log = print,
          exclude_from_latest: bool = False, recipe_field: str = "--recipe") -> ImageVersion:
    """Build and publish one image version; on any failure nothing is published. The recipe is
    `recipe_name` (errors name `recipe_field`), else the one named like the SKU, else the default."""
    t0 = time.monotonic()
    gallery.check_new(publisher, offer, sku, version)
    choice = choose(sku, recipe_name, recipe_field)
    recipe = choice.recipe
    log(choice.line())
    scripts = [Path(s) for s in customize or []]
    for i, s in enumerate(scripts):
        if not s.is_file() or not os.access(s, os.R_OK):
            raise ImageError(f"customize[{i}]", f"{s} is not a readable file", "FileNotFound")
    _require_root()
    cache = gallery.paths.cache
    cache.mkdir(parents=True, exist_ok=True)
    tar = package_set(recipe, cache, log)
    with tempfile.TemporaryDirectory(dir=cache, prefix=owned(".build-")) as tmp:
        work = Path(tmp)
        root = work / "root"
        root.mkdir()
        procs.run(["tar", "-C", str(root), "-xf", str(tar)], check=True)
        for i, s in enumerate(scripts):
            log(f"customize[{i}]: {s}")
            run_customize(root, s, i)
        write_stamp(root, publisher, offer, sku, version, recipe)
        log("disk: ext4 + GRUB -> qcow2 ...")
        disk = bootdisk.assemble(root, recipe.disk_size_gb, recipe.kernel_cmdline, work)
        seconds = time.monotonic() - t0
        iv = gallery.publish(publisher, offer, sku, version, disk, source="built", recipe=recipe.name,
                             build_seconds=seconds, target_regions=target_regions,
                             exclude_from_latest=exclude_from_latest)
    log(f"built {iv.urn} in {seconds:.1f} s")
    return iv
