"""How a batch is recorded: group commits, the live instance set, profiles stored once, and a
kill between recording a settled instance and deleting its old disk."""
import asyncio
import json
import sqlite3

import pytest

from controller.core.txn import transaction
from controller.ops import rolling
from controller.ops.rolling import Orchestrator, start_upgrade
from controller.ops.service import Controller
from controller.state.db import GroupCommit
from controller.state.instances import LiveSet
from controller.state.upgrades import UpgradeStore
from tests.fakedriver import FakeDriver, Killed, make_scale_set
from tests.fakepool import FakeDisks, os_disks, seeds
from tests.test_rolling import model, publish, versions


def test_group_commit_shares_one_transaction_and_isolates_a_bad_write(flab):
    db = flab.db
    db.execute("CREATE TABLE t (k TEXT PRIMARY KEY)")
    statements: list[str] = []
    db.set_trace_callback(statements.append)
    group = GroupCommit(db)

    def insert(keys: list[str]) -> None:
        db.executemany("INSERT INTO t VALUES (?)", [(k,) for k in keys])

    async def main():
        return await asyncio.gather(*(group.write(insert, k) for k in ("a", "b", "a", "c")),
                                    return_exceptions=True)

    results = asyncio.run(main())
    db.set_trace_callback(None)
    # together they fail (a duplicate); alone, only the duplicate's caller gets the error
    assert [r is None for r in results] == [True, True, False, True]
    assert isinstance(results[2], sqlite3.IntegrityError)
    assert sorted(r[0] for r in db.execute("SELECT k FROM t")) == ["a", "b", "c"]
    assert statements.count("BEGIN IMMEDIATE") == 1 + 4  # the shared try, then one each

    statements.clear()
    db.set_trace_callback(statements.append)

    async def good():
        await asyncio.gather(*(group.write(insert, k) for k in ("d", "e", "f")))

    asyncio.run(good())
    db.set_trace_callback(None)
    assert statements.count("BEGIN IMMEDIATE") == 1 and statements.count("COMMIT") == 1


def test_live_set_reads_what_another_process_wrote(flab):
    d = FakeDriver()
    make_scale_set(flab, model(capacity=3), d, "1.0.0")
    live = LiveSet(flab.instances, "web")
    first = live.instances()
    assert live.instances()[0] is first[0]  # nothing changed: the same objects, no reading
    other = sqlite3.connect(flab.paths.db, isolation_level=None)
    other.execute("UPDATE instances SET provisioning_state='Failed' WHERE instance_id=1")
    other.close()
    assert [i.provisioning_state for i in live.instances()] == ["Succeeded", "Failed", "Succeeded"]
    mine = flab.instances.get("web", 2)
    mine.provisioning_state = "Updating"
    with transaction(flab.db):
        flab.instances.save(mine)
        flab.db.execute("UPDATE instances SET error='seen' WHERE instance_id=0")
    live.changed([0, 2], {2: mine})  # 2: the object this process wrote; 0: read again
    got = live.instances()
    assert got[2] is mine and got[0].error == "seen" and [i.instance_id for i in got] == [0, 1, 2]


def test_a_profile_is_stored_once_and_inline_rows_still_read(flab):
    d = FakeDriver()
    make_scale_set(flab, model(capacity=4), d, "1.0.0")
    refs = {r[0] for r in flab.db.execute("SELECT profile FROM instances")}
    assert len(refs) == 1 and next(iter(refs)).startswith("sha256:")
    assert flab.db.execute("SELECT COUNT(*) FROM profiles").fetchone()[0] == 1
    inline = json.loads(flab.db.execute("SELECT profile FROM profiles").fetchone()[0])
    flab.db.execute("UPDATE instances SET profile=? WHERE instance_id=3", (json.dumps(inline),))  # an older lab's row
    assert flab.instances.get("web", 3).profile == flab.instances.get("web", 0).profile
    assert flab.instances.images_in_use() == {("scaleset-lab", "debian", "debian-12", "1.0.0")}


def test_a_kill_after_a_settle_is_recorded_leaves_no_old_disk_behind(flab, qcow2_file, monkeypatch):
    d = FakeDriver()
    make_scale_set(flab, model(), d, "1.0.0")
    old_disks = [i.os_disk for i in flab.instances.list("web")]
    publish(flab, "2.0.0", qcow2_file)
    up = start_upgrade(flab, flab.models.get("web"), "Platform")

    def killed(swap, remove):
        raise Killed("after the settle's commit, before the old disk is deleted")

    drop_old = rolling.drop_old
    monkeypatch.setattr(rolling, "drop_old", killed)
    with pytest.raises(Killed):
        asyncio.run(Orchestrator(flab, d, poll_interval=0).run(up))
    assert FakeDisks.exists(old_disks[0]) and flab.instances.get("web", 0).image["version"] == "2.0.0"
    monkeypatch.setattr(rolling, "drop_old", drop_old)
    flab.db.execute("UPDATE rolling_upgrades SET owner='999999999:0'")
    asyncio.run(Controller(flab, d, say=lambda m: None).run(once=True))
    assert UpgradeStore(flab.db).get(up.id).status == "Completed"
    assert versions(flab) == ["2.0.0"] * 5
    assert not any(FakeDisks.exists(p) for p in old_disks)
    for inst in flab.instances.list("web"):
        assert os_disks(inst) == [inst.os_disk]
        assert seeds(inst) == [inst.seed]
