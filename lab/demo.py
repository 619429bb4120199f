"""The demo: build two image versions, boot a guest from the newest one, prove what it booted.

Run by `make demo`. Until the orchestrator exists, this is the lab's main job end to end:
gallery -> overlay OS disk -> cloud-init seed -> libvirt domain -> SSH -> image stamp.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from controller import accel
from controller.config import lab_paths, libvirt_uri
from controller.guest import Guest
from controller.hypervisor import Hypervisor
from images.builder import build
from images.errors import ImageError
from images.gallery import Gallery

P, O, S = "scaleset-lab", "debian", "debian-12"
HERE = Path(__file__).resolve().parent


def say(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


def ensure_version(gallery: Gallery, version: str, customize: list[Path]) -> None:
    try:
        iv = gallery.get(P, O, S, version)
        say(f"{iv.urn} already in the gallery (built in {iv.build_seconds or 0:.1f} s)")
    except ImageError:
        say(f"building {P}:{O}:{S}:{version} ...")
        iv = build(gallery, P, O, S, version, customize=customize, log=lambda m: say("  " + m))
        say(f"  sha256 {iv.sha256[:16]}..., {iv.size_bytes / 2**20:.0f} MiB")


def main() -> int:
    paths = lab_paths()
    a = accel.detect()
    say(f"lab home {paths.home}, libvirt {libvirt_uri()}, acceleration {a.kind} ({a.reason})")
    gallery = Gallery(paths)
    ensure_version(gallery, "1.0.0", [])
    ensure_version(gallery, "2.0.0", [HERE / "demo" / "customize-v2.sh"])
    latest = gallery.verify(gallery.resolve(P, O, S, "latest"))
    say(f"latest resolves to {latest.urn} (sha256 verified)")

    hv = Hypervisor(libvirt_uri())
    guest = Guest(paths, hv, "demo-vm-0")
    guest.delete()
    t0 = time.monotonic()
    guest.create(latest, accel=a)
    say(f"started domain {guest.name}: overlay OS disk on {latest.path.name}, NoCloud seed, "
        f"SSH forward 127.0.0.1:{guest.ssh_port}")
    try:
        ready = guest.wait_ready(timeout=600)
        say(f"cloud-init {ready.cloud_init_status} after {ready.timings['cloudInitDone']:.1f} s "
            f"(console showed 'finished' at {ready.timings['consoleCloudInitFinished'] or 0:.1f} s)")
        say(f"guest boot id {ready.boot_id}")
        say(f"image stamp read over SSH: {ready.stamp}")
        client = guest.ssh()
        client.connect()
        motd = client.run("cat /etc/motd").stdout.strip()
        client.close()
        say(f"/etc/motd in the guest: {motd!r}")
        ok = ready.stamp.get("version") == latest.version and ready.cloud_init_status == "done"
    finally:
        guest.delete()
        say(f"deleted {guest.name} ({time.monotonic() - t0:.1f} s in all); image versions stay in the gallery")
    say("OK: the guest booted the image version the gallery resolved" if ok else "FAILED: stamp mismatch")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
