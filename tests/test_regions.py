"""Regions: the model's checks, `local` and label regions, placement by fault domain, the store
(atomic adds, removal refused in use) and the fault-domain check on scale-set writes."""
import copy
import multiprocessing
from pathlib import Path

import pytest

from controller.core.errors import ModelError
from controller.model.placement import fault_domain, fault_domain_count, host_for, place
from controller.model.region import Host, Region, local_host, validate_region
from controller.model.scaleset import parse
from controller.state.db import connect
from controller.state.regions import RegionStore
from controller.state.scalesets import ScaleSetStore
from tests.test_model import BASE

H1 = Host("qemu+ssh://root@h1/system", "scaleset")
H2 = Host("qemu+tcp://127.0.0.1:16510/system", "scaleset")
EAST = Region("east", (H1, H2))
LOCAL = local_host(Path("/lab"), "test:///default")


def model(location="local", fd_count=None, **extra):
    d = copy.deepcopy(BASE)
    d["location"] = location
    if fd_count is not None:
        d["properties"]["platformFaultDomainCount"] = fd_count
    d.update(extra)
    return d


@pytest.mark.parametrize("region, field, reason", [
    (Region("we st", (H1,)), "$.name", "is not a region name"),
    (Region("east", ()), "$.hosts", "needs at least one host"),
    (Region("east", (Host("http://h1/system", "p"),)), "$.hosts[0].uri", "with a scheme of qemu, qemu+ssh"),
    (Region("east", (Host("qemu+ssh:///system", "p"),)), "$.hosts[0].uri", "qemu+ssh needs a host name"),
    (Region("east", (Host("qemu+tcp://h1", "p"),)), "$.hosts[0].uri", "names no driver instance"),
    (Region("east", (Host("qemu+tcp://h1:99999/system", "p"),)), "$.hosts[0].uri", "is not a libvirt URI"),
    (Region("east", (Host("qemu+unix://h1/system", "p"),)), "$.hosts[0].uri", "takes no host"),
    (Region("east", (Host("qemu:///sys tem", "p"),)), "$.hosts[0].uri", "without spaces"),
    (Region("east", (H1, Host("test:///default", "a/b"))), "$.hosts[1].pool", "is not a pool name"),
    (Region("east", (Host("test:///default", "p", "rel/dir"),)), "$.hosts[0].poolPath", "absolute"),
    (Region("east", (Host("test:///default", "p", ssh="root@h1:0"),)), "$.hosts[0].ssh", "[user@]host[:port]"),
    (Region("east", (H1, H2, Host(H1.uri, H1.pool))), "$.hosts[2]", "is already host 0"),
])
def test_bad_regions_name_the_field(region, field, reason):
    with pytest.raises(ModelError) as err:
        validate_region(region)
    assert err.value.field == field and reason in err.value.reason


def test_good_uris_pass_and_ssh_defaults_from_a_qemu_ssh_uri():
    for uri in ("qemu:///system", "qemu:///session", "test:///default", "qemu+unix:///system?socket=/run/x.sock",
                "qemu+tls://h1.example/system", "qemu+tcp://[::1]:16509/system", "qemu+libssh2://u@h/system"):
        validate_region(Region("r", (Host(uri, "p"),)))
    assert Host("qemu+ssh://root@h1:2222/system", "p").ssh == "root@h1:2222"
    assert Host("qemu+ssh://h1/system?keyfile=/k", "p").ssh == "h1"
    assert Host("qemu+ssh://root@h1/system", "p", ssh="ops@bastion:22").ssh == "ops@bastion:22"
    assert Host("qemu+tcp://h1/system", "p").ssh is None


def test_local_is_the_labs_libvirt_with_a_pool_of_its_own(tmp_path):
    a, b = local_host(tmp_path / "a", "qemu:///system"), local_host(tmp_path / "b", "qemu:///system")
    assert a.uri == "qemu:///system" and a.pool_path == str(tmp_path / "a" / "pool")
    assert a.pool.startswith("scaleset-lab-") and len(a.pool) == len("scaleset-lab-") + 8 and a.pool != b.pool
    validate_region(Region("local", (a,)))


def test_four_instances_over_two_hosts_two_each_in_fault_domain_order():
    ss = parse(model("east"))
    spots = [place(ss, EAST, i) for i in range(4)]
    assert [p.fault_domain for p in spots] == [0, 1, 0, 1]
    assert [p.host for p in spots] == [H1, H2, H1, H2]
    assert fault_domain_count(None, EAST) == 2  # the default: the host count when under 5


def test_fault_domain_counts_as_azure_has_them():
    five = Region("big", tuple(Host(f"qemu+tcp://h{i}/system", "p") for i in range(7)))
    assert fault_domain_count(None, five) == 5  # Azure's default, when there are hosts enough
    assert [fault_domain(i, 1, five) for i in range(8)] == [0, 1, 2, 3, 4, 5, 6, 0]  # 1: max spreading
    assert [fault_domain(i, 3, five) for i in range(4)] == [0, 1, 2, 0]
    label = Region("westeurope", (LOCAL,), configured=False)
    assert fault_domain_count(None, label) == 5 and [fault_domain(i, 5, label) for i in range(6)] == [0, 1, 2, 3, 4, 0]
    assert host_for(label, 4) == LOCAL  # labels: fault domains stay labels on the one host
    with pytest.raises(ModelError):
        host_for(EAST, 2)


@pytest.mark.parametrize("count", [0, 6, -1])
def test_fault_domain_count_is_1_to_5(count):
    with pytest.raises(ModelError) as err:
        parse(model(fd_count=count))
    assert err.value.field == "$.properties.platformFaultDomainCount" and "out of range (1..5)" in err.value.reason


@pytest.fixture
def db(tmp_path):
    conn = connect(tmp_path / "state.db")
    yield conn
    conn.close()


def test_add_get_list_remove(db):
    store = RegionStore(db, LOCAL)
    assert [r.name for r in store.list()] == ["local"]
    assert store.add(EAST) == EAST
    assert store.get("EAST") == EAST and store.get("east").hosts == (H1, H2)  # names match in any case
    assert store.get("local") == Region("local", (LOCAL,), configured=False)
    assert store.get("westeurope") == Region("westeurope", (LOCAL,), configured=False)  # a label, as before
    assert [r.name for r in store.list()] == ["local", "east"]
    for name in ("East", "LOCAL"):
        with pytest.raises(ModelError) as err:
            store.add(Region(name, (H1,)))
        assert err.value.code == "Conflict" and err.value.status == 409
    assert store.remove("east") == EAST and store.configured("east") is None
    with pytest.raises(ModelError) as err:
        store.remove("east")
    assert err.value.code == "ResourceNotFound"
    with pytest.raises(ModelError) as err:
        store.remove("local")
    assert err.value.code == "OperationNotAllowed"


def test_a_region_in_use_is_not_removed(db):
    store, sets = RegionStore(db, LOCAL), ScaleSetStore(db)
    store.add(EAST)
    sets.create(model("East"))
    with pytest.raises(ModelError) as err:
        store.remove("east")
    assert err.value.code == "RegionInUse" and err.value.status == 409 and "web" in err.value.reason
    sets.delete("web")
    store.remove("east")


def test_more_fault_domains_than_hosts_is_refused_on_write(db):
    RegionStore(db, LOCAL).add(EAST)
    sets = ScaleSetStore(db)
    with pytest.raises(ModelError) as err:
        sets.create(model("east", fd_count=3))
    assert err.value.field == "$.properties.platformFaultDomainCount"
    assert "region 'east' has 2 host(s)" in err.value.reason and sets.list() == []
    sets.create(model("westeurope", fd_count=5))  # a label region: fault domains are labels, as before
    sets.create(model("east", fd_count=2, name="app"))
    with pytest.raises(ModelError) as err:  # fixed at creation, as in Azure
        sets.replace(model("east", fd_count=1, name="app"))
    assert err.value.code == "PropertyChangeNotAllowed"
    kept = sets.replace(model("east", name="app"))  # a document without it keeps it
    assert kept.properties.platformFaultDomainCount == 2


def _add_one(path: str, barrier, results) -> None:
    db = connect(Path(path))
    barrier.wait(10)
    try:
        RegionStore(db, LOCAL).add(EAST)
        results.put("added")
    except ModelError as exc:
        results.put(exc.code)


def test_two_processes_adding_one_region_do_not_both_succeed(tmp_path):
    ctx = multiprocessing.get_context("fork")
    path = tmp_path / "state.db"
    connect(path).close()
    for _ in range(5):
        barrier, results = ctx.Barrier(2), ctx.Queue()
        procs = [ctx.Process(target=_add_one, args=(str(path), barrier, results)) for _ in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(30)
        assert sorted(results.get(timeout=5) for _ in procs) == ["Conflict", "added"]
        db = connect(path)
        assert db.execute("SELECT COUNT(*) FROM region_hosts").fetchone()[0] == 2
        RegionStore(db, LOCAL).remove("east")
        db.close()
