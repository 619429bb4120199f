import copy
import json

import pytest

from controller.core.errors import ModelError
from controller.model.setpath import set_path
from controller.state.db import connect
from controller.state.scalesets import ScaleSetStore
from tests.test_model import BASE


@pytest.fixture
def store(lab):
    return ScaleSetStore(connect(lab.db))


def test_create_get_replace_delete(store, lab):
    store.create(copy.deepcopy(BASE))
    assert store.get("WEB").name == "web" and store.generation("web") == 1
    doc = store.get("web").to_json()
    set_path(doc, "properties.labSettings.healthWaitTimeout=PT3M")
    set_path(doc, "sku.capacity=3")
    store.replace(doc, 1)
    again = ScaleSetStore(connect(lab.db)).get("web")  # persisted
    assert again.properties.labSettings.healthWaitTimeout == "PT3M" and again.sku.capacity == 3
    assert store.generation("web") == 2
    store.delete("web")
    with pytest.raises(ModelError) as err:
        store.get("web")
    assert err.value.code == "ResourceNotFound"


def test_invalid_write_changes_nothing(store):
    store.create(copy.deepcopy(BASE))
    doc = store.get("web").to_json()
    set_path(doc, "sku.capacity=-2")
    with pytest.raises(ModelError) as err:
        store.replace(doc, 1)
    assert err.value.path == "$.sku.capacity"
    assert store.get("web").sku.capacity == 5 and store.generation("web") == 1
    with pytest.raises(ModelError) as err:
        store.create(copy.deepcopy(BASE))
    assert err.value.code == "Conflict"


def test_a_write_based_on_an_older_generation_is_refused(store):
    store.create(copy.deepcopy(BASE))
    first, generation = store.read("web")
    doc = first.to_json()
    set_path(doc, "sku.capacity=3")
    store.replace(doc, generation)
    stale = first.to_json()
    set_path(stale, "properties.labSettings.healthWaitTimeout=PT3M")
    with pytest.raises(ModelError) as err:
        store.replace(stale, generation)  # would undo the capacity change
    assert err.value.code == "ConcurrentUpdate" and err.value.status == 409
    ss, now = store.read("web")
    assert (ss.sku.capacity, ss.properties.labSettings.healthWaitTimeout, now) == (3, "PT5M", 2)
    with pytest.raises(ModelError) as err:
        store.replace({**copy.deepcopy(BASE), "name": "nope"}, 1)
    assert err.value.code == "ResourceNotFound"


@pytest.mark.parametrize("stored, reason", [
    ("{not json", "is not valid JSON (Expecting property name enclosed in double quotes, line 1 column 2)"),
    (json.dumps({**BASE, "sku": {"capacity": -1}}), "no longer validates: $.sku.capacity:"),
    ("[]", "no longer validates"),
])
def test_a_model_that_no_longer_reads_is_named_and_skipped(store, stored, reason):
    for name in ("alpha", "web", "zulu"):
        store.create({**copy.deepcopy(BASE), "name": name})
    store.db.execute("UPDATE scale_sets SET model=? WHERE name='web'", (stored,))
    good, bad = store.scan()
    assert [s.name for s in good] == ["alpha", "zulu"]
    assert [(e.field, e.code) for e in bad] == [("scale set 'web'", "StateCorrupt")] and reason in bad[0].reason
    assert [s.name for s in store.list()] == ["alpha", "zulu"]
    for read in (store.get, store.read):
        with pytest.raises(ModelError) as err:
            read("WEB")
        assert err.value.code == "StateCorrupt" and "scale set 'web'" in str(err.value)
    store.delete("web")
    assert [s.name for s in store.list()] == ["alpha", "zulu"] and store.scan()[1] == []


def test_set_path_values_and_lists():
    doc = copy.deepcopy(BASE)
    set_path(doc, "properties.upgradePolicy.rollingUpgradePolicy.prioritizeUnhealthyInstances=true")
    set_path(doc, "properties.virtualMachineProfile.storageProfile.dataDisks[1].diskSizeGB=8")
    set_path(doc, "properties.labSettings.autoUpgradeDelay=PT10S")
    assert doc["properties"]["upgradePolicy"]["rollingUpgradePolicy"]["prioritizeUnhealthyInstances"] is True
    assert doc["properties"]["virtualMachineProfile"]["storageProfile"]["dataDisks"][1]["diskSizeGB"] == 8
    assert doc["properties"]["labSettings"]["autoUpgradeDelay"] == "PT10S"
    with pytest.raises(ModelError):
        set_path(doc, "properties.virtualMachineProfile.storageProfile.dataDisks[7].lun=1")
    with pytest.raises(ModelError):
        set_path(doc, "no-equals-sign")


@pytest.mark.parametrize("assignment", [
    "name.x=1", "sku.capacity.x=1", "a.b[0]=5", "x[abc]=1", "a..b=1", "=1", ".=1", "properties.x[99]=1",
    "x[-1]=1", "tags[0]=x", "sku[0]=1", "properties.virtualMachineProfile.storageProfile.dataDisks[2]=1",
    "sku.capacity=" + "[" * 100_000 + "]" * 100_000,
])
def test_set_path_refuses_what_az_refuses(assignment):
    """These gave a traceback or wrote garbage (a key literally named `b[0]`)."""
    doc = copy.deepcopy(BASE)
    with pytest.raises(ModelError) as err:
        set_path(doc, assignment)
    assert err.value.field == "--set"
    assert "b[0]" not in doc.get("a", {})


def test_set_path_index_on_the_last_segment_replaces_the_item():
    doc = copy.deepcopy(BASE)
    set_path(doc, 'properties.virtualMachineProfile.storageProfile.dataDisks[1]={"lun": 9, "diskSizeGB": 4}')
    assert doc["properties"]["virtualMachineProfile"]["storageProfile"]["dataDisks"][1] == {"lun": 9, "diskSizeGB": 4}


def test_read_only_fields_are_the_labs_whatever_a_write_says(store):
    """As ARM ignores read-only properties on a PUT: uniqueId is made once, the id (the set's
    resource group) stays, provisioningState is never stored (it is computed from the instances)."""
    doc = copy.deepcopy(BASE)
    doc["properties"] |= {"uniqueId": "mine", "provisioningState": "Failed"}
    made = store.create(doc)
    unique = made.properties.uniqueId
    assert len(unique) == 36 and unique != "mine" and made.properties.provisioningState is None
    other = {**made.to_json(), "id": "/subscriptions/x/resourceGroups/other/providers/Microsoft.Compute/"
                                      "virtualMachineScaleSets/web"}
    other["properties"] |= {"uniqueId": "changed", "provisioningState": "Deleting"}
    store.replace(other, 1)
    again = store.get("web")
    assert (again.properties.uniqueId, again.id, again.properties.provisioningState) == (unique, made.id, None)


def test_a_data_disk_grows_but_never_shrinks(store):
    doc = copy.deepcopy(BASE)
    doc["properties"]["virtualMachineProfile"]["storageProfile"]["dataDisks"] = [{"lun": 0, "diskSizeGB": 2}]
    store.create(doc)
    grown = store.get("web").to_json()
    set_path(grown, "properties.virtualMachineProfile.storageProfile.dataDisks[0].diskSizeGB=3")
    store.replace(grown, 1)
    set_path(grown, "properties.virtualMachineProfile.storageProfile.dataDisks[0].diskSizeGB=1")
    with pytest.raises(ModelError) as err:
        store.replace(grown, 2)
    assert err.value.field == "$.properties.virtualMachineProfile.storageProfile.dataDisks[0].diskSizeGB"
    assert err.value.code == "OperationNotAllowed" and "cannot shrink" in err.value.reason
    set_path(grown, "properties.virtualMachineProfile.storageProfile.dataDisks[0].lun=1")  # a new LUN may be small
    assert store.replace(grown, 2).properties.virtualMachineProfile.storageProfile.dataDisks[0].diskSizeGB == 1
