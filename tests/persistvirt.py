"""libvirt's test driver (`test:///default`) keeps its domains and volumes in the memory of one
process: a killed controller would take them along. `install(path)` makes them outlive the
process: after every call that changes a domain, a pool or a volume, the lab's ones (not the
driver's built-in `test` domain and `default-pool`) are written to `path` (JSON, replaced
atomically), and the first connection of the next process defines them again from it. So a
kill -9 leaves what the killed process had done, as libvirtd would keep it."""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import libvirt

URI = "test:///default"
_LOCK = threading.RLock()
_STATE: dict = {}  # path, conn, builtin (names of the driver's own objects)

MUTATING = {
    libvirt.virConnect: ("defineXML", "createXML", "storagePoolDefineXML", "storagePoolCreateXML"),
    libvirt.virDomain: ("create", "createWithFlags", "destroy", "destroyFlags", "undefine", "undefineFlags",
                        "shutdown", "shutdownFlags", "reboot", "reset", "setMetadata"),
    libvirt.virStoragePool: ("createXML", "createXMLFrom", "create", "build", "destroy", "undefine", "delete"),
    libvirt.virStorageVol: ("delete", "wipe", "resize"),
}


def _conn() -> libvirt.virConnect:
    if "conn" not in _STATE:
        _STATE["conn"] = _ORIG_OPEN(URI)
    return _STATE["conn"]


def dump() -> None:
    """The lab's domains, pools and volumes, written to the state file."""
    with _LOCK:
        conn, builtin = _conn(), _STATE["builtin"]
        pools = []
        for p in conn.listAllStoragePools():
            if p.name() in builtin:
                continue
            active = p.isActive() == 1
            vols = [v.XMLDesc(0) for v in p.listAllVolumes()] if active else []
            pools.append({"xml": p.XMLDesc(0), "active": active, "volumes": vols})
        doms = [{"xml": d.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE), "active": d.isActive() == 1}
                for d in conn.listAllDomains() if d.name() not in builtin]
        path = Path(_STATE["path"])
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"pools": pools, "domains": doms}))
        os.replace(tmp, path)


def restore() -> None:
    """Define again what the state file holds (once per process, at the first connection)."""
    conn = _conn()
    _STATE["builtin"] = {p.name() for p in conn.listAllStoragePools()} | {d.name() for d in conn.listAllDomains()}
    path = Path(_STATE["path"])
    if not path.exists():
        return
    state = json.loads(path.read_text())
    for p in state["pools"]:
        pool = _ORIG["virConnect.storagePoolDefineXML"](conn, p["xml"], 0)
        if p["active"]:
            _ORIG["virStoragePool.create"](pool, 0)
            for v in p["volumes"]:
                _ORIG["virStoragePool.createXML"](pool, v, 0)
    for d in state["domains"]:
        dom = _ORIG["virConnect.defineXML"](conn, d["xml"])
        if d["active"]:
            _ORIG["virDomain.create"](dom)


_ORIG: dict = {}
_ORIG_OPEN = libvirt.open


def _wrap(cls, name: str):
    orig = getattr(cls, name)
    _ORIG[f"{cls.__name__}.{name}"] = orig

    def wrapped(self, *a, **kw):
        with _LOCK:
            try:
                return orig(self, *a, **kw)
            finally:
                dump()
    wrapped.__name__ = name
    setattr(cls, name, wrapped)


def install(path: str | Path) -> None:
    """From now on this process's test-driver objects outlive it in `path`."""
    _STATE["path"] = str(path)
    for cls, names in MUTATING.items():
        for name in names:
            if hasattr(cls, name):
                _wrap(cls, name)
    restored = threading.Event()

    def open_(uri=None, *a, **kw):
        if uri == URI and not restored.is_set():
            with _LOCK:
                if not restored.is_set():
                    restore()
                    restored.set()
        return _ORIG_OPEN(uri, *a, **kw)
    libvirt.open = open_
