"""cloud-init NoCloud seed: an ISO 9660 volume labelled `cidata`, written in pure Python.

Built in memory and uploaded as a volume of the instance's pool (disks.py); attached to the
guest as a read-only virtio disk (Debian's cloud kernel has no SATA). The seed can carry secrets
(protected settings): it is never written to the controller's disk.
"""
from __future__ import annotations

import io

import pycdlib


def seed_iso(user_data: str, meta_data: str, network_config: str | None = None) -> bytes:
    files = {"user-data": user_data, "meta-data": meta_data}
    if network_config is not None:
        files["network-config"] = network_config
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident="cidata")
    for i, (name, text) in enumerate(files.items()):
        data = text.encode()
        iso.add_fp(io.BytesIO(data), len(data), f"/FILE{i};1", rr_name=name, joliet_path=f"/{name}")
    out = io.BytesIO()
    try:
        iso.write_fp(out)
    finally:
        iso.close()
    return out.getvalue()
