"""Small real files and shared helpers for tests."""
import subprocess
from pathlib import Path


def make_qcow2(path: Path, size: str = "64M", data: bytes | None = None) -> Path:
    """A small real qcow2 (optionally with some data written into it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if data is None:
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), size], check=True)
    else:
        raw = path.with_suffix(".raw")
        raw.write_bytes(data)
        subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(path)], check=True)
        raw.unlink()
    return path


def mark_replicated(lab, iv) -> None:
    """Record `iv` as replicated to every host of its configured target regions, a blank volume
    standing in for each copy: for tests of what comes after replication, not of replication."""
    from controller.state.replicas import ReplicaStore
    store = ReplicaStore(lab.db)
    for name in iv.target_regions:
        region = lab.regions.configured(name)
        for host in region.hosts if region is not None else ():
            store.record(iv, region.name, host, "Completed", "marked by the test")
            pool = lab.pool_at(host.uri, host.pool, host.pool_path)  # a stand-in copy, as replication leaves it
            if pool.volume(iv.volume_name) is None:
                pool.create_blank(iv.volume_name, 1)


def cli_json(capsys, *argv) -> tuple[object, float]:
    """A CLI command's JSON output (it must exit 0) and how long it took."""
    import json
    import time

    from controller.cli.main import main
    capsys.readouterr()
    t0 = time.monotonic()
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out), time.monotonic() - t0
