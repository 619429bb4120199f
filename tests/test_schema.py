"""The lab's schema: versioned migrations applied by connect(), old labs migrate in place,
newer ones are refused, and new labs can be opened by several processes at once."""
import copy
import json
import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from controller.core.errors import LabError
from controller.state import schema
from controller.state.db import connect
from controller.state.health import HealthStore
from controller.state.scalesets import ScaleSetStore
from tests.test_model import BASE

REPO = Path(__file__).resolve().parent.parent

# Tables as the release before versioning made them (db.py, health.py: CREATE ... IF NOT EXISTS,
# user_version left at 0); the other tables were made the same way with the same statements.
PREVIOUS_RELEASE = """
CREATE TABLE IF NOT EXISTS scale_sets (
    name TEXT PRIMARY KEY COLLATE NOCASE,
    model TEXT NOT NULL,
    generation INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS health (
    scale_set TEXT NOT NULL COLLATE NOCASE,
    instance_id INTEGER NOT NULL,
    state TEXT NOT NULL,
    since TEXT NOT NULL,
    source TEXT NOT NULL,
    detail TEXT,
    checked_at TEXT NOT NULL,
    PRIMARY KEY (scale_set, instance_id)
);
"""


def tables(db: sqlite3.Connection) -> list[str]:
    return sorted(r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'index') "
                                           "AND name NOT LIKE 'sqlite_%'"))


def test_no_executescript_anywhere():
    """executescript commits any open transaction first: the schema goes through migrate() only."""
    users = [str(p.relative_to(REPO)) for d in ("controller", "images", "agent") for p in (REPO / d).rglob("*.py")
             if ".executescript(" in p.read_text()]
    assert users == []


def test_a_database_of_the_previous_release_migrates_and_keeps_its_rows(tmp_path):
    path = tmp_path / "state.db"
    old = sqlite3.connect(path)
    old.executescript(PREVIOUS_RELEASE)
    doc = copy.deepcopy(BASE)
    old.execute("INSERT INTO scale_sets VALUES (?,?,?,?,?)", ("web", json.dumps(doc), 7, "t0", "t1"))
    old.execute("INSERT INTO health VALUES ('web', 3, 'Healthy', 's0', 'agent', 'ok', 'c0')")
    old.commit()
    assert old.execute("PRAGMA user_version").fetchone()[0] == 0
    old.close()

    db = connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == schema.LATEST
    store = ScaleSetStore(db)
    assert store.get("web").to_json()["sku"] == {"name": "Lab_2vCPU_512MiB", "capacity": 5}
    assert store.generation("web") == 7
    assert HealthStore(db).get("web")[3].state == "Healthy"
    assert tables(db) == tables(connect(tmp_path / "fresh.db"))  # everything a new lab has
    db.close()
    assert connect(path).execute("SELECT COUNT(*) FROM scale_sets").fetchone()[0] == 1  # again: no change


def test_a_database_of_a_newer_release_is_refused_untouched(tmp_path):
    path = tmp_path / "state.db"
    connect(path).close()
    newer = sqlite3.connect(path)
    newer.execute(f"PRAGMA user_version={schema.LATEST + 1}")
    newer.close()
    with pytest.raises(LabError) as err:
        connect(path)
    assert err.value.field == str(path) and err.value.code == "StateCorrupt"
    assert f"schema version {schema.LATEST + 1} is newer" in err.value.reason
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA user_version").fetchone()[0] == schema.LATEST + 1
    check.close()


def _open_each(paths: list[str], barrier) -> None:
    for path in paths:  # all processes open the same brand-new file together, round after round
        barrier.wait(10)  # a process that failed breaks the barrier: the others stop too
        db = connect(Path(path))
        ScaleSetStore(db).list()
        db.close()


def test_processes_opening_a_new_lab_at_once_all_succeed(tmp_path):
    ctx = multiprocessing.get_context("fork")
    paths = [str(tmp_path / f"lab{n}" / "state.db") for n in range(100)]
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=_open_each, args=(paths, barrier)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(600)  # generous: under TCG inside the Vagrant lab host 60 s was seen to be too short
    assert [p.exitcode for p in procs] == [0] * 4  # not one "database is locked"
    for path in paths:
        assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == schema.LATEST


def schema_at(path, version: int) -> sqlite3.Connection:
    """A database at schema `version` (the first migrations only), in autocommit."""
    old = sqlite3.connect(path, isolation_level=None)
    for script in schema.MIGRATIONS[:version]:
        for stmt in schema.statements(script):
            old.execute(stmt)
    old.execute(f"PRAGMA user_version={version}")
    return old


def test_a_database_of_schema_4_gets_regions_and_keeps_its_sets(tmp_path):
    """Migration 5 (regions): a lab of the schema before it opens with its sets and no region yet."""
    from controller.model.region import Host, Region
    from controller.state.regions import RegionStore
    path = tmp_path / "state.db"
    old = schema_at(path, 4)
    old.execute("INSERT INTO scale_sets VALUES (?,?,?,?,?)", ("web", json.dumps({**BASE, "location": "east"}),
                                                               3, "t0", "t1"))
    old.close()

    db = connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == schema.LATEST
    assert tables(db) == tables(connect(tmp_path / "fresh.db"))
    regions = RegionStore(db, Host("test:///default", "p"))
    assert ScaleSetStore(db).get("web").location == "east" and not regions.get("east").configured
    regions.add(Region("east", (Host("test:///default", "default-pool"),)))
    with pytest.raises(LabError) as err:
        regions.remove("east")
    assert err.value.code == "RegionInUse"


def test_a_database_of_schema_5_keeps_its_instances_on_the_local_host(tmp_path):
    """Migration 6 (each instance's host): rows made before it read as on the local host (None)."""
    from controller.model.instance import Instance
    from controller.state.instances import InstanceStore
    path = tmp_path / "state.db"
    old = schema_at(path, 5)
    old.execute("INSERT INTO scale_sets VALUES (?,?,?,?,?)", ("web", json.dumps(BASE), 3, "t0", "t1"))
    old.execute("INSERT INTO profiles VALUES ('p0', '{}')")
    old.execute("INSERT INTO instances (scale_set, instance_id, domain, computer_name, update_domain, fault_domain, "
                "profile, profile_digest, os_disk, seed, ci_instance_id, ports, provisioning_state, power_state, "
                "created_at, updated_at) VALUES ('web', 0, 'd0', 'web000000', 0, 0, 'p0', 'x', '/o', '/s', 'c', "
                "'{}', 'Succeeded', 'running', 't0', 't1')")
    old.close()

    db = connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == schema.LATEST == 9
    assert tables(db) == tables(connect(tmp_path / "fresh.db"))
    store = InstanceStore(db)
    [inst] = store.list("web")
    assert (inst.host_uri, inst.host_pool) == (None, None) and store.host_pools("web") == [(None, None)]
    store.insert(Instance("web", 1, "d1", "web000001", 1, 1, {}, "x", "/o1", "/s1", "c", {},
                          host_uri="test:///h2.xml", host_pool="p2"))
    got = store.get("web", 1)
    assert (got.host_uri, got.host_pool) == ("test:///h2.xml", "p2")
    got.host_uri, got.error = "test:///elsewhere.xml", "changed"
    store.save(got)  # a save never moves an instance to another host
    assert store.get("web", 1).host_uri == "test:///h2.xml" and store.remote_domains() == {"d1": "test:///h2.xml"}
