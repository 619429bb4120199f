"""One scale set whose stored model no longer reads never stops the lab: `list` and the
controller skip it and name it, the other sets are served, and `delete` still removes it."""
import asyncio
import json

from controller.cli.main import main
from controller.ops import commands as ops
from controller.ops.rolling import start_upgrade
from controller.ops.service import Controller
from controller.state.upgrades import UpgradeStore
from controller.virt.ports import PortAllocator
from tests.fakedriver import FakeDriver, make_scale_set
from tests.test_rolling import model, publish, versions


def spoil(lab, name: str, text: str = '{"name": "bad", "sku": ') -> None:
    lab.db.execute("UPDATE scale_sets SET model=? WHERE name=?", (text, name))


def test_list_names_the_bad_set_and_shows_the_others(flab, capsys, monkeypatch):
    monkeypatch.setenv("SCALESET_LIBVIRT_URI", "test:///default")
    d = FakeDriver()
    for name in ("bad", "web"):
        make_scale_set(flab, {**model(capacity=1), "name": name}, d, "1.0.0")
    spoil(flab, "bad")
    assert main(["list"]) == 0
    out = capsys.readouterr()
    assert [s["name"] for s in json.loads(out.out)] == ["web"]
    assert out.err.startswith("WARNING: scale set 'bad': the stored model is not valid JSON")
    assert main(["show", "-n", "bad"]) == 1
    assert "ERROR: (StateCorrupt) scale set 'bad': the stored model is not valid JSON" in capsys.readouterr().err


def test_the_controller_skips_a_bad_set_and_serves_the_others(flab, qcow2_file):
    d = FakeDriver()
    make_scale_set(flab, model(), d, "1.0.0")
    make_scale_set(flab, {**model(capacity=1), "name": "bad"}, d, "1.0.0")
    publish(flab, "2.0.0", qcow2_file)
    up = start_upgrade(flab, flab.models.get("web"), "Platform")
    flab.db.execute("UPDATE rolling_upgrades SET owner='999999999:0'")  # its controller was killed
    spoil(flab, "bad", json.dumps({**model(capacity=1), "name": "bad", "sku": {"capacity": -1}}))
    said: list[str] = []
    ctl = Controller(flab, d, say=said.append)
    asyncio.run(ctl.run(once=True))
    assert UpgradeStore(flab.db).get(up.id).status == "Completed" and versions(flab) == ["2.0.0"] * 5
    bad = [m for m in said if "'bad'" in m]
    assert len(bad) == 1 and bad[0].startswith("skipped: scale set 'bad': the stored model no longer validates: "
                                               "$.sku.capacity")
    asyncio.run(ctl.tick())
    assert [m for m in said if "'bad'" in m] == bad  # said once, not every tick


def test_delete_removes_a_set_whose_model_does_not_read(flab):
    d = FakeDriver()
    insts = make_scale_set(flab, {**model(capacity=2), "name": "bad"}, d, "1.0.0")
    spoil(flab, "bad")
    assert ops.delete(flab, "bad") == sorted(i.domain for i in insts)
    assert flab.db.execute("SELECT COUNT(*) FROM scale_sets").fetchone()[0] == 0
    assert flab.db.execute("SELECT COUNT(*) FROM instances").fetchone()[0] == 0
    assert [v.name for v in flab.pool_at(None).volumes()] == []
    assert not any(o.startswith(f"{flab.paths.home}#") for o in PortAllocator().leases().values())
