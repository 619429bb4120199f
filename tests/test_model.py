import copy

import pytest

from controller.core.errors import ModelError
from controller.model.jsonmap import parse_duration
from controller.model.scaleset import parse

BASE = {
    "name": "web",
    "sku": {"capacity": 5},
    "properties": {
        "upgradePolicy": {"mode": "Rolling"},
        "virtualMachineProfile": {
            "storageProfile": {
                "imageReference": {"publisher": "scaleset-lab", "offer": "debian", "sku": "debian-12",
                                   "version": "latest"},
                "dataDisks": [{"lun": 0, "diskSizeGB": 1}, {"lun": 1, "diskSizeGB": 2}],
            },
            "osProfile": {"computerNamePrefix": "web", "adminUsername": "azureuser"},
            "networkProfile": {"healthProbe": {"protocol": "Http", "port": 80, "requestPath": "/health"}},
        },
    },
}


def doc(**changes):
    d = copy.deepcopy(BASE)
    for path, value in changes.items():
        node = d
        keys = path.split("__")
        for k in keys[:-1]:
            node = node[int(k)] if isinstance(node, list) else node.setdefault(k, {})
        node[keys[-1]] = value
    return d


VMP = "properties__virtualMachineProfile"
VMP_PATH = "$.properties.virtualMachineProfile"


def test_defaults_are_azures():
    ss = parse(BASE)
    rp = ss.properties.upgradePolicy.rollingUpgradePolicy
    assert (rp.maxBatchInstancePercent, rp.maxUnhealthyInstancePercent,
            rp.maxUnhealthyUpgradedInstancePercent, rp.pauseTimeBetweenBatches) == (20, 20, 20, "PT0S")
    assert ss.properties.upgradePolicy.automaticOSUpgradePolicy.enableAutomaticOSUpgrade is False
    assert ss.properties.labSettings.healthWaitTimeout == "PT5M" and ss.location == "local"
    out = ss.to_json()
    assert out["properties"]["virtualMachineProfile"]["storageProfile"]["dataDisks"][1] == {
        "lun": 1, "diskSizeGB": 2, "createOption": "Empty", "caching": "None"}
    assert parse(out).to_json() == out  # round trip


@pytest.mark.parametrize("changes, path, code", [
    ({"sku__capacity": -1}, "$.sku.capacity", "InvalidParameter"),
    ({"name": "bad name!"}, "$.name", "InvalidResourceName"),
    ({f"{VMP}__storageProfile__imageReference__version": "1.2"},
     "$.properties.virtualMachineProfile.storageProfile.imageReference.version", "InvalidImageVersion"),
    ({f"{VMP}__storageProfile__dataDisks": [{"lun": 3, "diskSizeGB": 1}, {"lun": 3, "diskSizeGB": 1}]},
     "$.properties.virtualMachineProfile.storageProfile.dataDisks[1].lun", "DuplicateLun"),
    ({"properties__upgradePolicy__rollingUpgradePolicy": {"maxBatchInstancePercent": 4}},
     "$.properties.upgradePolicy.rollingUpgradePolicy.maxBatchInstancePercent", "InvalidParameter"),
    ({"properties__upgradePolicy__rollingUpgradePolicy": {"maxBatchInstancePercent": 50}},
     "$.properties.upgradePolicy.rollingUpgradePolicy.maxBatchInstancePercent", "InvalidParameter"),
    ({"properties__upgradePolicy__rollingUpgradePolicy": {"maxUnhealthyUpgradedInstancePercent": 101}},
     "$.properties.upgradePolicy.rollingUpgradePolicy.maxUnhealthyUpgradedInstancePercent", "InvalidParameter"),
    ({"properties__upgradePolicy__rollingUpgradePolicy": {"pauseTimeBetweenBatches": "5 minutes"}},
     "$.properties.upgradePolicy.rollingUpgradePolicy.pauseTimeBetweenBatches", "InvalidParameter"),
    ({"properties__upgradePolicy__mode": "Sometimes"}, "$.properties.upgradePolicy.mode", "InvalidParameter"),
    ({"properties__colour": "blue"}, "$.properties.colour", "InvalidParameter"),
    ({"sku__capacity": "five"}, "$.sku.capacity", "InvalidParameter"),  # "5" is 5, as ARM reads it
    ({"properties__labSettings__healthWaitTimeout": "5m"}, "$.properties.labSettings.healthWaitTimeout",
     "InvalidParameter"),
    # a trailing newline is not a name (re.match with $ accepted it)
    ({"name": "web\n"}, "$.name", "InvalidParameter"),
    ({f"{VMP}__osProfile__computerNamePrefix": "web\n"}, f"{VMP_PATH}.osProfile.computerNamePrefix",
     "InvalidParameter"),
    ({f"{VMP}__storageProfile__imageReference__version": "1.0.0\n"},
     f"{VMP_PATH}.storageProfile.imageReference.version", "InvalidParameter"),
    ({f"{VMP}__networkProfile__healthProbe__requestPath": "@127.0.0.1:9/x"},
     f"{VMP_PATH}.networkProfile.healthProbe.requestPath", "InvalidParameter"),
    ({f"{VMP}__networkProfile__healthProbe__numberOfProbes": -1},
     f"{VMP_PATH}.networkProfile.healthProbe.numberOfProbes", "InvalidParameter"),
    ({f"{VMP}__storageProfile__osDisk": {"diskSizeGB": 0}}, f"{VMP_PATH}.storageProfile.osDisk.diskSizeGB",
     "InvalidParameter"),
    ({f"{VMP}__osProfile__customData": "not base64!"}, f"{VMP_PATH}.osProfile.customData", "InvalidParameter"),
    ({"location": "east us"}, "$.location", "InvalidParameter"),
])
def test_bad_documents_name_the_field(changes, path, code):
    with pytest.raises(ModelError) as err:
        parse(doc(**changes))
    assert err.value.path == path and err.value.code == code, str(err.value)


def test_automatic_upgrade_needs_latest_and_exactly_one_health_source():
    auto = {"enableAutomaticOSUpgrade": True}
    ok = doc(properties__upgradePolicy__automaticOSUpgradePolicy=auto)
    assert parse(ok).properties.upgradePolicy.automaticOSUpgradePolicy.enableAutomaticOSUpgrade
    pinned = doc(properties__upgradePolicy__automaticOSUpgradePolicy=auto,
                 **{f"{VMP}__storageProfile__imageReference__version": "1.0.0"})
    with pytest.raises(ModelError) as err:
        parse(pinned)
    assert err.value.code == "AutomaticOSUpgradeRequiresLatestVersion"
    blind = doc(properties__upgradePolicy__automaticOSUpgradePolicy=auto, **{f"{VMP}__networkProfile": {}})
    with pytest.raises(ModelError) as err:
        parse(blind)
    assert err.value.code == "AutomaticOSUpgradeRequiresHealthSource"
    both = doc(**{f"{VMP}__extensionProfile": {"extensions": [{"name": "health", "properties": {
        "publisher": "Microsoft.ManagedServices", "type": "ApplicationHealthLinux",
        "settings": {"protocol": "http", "port": 80, "requestPath": "/"}}}]}})
    with pytest.raises(ModelError) as err:
        parse(both)
    assert err.value.code == "MultipleHealthSourcesNotAllowed"


def _ext(name, after=()):
    return {"name": name, "properties": {"publisher": "Microsoft.Azure.Extensions", "type": "CustomScript",
                                         "settings": {"commandToExecute": "true"},
                                         "provisionAfterExtensions": list(after)}}


def test_extension_order_errors():
    cycle = doc(**{f"{VMP}__extensionProfile": {"extensions": [_ext("a", ["c"]), _ext("b", ["a"]),
                                                                  _ext("c", ["b"])]}})
    with pytest.raises(ModelError, match="cycle"):
        parse(cycle)
    unknown = doc(**{f"{VMP}__extensionProfile": {"extensions": [_ext("a", ["zzz"])]}})
    with pytest.raises(ModelError) as err:
        parse(unknown)
    assert err.value.path.endswith("extensions[0].properties.provisionAfterExtensions[0]")
    dup = doc(**{f"{VMP}__extensionProfile": {"extensions": [_ext("a"), _ext("a")]}})
    with pytest.raises(ModelError, match="duplicate"):
        parse(dup)
    dag = doc(**{f"{VMP}__extensionProfile": {"extensions": [_ext("d", ["b", "c"]), _ext("b", ["a"]),
                                                                _ext("c", ["a"]), _ext("a")]}})
    assert len(parse(dag).properties.virtualMachineProfile.extensionProfile.extensions) == 4


def test_extension_types_and_settings_are_checked():
    odd = _ext("a")
    odd["properties"]["type"] = "DockerExtension"
    with pytest.raises(ModelError) as err:
        parse(doc(**{f"{VMP}__extensionProfile": {"extensions": [odd]}}))
    assert err.value.path.endswith("extensions[0].properties.type") and err.value.code == "VMExtensionHandlerNotFound"
    empty = _ext("a")
    empty["properties"]["settings"] = {}
    with pytest.raises(ModelError, match="commandToExecute or script"):
        parse(doc(**{f"{VMP}__extensionProfile": {"extensions": [empty]}}))
    hidden = _ext("a")
    hidden["properties"]["settings"] = {}
    hidden["properties"]["protectedSettings"] = {"commandToExecute": "secret stuff"}
    parse(doc(**{f"{VMP}__extensionProfile": {"extensions": [hidden]}}))
    raw = {"name": "cc", "properties": {"publisher": "ScaleSetLab", "type": "CloudConfig", "settings": {}}}
    with pytest.raises(ModelError, match="cloudConfig"):
        parse(doc(**{f"{VMP}__extensionProfile": {"extensions": [raw]}}))


def test_durations():
    assert parse_duration("PT5M", "x") == 300 and parse_duration("PT1H30M", "x") == 5400
    for bad in ("PT", "P", "5M", "PT5X", 300):
        with pytest.raises(ModelError):
            parse_duration(bad, "x")


def test_custom_data_errors_never_echo_the_value():
    secret = "c2VjcmV0" + "!" + "password=hunter2"
    with pytest.raises(ModelError) as err:
        parse(doc(**{f"{VMP}__osProfile__customData": secret}))
    assert err.value.path == f"{VMP_PATH}.osProfile.customData" and "hunter2" not in str(err.value)
    assert parse(doc(**{f"{VMP}__osProfile__customData": "I2Nsb3VkLWNvbmZpZwo="})).properties \
        .virtualMachineProfile.osProfile.customData == "I2Nsb3VkLWNvbmZpZwo="


@pytest.mark.parametrize("settings, key", [
    ({"protocol": "http", "port": 0}, "port"),
    ({"protocol": "http", "requestPath": "@127.0.0.1:1/x"}, "requestPath"),
    ({"protocol": "ftp"}, "protocol"),
    ({"protocol": "http", "numberOfProbes": 99}, "numberOfProbes"),
    ({"protocol": "http", "colour": "blue"}, "colour"),
])
def test_health_extension_settings_are_checked_when_the_model_is_written(settings, key):
    """They were checked only in the guest, after the model was stored and the instances booted."""
    ext = {"name": "health", "properties": {"publisher": "Microsoft.ManagedServices",
                                            "type": "ApplicationHealthLinux", "settings": settings}}
    with pytest.raises(ModelError) as err:
        parse(doc(**{f"{VMP}__networkProfile": {}, f"{VMP}__extensionProfile": {"extensions": [ext]}}))
    assert err.value.path == f"{VMP_PATH}.extensionProfile.extensions[0].properties.settings.{key}"


def test_deep_documents_are_a_model_error_not_a_recursion_error():
    deep: object = 1
    for _ in range(100_000):
        deep = {"x": deep}
    with pytest.raises(ModelError, match="nested deeper"):
        parse(doc(**{f"{VMP}__extensionProfile": {"extensions": [
            {**_ext("a"), "properties": {**_ext("a")["properties"], "protectedSettings": deep}}]}}))
    with pytest.raises(ModelError):
        parse(deep)


def test_names_and_versions_match_whole_strings():
    """`re.match(r"...$")` let a trailing newline through; every check is a fullmatch now."""
    from agent.settings import request_path_problem
    from controller.core.errors import ImageError
    from controller.model.versions import parse_version
    from images import recipe
    from images.gallery import check_name
    for call in (lambda: parse_version("1.0.0\n"), lambda: check_name("publisher", "p\n"),
                 lambda: recipe.load("debian-12\n")):
        with pytest.raises(ImageError):
            call()
    assert parse_version("1.0.0") == (1, 0, 0) and check_name("publisher", "p") == "p"
    assert request_path_problem("/health\n") and request_path_problem("/health") is None
