"""`scaleset image export --format vagrant-box`: an image version as a vagrant-libvirt box.

A box is a tar of `metadata.json` (`provider`, `format`, `virtual_size` in GiB), a `Vagrantfile`
with the box's defaults, and `box.img` (the version's self-contained qcow2). Whatever Vagrant
expects inside the guest (a `vagrant` user, sudo, its insecure key) comes from the build:
`image build --customize images/customize/vagrant.sh`.
"""
from __future__ import annotations

import io
import json
import math
import os
import tarfile
from pathlib import Path

from controller.core.errors import ImageError

from . import qcow2
from .gallery import ImageVersion

CUSTOMIZE = Path(__file__).with_name("customize") / "vagrant.sh"

BOX_VAGRANTFILE = """\
# Defaults of a box exported by scaleset-lab (`scaleset image export --format vagrant-box`).
Vagrant.configure("2") do |config|
  config.vm.synced_folder ".", "/vagrant", type: "rsync"
  config.vm.provider :libvirt do |libvirt|
    libvirt.disk_bus = "virtio"
    libvirt.nic_model_type = "virtio"
  end
end
"""


def metadata(iv: ImageVersion) -> dict:
    """vagrant-libvirt's box metadata; `virtual_size` is whole GiB, rounded up."""
    return {"provider": "libvirt", "format": "qcow2",
            "virtual_size": max(1, math.ceil(iv.virtual_size_bytes / 1024**3))}


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    tar.addfile(info, io.BytesIO(data))


def _readable(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mode, info.uid, info.gid, info.uname, info.gname = 0o644, 0, 0, "", ""
    return info


def export(iv: ImageVersion, out: Path) -> Path:
    """Write the box to `out` (whole or absent: a temporary name, renamed at the end)."""
    if out.is_dir():
        raise ImageError("--output", f"{out} is a folder: give the box's file name", "InvalidOutput")
    if not out.parent.is_dir():
        raise ImageError("--output", f"folder {out.parent} does not exist", "InvalidOutput")
    qcow2.inspect(iv.path, "version")
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with tarfile.open(tmp, "w", format=tarfile.GNU_FORMAT) as tar:
            _add_bytes(tar, "metadata.json", (json.dumps(metadata(iv), indent=2) + "\n").encode())
            _add_bytes(tar, "Vagrantfile", BOX_VAGRANTFILE.encode())
            tar.add(iv.path, arcname="box.img", recursive=False, filter=_readable)
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out
