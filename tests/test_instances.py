import copy
from pathlib import Path

import pytest

from controller.core.errors import ModelError
from controller.model.instance import (
    Instance,
    applied_profile,
    computer_name,
    domain_name,
    guest_ports,
    plan_capacity,
    profile_digest,
    resolve_ids,
)
from controller.model.scaleset import parse
from controller.model.setpath import set_path
from controller.state.db import connect
from controller.state.instances import InstanceStore
from controller.state.scalesets import ScaleSetStore
from tests.test_model import BASE


def ss(**sets):
    d = copy.deepcopy(BASE)
    for path, value in sets.items():
        set_path(d, f"{path}={value}")
    return parse(d)


def test_capacity_plan_fills_lowest_free_ids_and_removes_highest():
    assert plan_capacity([], 3) == ([0, 1, 2], [])
    assert plan_capacity([0, 2], 4) == ([1, 3], [])
    assert plan_capacity([0, 1, 2, 3, 4], 2) == ([], [4, 3, 2])
    assert plan_capacity([0, 1], 2) == ([], [])


def test_computer_names_are_prefix_plus_base36_id():
    assert computer_name("web", 0) == "web000000"
    assert computer_name("web", 35) == "web00000z"
    assert computer_name("web", 36) == "web000010"


def test_domain_names_differ_between_labs():
    a = domain_name(Path("/tmp/a"), "web", 1)
    assert a.endswith("-web_1") and a != domain_name(Path("/tmp/b"), "web", 1)


def test_profile_digest_follows_the_vm_profile_not_the_policy():
    base = profile_digest(ss())
    assert profile_digest(ss(**{"properties.upgradePolicy.mode": "Manual"})) == base
    assert profile_digest(ss(**{"sku.capacity": 9})) == base
    assert profile_digest(ss(**{"properties.virtualMachineProfile.storageProfile.imageReference.version":
                                "1.2.3"})) != base
    assert profile_digest(ss(**{"properties.labSettings.vcpus": 1})) != base


def test_applied_profile_resolves_the_version_and_keeps_the_request():
    p = applied_profile(ss(), "1.4.0")
    assert p["vm"]["storageProfile"]["imageReference"]["version"] == "1.4.0"
    assert p["requestedVersion"] == "latest" and p["vcpus"] == 2


def test_guest_ports_are_ssh_agent_and_probe():
    assert guest_ports(ss()) == [22, 8765, 80]
    assert guest_ports(ss(**{"properties.virtualMachineProfile.networkProfile.healthProbe.port": 22})) == [22, 8765]


def _inst(i: int, version="1.0.0") -> Instance:
    return Instance(scale_set="web", instance_id=i, domain=f"d{i}", computer_name=f"web{i}", update_domain=i % 5,
                    fault_domain=i % 5, profile=applied_profile(ss(), version), profile_digest="x",
                    os_disk=f"/l/d{i}/os.qcow2", seed=f"/l/d{i}/seed.iso", ci_instance_id=f"ci{i}",
                    ports={22: 20000 + i})


def test_instance_records_round_trip_and_track_images_in_use(lab):
    db = connect(lab.db)
    ScaleSetStore(db).create(copy.deepcopy(BASE))
    store = InstanceStore(db)
    store.insert(_inst(0))
    store.insert(_inst(1, "1.1.0"))
    got = store.get("web", 1)
    assert got.ports == {22: 20001} and got.image["version"] == "1.1.0"
    got.extensions = [{"name": "a", "provisioningState": "Succeeded"}]
    store.save(got)
    assert store.get("web", 1).extensions[0]["name"] == "a"
    assert store.images_in_use() == {("scaleset-lab", "debian", "debian-12", "1.0.0"),
                                     ("scaleset-lab", "debian", "debian-12", "1.1.0")}
    with pytest.raises(ModelError) as err:
        store.get("web", 7)
    assert err.value.code == "NotFound"


def test_instance_ids_are_resolved_or_rejected_by_name():
    insts = [_inst(0), _inst(1)]
    assert resolve_ids(insts, ["*"]) == insts and resolve_ids(insts, None) == insts
    assert resolve_ids(insts, ["1", "1"]) == [insts[1]]
    with pytest.raises(ModelError) as err:
        resolve_ids(insts, ["5"])
    assert err.value.path == "--instance-ids" and "no instance '5'" in err.value.reason
