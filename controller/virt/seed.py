"""cloud-init NoCloud seed: an ISO 9660 volume labelled `cidata`, written in pure Python.

Attached to the guest as a read-only virtio disk (Debian's cloud kernel has no SATA).
The seed can carry secrets (protected settings), so it is written 0600.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import pycdlib


def write_seed(path: Path, user_data: str, meta_data: str, network_config: str | None = None) -> Path:
    files = {"user-data": user_data, "meta-data": meta_data}
    if network_config is not None:
        files["network-config"] = network_config
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident="cidata")
    for i, (name, text) in enumerate(files.items()):
        data = text.encode()
        iso.add_fp(io.BytesIO(data), len(data), f"/FILE{i};1", rr_name=name, joliet_path=f"/{name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        iso.write_fp(f)
    iso.close()
    os.replace(tmp, path)
    return path
