"""Faults through the API as through the CLI: on a full SCALESET_HOME (a real small tmpfs) PUT
and PATCH answer 507 InsufficientStorage and DELETE still works (it frees space); on a read-only
one, ReadOnlyStorage. Needs root for the mount; skipped where mounting is not allowed."""
from __future__ import annotations

import asyncio
import errno
import os
import sqlite3
import subprocess
import time

import pytest
import requests

from controller.api.context import ApiContext
from controller.core.errors import LabError
from controller.core.settings import LabPaths
from controller.core.txn import transaction
from controller.state import reserve
from controller.state.db import connect
from controller.virt import vm
from tests.fakedriver import make_scale_set
from tests.test_api_sdk import raw
from tests.test_rolling import model

V = {"api-version": "2024-07-01"}
LOG_BYTES = 1 << 20  # each instance's console log: what a DELETE frees on the home


@pytest.fixture
def lab(tmp_path, monkeypatch):
    """The lab's home on a 16 MiB tmpfs of its own (unmounted afterwards)."""
    home = tmp_path / "lab"
    home.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(home)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    monkeypatch.setenv("SCALESET_HOME", str(home))
    monkeypatch.setenv("SCALESET_PORTS_DIR", str(tmp_path))
    monkeypatch.delenv("SCALESET_CACHE", raising=False)
    try:
        yield LabPaths(home).ensure()
    finally:
        subprocess.run(["umount", "-l", str(home)], check=False)


def fill(path) -> None:
    """Write zeros until the file system is full."""
    with open(path, "wb", buffering=0) as f:
        for chunk in (1 << 16, 512):
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError:
                pass


def free_bytes(path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def ended(api, response) -> dict:
    url = response.headers["Azure-AsyncOperation"]
    for _ in range(300):
        status = requests.get(url, headers={"Authorization": f"Bearer {api.token()}"}, verify=str(api.ca),
                              timeout=10).json()
        if status["status"] != "InProgress":
            return status
        time.sleep(0.05)
    raise AssertionError("the operation did not end")


def with_set(api, driver) -> list:
    insts = make_scale_set(api.lab, model(capacity=2), driver, "1.0.0")
    for inst in insts:
        vm.console_log(api.lab.paths, inst).write_bytes(b"x" * LOG_BYTES)
    return insts


def test_a_full_home_answers_507_and_delete_still_frees_it(api, driver):
    insts = with_set(api, driver)
    token = api.token()  # minted before the disk fills
    home = api.lab.paths.home
    assert reserve.path_of(api.lab.paths.db).exists()
    fill(home / "filler")
    assert free_bytes(home) < 64 * 1024

    patch = raw(api, "PATCH", "virtualMachineScaleSets/web", token=token, params=V,
                json={"properties": {"upgradePolicy": {"mode": "Rolling"}}})
    put = raw(api, "PUT", "virtualMachineScaleSets/other", token=token, params=V,
              json={**model(capacity=0), "name": "other"})
    for r in (patch, put):
        assert r.status_code == 507, r.text
        assert r.json()["error"]["code"] == "InsufficientStorage" and "free some space" in r.json()["error"]["message"]
    assert api.lab.models.get("web").properties.upgradePolicy.mode == "Automatic"  # nothing half-written
    assert api.lab.models.stored_name("other") is None

    gone = raw(api, "DELETE", "virtualMachineScaleSets/web", token=token, params=V)
    assert gone.status_code == 202, gone.text
    assert ended(api, gone)["status"] == "Succeeded"
    assert raw(api, "GET", "virtualMachineScaleSets/web", token=token, params=V).status_code == 404
    assert api.lab.instances.list("web") == [] and api.lab.models.stored_name("web") is None
    assert not any(vm.console_log(api.lab.paths, i).exists() for i in insts)
    assert free_bytes(home) >= LOG_BYTES  # its files are gone: the space is free again


def test_a_read_only_database_answers_read_only_storage(api, driver, monkeypatch):
    """SQLite refusing writes (SQLITE_READONLY: here `query_only` on the connections the API's
    threads open from now on) is ReadOnlyStorage, not an internal error."""
    from controller.ops import lab as lab_mod
    make_scale_set(api.lab, model(capacity=1), driver, "1.0.0")

    def read_only(path):
        conn = connect(path)
        conn.execute("PRAGMA query_only=ON")
        return conn
    monkeypatch.setattr(lab_mod, "connect", read_only)
    r = raw(api, "PATCH", "virtualMachineScaleSets/web", params=V,
            json={"properties": {"upgradePolicy": {"mode": "Rolling"}}})
    assert r.status_code == 500 and r.json()["error"]["code"] == "ReadOnlyStorage", r.text
    assert "SCALESET_HOME must be writable" in r.json()["error"]["message"]


# -- the pieces, without a mount ---------------------------------------------------------------

def test_the_reserve_is_given_up_only_for_a_full_disk(tmp_path):
    db = tmp_path / "state.db"
    reserve.keep(db)
    assert reserve.path_of(db).stat().st_size == reserve.RESERVE_BYTES
    tries: list[int] = []

    def full_once() -> str:
        tries.append(1)
        if len(tries) == 1:
            raise sqlite3.OperationalError("database or disk is full")
        return "done"
    assert reserve.freeing(db, full_once) == "done" and len(tries) == 2
    assert reserve.path_of(db).exists()  # set aside again: there is room here

    def locked() -> None:
        raise sqlite3.OperationalError("database is locked")
    with pytest.raises(sqlite3.OperationalError):
        reserve.freeing(db, locked)
    assert reserve.path_of(db).exists()


def test_a_failed_commit_leaves_no_transaction_open(tmp_path):
    """A COMMIT that fails (here a deferred foreign key; on a full disk, SQLITE_FULL) is rolled
    back: the next transaction on the connection is a transaction of its own, not a part of it."""
    conn = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    conn.executescript("PRAGMA foreign_keys=ON; CREATE TABLE p (id INTEGER PRIMARY KEY);"
                       "CREATE TABLE c (p INTEGER REFERENCES p(id) DEFERRABLE INITIALLY DEFERRED);")
    with pytest.raises(sqlite3.IntegrityError):
        with transaction(conn):
            conn.execute("INSERT INTO c VALUES (7)")
    assert not conn.in_transaction
    with transaction(conn):
        conn.execute("INSERT INTO p VALUES (1)")
    assert sqlite3.connect(tmp_path / "t.db").execute("SELECT count(*) FROM p").fetchone()[0] == 1


def test_storage_errors_leave_the_pools_as_the_labs_errors(tmp_path):
    ctx = ApiContext(LabPaths(tmp_path / "home").ensure(), "test:///default")

    def full(_lab):
        raise OSError(errno.ENOSPC, "No space left on device", str(ctx.paths.db))

    def read_only(_lab):
        raise sqlite3.OperationalError("attempt to write a readonly database")
    try:
        for fn, code, status in ((full, "InsufficientStorage", 507), (read_only, "ReadOnlyStorage", 500)):
            with pytest.raises(LabError) as exc:
                asyncio.run(ctx.work(fn))
            assert (exc.value.code, exc.value.status) == (code, status)
    finally:
        ctx.close()
