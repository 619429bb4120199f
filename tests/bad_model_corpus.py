"""The bad scale-set models of tests/test_bad_inputs.py: a valid model, mutated at one path each,
with the field the error must name."""
from __future__ import annotations

import base64
import copy
import json

import pytest

P, O, S = "scaleset-lab", "debian", "debian-12"
VMP = "$.properties.virtualMachineProfile"
EXT = f"{VMP}.extensionProfile.extensions"
DELETE = object()
_BLOB = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + bytes(range(32))
KEY = "ssh-ed25519 " + base64.b64encode(_BLOB).decode() + " me@lab"
TOKEN = "s3cret-token-never-printed"

VALID = {
    "name": "fresh", "location": "local", "sku": {"name": "Lab_2vCPU_512MiB", "capacity": 0},
    "properties": {
        "upgradePolicy": {"mode": "Rolling",
                          "rollingUpgradePolicy": {"maxBatchInstancePercent": 20, "maxUnhealthyInstancePercent": 20,
                                                   "pauseTimeBetweenBatches": "PT0S"},
                          "automaticOSUpgradePolicy": {"enableAutomaticOSUpgrade": False}},
        "labSettings": {"vcpus": 1, "memoryMiB": 512, "network": "user", "healthWaitTimeout": "PT5M"},
        "virtualMachineProfile": {
            "storageProfile": {
                "imageReference": {"publisher": P, "offer": O, "sku": S, "version": "latest"},
                "osDisk": {"createOption": "FromImage", "caching": "ReadWrite", "diskSizeGB": 4},
                "dataDisks": [{"lun": 0, "diskSizeGB": 1, "createOption": "Empty", "caching": "None"}]},
            "osProfile": {
                "computerNamePrefix": "fresh", "adminUsername": "azureuser",
                "customData": base64.b64encode(b"#cloud-config\n").decode(),
                "linuxConfiguration": {"disablePasswordAuthentication": True, "ssh": {"publicKeys": [
                    {"keyData": KEY, "path": "/home/azureuser/.ssh/authorized_keys"}]}}},
            "networkProfile": {"healthProbe": {"protocol": "Http", "port": 80, "requestPath": "/health",
                                               "intervalInSeconds": 5, "numberOfProbes": 2}},
            "extensionProfile": {"extensions": [
                {"name": "setup", "properties": {
                    "publisher": "Microsoft.Azure.Extensions", "type": "CustomScript", "typeHandlerVersion": "2.1",
                    "settings": {"commandToExecute": "echo hi", "fileUris": ["http://10.0.2.2:8080/f?t=1"]},
                    "protectedSettings": {"token": TOKEN}}},
                {"name": "cc", "properties": {
                    "publisher": "ScaleSetLab", "type": "CloudConfig",
                    "settings": {"cloudConfig": "#cloud-config\nruncmd: [true]\n"},
                    "provisionAfterExtensions": ["setup"]}}]}}}}
HEALTH_EXT = {"name": "health", "properties": {"publisher": "Microsoft.ManagedServices",
                                               "type": "ApplicationHealthLinux", "typeHandlerVersion": "1.0",
                                               "settings": {"protocol": "http", "port": 8080, "requestPath": "/"}}}


def _steps(path: str) -> list:
    out: list = []
    for seg in path.split("."):
        name, *idx = seg.replace("]", "").split("[")
        out += [name] + [int(i) for i in idx]
    return out


def mutate(doc: dict, path: str, value) -> dict:
    """A copy of `doc` with `path` (a.b[0].c; ~ for properties.virtualMachineProfile) set or deleted."""
    doc = copy.deepcopy(doc)
    steps = _steps(path.replace("~", "properties.virtualMachineProfile"))
    node = doc
    for s in steps[:-1]:
        node = node[s] if isinstance(s, int) or s in node else node.setdefault(s, {})
    if value is DELETE:
        del node[steps[-1]]
    else:
        node[steps[-1]] = value
    return doc


def health_model() -> dict:
    doc = mutate(VALID, "~.networkProfile", {})
    doc["properties"]["virtualMachineProfile"]["extensionProfile"]["extensions"].append(copy.deepcopy(HEALTH_EXT))
    return doc


def nested(depth: int) -> object:
    v: object = 1
    for _ in range(depth):
        v = [v]
    return v


def chain(n: int) -> list:
    return [{"name": f"e{i}", "properties": {"publisher": "Microsoft.Azure.Extensions", "type": "CustomScript",
                                             "settings": {"commandToExecute": "true"},
                                             "provisionAfterExtensions": [f"e{i - 1}"] if i else []}}
            for i in range(n)]


# (path, value, field the message must name; None: "$." + path)
MODEL = [
    ("name", "web\n", "$.name"), ("name", "-web", None), ("name", "web-", None), ("name", "", None),
    ("name", "a" * 65, None), ("name", "wéb", None), ("name", "we b", None), ("name", 5, None),
    ("name", None, None), ("name", "w\x00b", None), ("name", "w\u202eb", None), ("name", DELETE, None),
    ("location", "local\n", None), ("location", "", None), ("location", "east us", None), ("location", 5, None),
    ("location", "a" * 81, None), ("location", "../x", None),
    ("type", "Microsoft.Compute/virtualMachines", None), ("type", 5, None),
    ("tags", {}, None), ("Name", "web", None), ("id", "x" * 2000, None), ("id", 5, None),
    ("sku", "big", None), ("sku.capacity", -1, None), ("sku.capacity", 1001, None), ("sku.capacity", "five", None), ("sku.capacity", "1e3", None),
    ("sku.capacity", 1.5, None), ("sku.capacity", True, None), ("sku.capacity", None, None),
    ("sku.capacity", 10**30, None), ("sku.name", "a b", None), ("sku.name", "x\n", None), ("sku.name", "", None),
    ("sku.tier", "Premium", None), ("sku.tier", 5, None), ("sku.size", 1, None),
    ("sku.tier", "Basic", None),  # the lab has one tier
    ("properties", DELETE, None), ("properties", [], None), ("properties.colour", "blue", None),
    ("properties.provisioningState", 7, None),
    ("properties.upgradePolicy.mode", "Sometimes", None), ("properties.upgradePolicy.mode", "Rolling\n", None),
    ("properties.upgradePolicy.mode", "", None), ("properties.upgradePolicy.mode", 5, None),
    ("properties.upgradePolicy.rollingUpgradePolicy.maxBatchInstancePercent", 4, None),
    ("properties.upgradePolicy.rollingUpgradePolicy.maxBatchInstancePercent", 101, None),
    ("properties.upgradePolicy.rollingUpgradePolicy.maxBatchInstancePercent", -5, None),
    ("properties.upgradePolicy.rollingUpgradePolicy.maxBatchInstancePercent", "20%", None),
    ("properties.upgradePolicy.rollingUpgradePolicy.maxBatchInstancePercent", "4", None),
    ("properties.upgradePolicy.rollingUpgradePolicy.maxUnhealthyUpgradedInstancePercent", -1, None),
    ("properties.upgradePolicy.rollingUpgradePolicy.maxUnhealthyUpgradedInstancePercent", "101", None),
    ("properties.upgradePolicy.rollingUpgradePolicy.maxBatchInstancePercent", 50, None),
    ("properties.upgradePolicy.rollingUpgradePolicy.maxUnhealthyInstancePercent", 0, None),
    ("properties.upgradePolicy.rollingUpgradePolicy.maxUnhealthyUpgradedInstancePercent", 200, None),
    ("properties.upgradePolicy.rollingUpgradePolicy.pauseTimeBetweenBatches", "5m", None),
    ("properties.upgradePolicy.rollingUpgradePolicy.pauseTimeBetweenBatches", "PT5M\n", None),
    ("properties.upgradePolicy.rollingUpgradePolicy.pauseTimeBetweenBatches", "P99999D", None),
    ("properties.upgradePolicy.rollingUpgradePolicy.pauseTimeBetweenBatches", "PT", None),
    ("properties.upgradePolicy.rollingUpgradePolicy.pauseTimeBetweenBatches", "PT٣S", None),
    ("properties.upgradePolicy.rollingUpgradePolicy.pauseTimeBetweenBatches", "P" + "9" * 5000 + "D", None),
    ("properties.upgradePolicy.rollingUpgradePolicy.prioritizeUnhealthyInstances", "yes", None),
    ("properties.upgradePolicy.rollingUpgradePolicy.maxSurge", "1", None),
    ("properties.upgradePolicy.rollingUpgradePolicy.batchSize", 3, None),
    ("properties.upgradePolicy.automaticOSUpgradePolicy.enableAutomaticOSUpgrade", "on", None),
    ("properties.upgradePolicy.automaticOSUpgrade", "sometimes", None),  # 2017-12-01's shape
    ("properties.upgradePolicy.autoOSUpgradePolicy", True, None),
    ("properties.upgradePolicy.autoOSUpgradePolicy.disableAutoRollback", "no", None),
    ("properties.upgradePolicy.automaticOSUpgradePolicy.enableAutomaticOSUpgrade", 1, None),
    ("properties.upgradePolicy.automaticOSUpgradePolicy.enabled", True, None),
    ("~.storageProfile.imageReference.publisher", "bad name", None),
    ("~.storageProfile.imageReference.publisher", P + "\n", None),
    ("~.storageProfile.imageReference.publisher", DELETE, None),
    ("~.storageProfile.imageReference.offer", "", None), ("~.storageProfile.imageReference.offer", 5, None),
    ("~.storageProfile.imageReference.sku", "../x", None),
    ("~.storageProfile.imageReference.version", "1.0", None),
    ("~.storageProfile.imageReference.version", "1.0.0\n", None),
    ("~.storageProfile.imageReference.version", "01.0.0", None),
    ("~.storageProfile.imageReference.version", "1.0.0.0", None),
    ("~.storageProfile.imageReference.version", "latest\n", None),
    ("~.storageProfile.imageReference.version", "99999999999.0.0", None),
    ("~.storageProfile.imageReference.version", 1, None),
    ("~.storageProfile.imageReference", f"{P}:{O}:{S}:latest", None),
    ("~.storageProfile.osDisk.diskSizeGB", -1, None), ("~.storageProfile.osDisk.diskSizeGB", 0, None),
    ("~.storageProfile.osDisk.diskSizeGB", 5000, None), ("~.storageProfile.osDisk.diskSizeGB", "30.5", None),
    ("~.storageProfile.osDisk.caching", "Sometimes", None), ("~.storageProfile.osDisk.createOption", "Attach", None),
    ("~.storageProfile.osDisk.vhd", {}, None),
    ("~.storageProfile.dataDisks[0].lun", -1, None), ("~.storageProfile.dataDisks[0].lun", 64, None),
    ("~.storageProfile.dataDisks", [{"lun": 3, "diskSizeGB": 1}, {"lun": 3, "diskSizeGB": 1}],
     f"{VMP}.storageProfile.dataDisks[1].lun"),
    ("~.storageProfile.dataDisks[0].diskSizeGB", 0, None), ("~.storageProfile.dataDisks[0].diskSizeGB", 1024, None),
    ("~.storageProfile.dataDisks[0].diskSizeGB", None, None),
    ("~.storageProfile.dataDisks[0].createOption", "FromImage", None),
    ("~.storageProfile.dataDisks[0].caching", "x", None), ("~.storageProfile.dataDisks", {}, None),
    ("~.storageProfile.dataDisks", [5], f"{VMP}.storageProfile.dataDisks[0]"),
    ("~.storageProfile.dataDisks[0].lun", DELETE, None),
    ("~.osProfile.computerNamePrefix", "1web", None), ("~.osProfile.computerNamePrefix", "web\n", None),
    ("~.osProfile.computerNamePrefix", "toolongprefix", None), ("~.osProfile.computerNamePrefix", "", None),
    ("~.osProfile.computerNamePrefix", "we_b", None),
    ("~.osProfile.adminUsername", "root", None), ("~.osProfile.adminUsername", "Admin", None),
    ("~.osProfile.adminUsername", "azureuser\n", None), ("~.osProfile.adminUsername", "a b", None),
    ("~.osProfile.adminUsername", "", None), ("~.osProfile.adminUsername", "x" * 33, None),
    ("~.osProfile.adminPassword", "hunter2", None),
    ("~.osProfile.customData", "not base64!", None), ("~.osProfile.customData", "YWJj\n", None),
    ("~.osProfile.customData", "YWJ", None), ("~.osProfile.customData", "QQ==" * 30000, None),
    ("~.osProfile.customData", 5, None), ("~.osProfile.customData", "Y W J j", None),
    ("~.osProfile.linuxConfiguration.disablePasswordAuthentication", False, f"{VMP}.osProfile.adminPassword"),
    ("~.osProfile", {"computerNamePrefix": "fresh", "adminPassword": "password"}, f"{VMP}.osProfile.adminPassword"),
    ("~.osProfile", {"computerNamePrefix": "fresh", "adminPassword": "Password1"}, f"{VMP}.osProfile.adminPassword"),
    ("~.osProfile", {"computerNamePrefix": "fresh", "adminPassword": "Ab1!" * 19}, f"{VMP}.osProfile.adminPassword"),
    ("~.osProfile", {"computerNamePrefix": "fresh", "adminPassword": 123456}, f"{VMP}.osProfile.adminPassword"),
    ("~.osProfile.adminPasswordHash", "$1$md5$x", None),
    ("~.osProfile.linuxConfiguration.disablePasswordAuthentication", "ture", None),
    ("~.osProfile.linuxConfiguration.ssh.publicKeys[0].keyData", "garbage", None),
    ("~.osProfile.linuxConfiguration.ssh.publicKeys[0].keyData", KEY + "\nssh-ed25519 AAAA x", None),
    ("~.osProfile.linuxConfiguration.ssh.publicKeys[0].keyData", 'command="sh" ' + KEY, None),
    ("~.osProfile.linuxConfiguration.ssh.publicKeys[0].keyData", KEY.replace("ssh-ed25519", "ssh-rsa"), None),
    ("~.osProfile.linuxConfiguration.ssh.publicKeys[0].keyData", "ssh-ed25519 ", None),
    ("~.osProfile.linuxConfiguration.ssh.publicKeys[0].path", "/root/.ssh/authorized_keys", None),
    ("~.osProfile.linuxConfiguration.ssh.publicKeys[0].path", "/home/azureuser/.ssh/authorized_keys\n", None),
    ("~.osProfile.linuxConfiguration.ssh.publicKeys", [{"keyData": KEY}] * 33, None),
    ("~.osProfile.linuxConfiguration.ssh.publicKeys", KEY, None),
    ("~.extensionProfile.extensions[0].name", "bad name", None),
    ("~.extensionProfile.extensions[0].name", "setup\n", None),
    ("~.extensionProfile.extensions[1].name", "setup", f"{EXT}[1].name"),
    ("~.extensionProfile.extensions[0].properties.type", "DockerExtension", None),
    ("~.extensionProfile.extensions[0].properties.publisher", "Microsoft.Azure.Extensions\n", None),
    ("~.extensionProfile.extensions[0].properties.typeHandlerVersion", "2.1\n", None),
    ("~.extensionProfile.extensions[0].properties.typeHandlerVersion", "latest", None),
    ("~.extensionProfile.extensions[0].properties.typeHandlerVersion", "", None),
    ("~.extensionProfile.extensions[0].properties.typeHandlerVersion", 2.1, None),
    ("~.extensionProfile.extensions[0].properties.autoUpgradeMinorVersion", "yes", None),
    ("~.extensionProfile.extensions[0].properties.settings", "echo hi", None),
    ("~.extensionProfile.extensions[0].properties.settings", {}, f"{EXT}[0].properties.settings"),
    ("~.extensionProfile.extensions[0].properties.settings.script", "ZWNobyBoaQ==",
     f"{EXT}[0].properties.settings"),
    ("~.extensionProfile.extensions[0].properties.settings.commandToExecute", 5, None),
    ("~.extensionProfile.extensions[0].properties.settings.commandToExecute", " ", None),
    ("~.extensionProfile.extensions[0].properties.settings.commandToExecute", "a\x00b", None),
    ("~.extensionProfile.extensions[0].properties.settings.comandToExecute", "x", None),
    ("~.extensionProfile.extensions[0].properties.settings.fileUris", "http://x/y", None),
    ("~.extensionProfile.extensions[0].properties.settings.fileUris", ["ftp://x/y"],
     f"{EXT}[0].properties.settings.fileUris[0]"),
    ("~.extensionProfile.extensions[0].properties.settings.fileUris", ["http://"],
     f"{EXT}[0].properties.settings.fileUris[0]"),
    ("~.extensionProfile.extensions[0].properties.settings.fileUris", ["http://h:99999/x"],
     f"{EXT}[0].properties.settings.fileUris[0]"),
    ("~.extensionProfile.extensions[0].properties.settings.fileUris", ["http://h/a b"],
     f"{EXT}[0].properties.settings.fileUris[0]"),
    ("~.extensionProfile.extensions[0].properties.settings.fileUris", [5],
     f"{EXT}[0].properties.settings.fileUris[0]"),
    ("~.extensionProfile.extensions[0].properties.settings.timestamp", -1, None),
    ("~.extensionProfile.extensions[0].properties.settings.timestamp", "now", None),
    ("~.extensionProfile.extensions[0].properties.settings.skipDos2Unix", "yes", None),
    ("~.extensionProfile.extensions[0].properties.settings.deep", nested(100), "--model"),
    ("~.extensionProfile.extensions[0].properties.protectedSettings", TOKEN, None),
    ("~.extensionProfile.extensions[0].properties.protectedSettings", {"commandToExecute": 5},
     f"{EXT}[0].properties.protectedSettings.commandToExecute"),
    ("~.extensionProfile.extensions[0].properties.protectedSettings", {"commandToExecute": TOKEN},
     f"{EXT}[0].properties.protectedSettings.commandToExecute"),
    ("~.extensionProfile.extensions[0].properties.settings", {"script": "!" + TOKEN},
     f"{EXT}[0].properties.settings.script"),
    ("~.extensionProfile.extensions[0].properties.provisionAfterExtensions", ["cc"],
     "provisionAfterExtensions"),
    ("~.extensionProfile.extensions[0].properties.provisionAfterExtensions", ["setup"],
     "provisionAfterExtensions"),
    ("~.extensionProfile.extensions[0].properties.provisionAfterExtensions", ["nope"],
     f"{EXT}[0].properties.provisionAfterExtensions[0]"),
    ("~.extensionProfile.extensions[0].properties.provisionAfterExtensions", "cc", None),
    ("~.extensionProfile.extensions[1].properties.settings", {}, f"{EXT}[1].properties.settings.cloudConfig"),
    ("~.extensionProfile.extensions[1].properties.settings.cloudConfig", 5, None),
    ("~.extensionProfile.extensions[1].properties.settings.cloudConfig", "", None),
    ("~.extensionProfile.extensions[1].properties.settings.bootcmd", "x", None),
    ("~.extensionProfile.extensions[1].properties.protectedSettings", {"x": 1}, None),
    ("~.extensionProfile.extensions", chain(51), f"{EXT}"),
    ("~.extensionProfile.extensions", [HEALTH_EXT, {**HEALTH_EXT, "name": "h2"}], f"{EXT}[1]"),
    ("~.extensionProfile.extensions", [HEALTH_EXT], f"{VMP}.networkProfile.healthProbe"),
    ("~.networkProfile.healthProbe.protocol", "Https", None), ("~.networkProfile.healthProbe.protocol", "udp", None),
    ("~.networkProfile.healthProbe.port", 0, None), ("~.networkProfile.healthProbe.port", 65536, None),
    ("~.networkProfile.healthProbe.port", "eighty", None),
    ("~.networkProfile.healthProbe.requestPath", "@127.0.0.1:9/x", None),
    ("~.networkProfile.healthProbe.requestPath", "health", None),
    ("~.networkProfile.healthProbe.requestPath", "/a b", None),
    ("~.networkProfile.healthProbe.requestPath", "/x\n", None),
    ("~.networkProfile.healthProbe.requestPath", "/x#frag", None),
    ("~.networkProfile.healthProbe.requestPath", "/x\\y", None),
    ("~.networkProfile.healthProbe.requestPath", "/" + "a" * 3000, None),
    ("~.networkProfile.healthProbe.requestPath", "/é", None),
    ("~.networkProfile.healthProbe.requestPath", "/a@b", None),
    ("~.networkProfile.healthProbe.requestPath", "", None),
    ("~.networkProfile.healthProbe.intervalInSeconds", 4, None),
    ("~.networkProfile.healthProbe.intervalInSeconds", 121, None),
    ("~.networkProfile.healthProbe.numberOfProbes", -1, None),
    ("~.networkProfile.healthProbe.numberOfProbes", 0, None),
    ("~.networkProfile.healthProbe.numberOfProbes", 101, None),
    ("~.networkProfile.healthProbe.timeout", 5, None), ("~.networkProfile.healthProbe", [], None),
    ("properties.labSettings.vcpus", 0, None), ("properties.labSettings.vcpus", 17, None),
    ("properties.labSettings.memoryMiB", 255, None), ("properties.labSettings.memoryMiB", 70000, None),
    ("properties.labSettings.network", "bridge", None), ("properties.labSettings.network", "user\n", None),
    ("properties.labSettings.healthWaitTimeout", "5m", None),
    ("properties.labSettings.healthWaitTimeout", "P2D", None),
    ("properties.labSettings.autoUpgradeDelay", "x", None), ("properties.labSettings.gpu", True, None),
]
H = "~.extensionProfile.extensions[2].properties.settings"
HEALTH = [
    (f"{H}.protocol", "ftp", None), (f"{H}.protocol", DELETE, None), (f"{H}.port", 0, None),
    (f"{H}.port", 70000, None), (f"{H}.port", "80", None), (f"{H}.requestPath", "health", None),
    (f"{H}.requestPath", "@127.0.0.1:1/x", None), (f"{H}.requestPath", "/a b", None),
    (f"{H}.requestPath", "/x#y", None), (f"{H}.requestPath", "/" + "a" * 3000, None),
    (f"{H}.intervalInSeconds", 1, None), (f"{H}.intervalInSeconds", 61, None),
    (f"{H}.numberOfProbes", 0, None), (f"{H}.numberOfProbes", 25, None), (f"{H}.gracePeriod", -1, None),
    (f"{H}.bogus", 1, None), (f"{H}", {"protocol": "tcp", "port": 80, "requestPath": "/"}, f"{H}.requestPath"),
    (f"{H}", {"protocol": "tcp"}, f"{H}.port"),
    ("~.extensionProfile.extensions[2].properties.protectedSettings", {"k": TOKEN},
     "~.extensionProfile.extensions[2].properties.protectedSettings"),
]


def _field(path: str, field: str | None) -> str:
    return ("$." + path if field is None else field).replace("$.~", VMP).replace("~", VMP)


def _id(path: str, value) -> str:
    shown = "<deleted>" if value is DELETE else json.dumps(value)
    return f"{path.replace('~.', '')}={shown[:30]}"


MODEL_CASES = [pytest.param(mutate(VALID, p, v), _field(p, f), id=_id(p, v)) for p, v, f in MODEL] + [
    pytest.param(mutate(health_model(), p, v), _field(p, f), id="health:" + _id(p, v)) for p, v, f in HEALTH]
