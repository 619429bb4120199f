import copy

import pytest

from controller.state.db import connect
from controller.core.errors import ModelError
from controller.state.scalesets import ScaleSetStore
from controller.model.setpath import set_path
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
    store.replace(doc)
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
        store.replace(doc)
    assert err.value.path == "$.sku.capacity"
    assert store.get("web").sku.capacity == 5 and store.generation("web") == 1
    with pytest.raises(ModelError) as err:
        store.create(copy.deepcopy(BASE))
    assert err.value.code == "Conflict"


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
