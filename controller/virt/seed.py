"""cloud-init NoCloud seed: an ISO 9660 volume labelled `cidata`, written in pure Python.

Attached to the guest as a read-only virtio disk (Debian's cloud kernel has no SATA).
The seed can carry secrets (protected settings), so it is written 0600.
"""
from __future__ import annotations

import io
from pathlib import Path

import pycdlib

from controller.core.files import atomic_open


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
    try:
        with atomic_open(path, 0o600) as f:
            iso.write_fp(f)
    finally:
        iso.close()
    return path
