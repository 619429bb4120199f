"""The scale-set model: the ARM VMSS resource shape, typed, validated on every write."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from controller.core.errors import ImageError
from controller.model.versions import LATEST, parse_version

from controller.model.jsonmap import from_json, parse_duration, to_json

from controller.core.errors import ModelError

HEALTH_EXTENSION = ("Microsoft.ManagedServices", "ApplicationHealthLinux")
CUSTOM_SCRIPT = ("Microsoft.Azure.Extensions", "CustomScript")
CLOUD_CONFIG = ("ScaleSetLab", "CloudConfig")  # lab: raw cloud-init modules, settings.cloudConfig
EXTENSION_TYPES = (CUSTOM_SCRIPT, HEALTH_EXTENSION, CLOUD_CONFIG)
UPGRADE_MODES = ("Automatic", "Manual", "Rolling")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}[A-Za-z0-9_]$|^[A-Za-z0-9]$")
_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,8}$")
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_RESERVED_USERS = {"root", "admin", "administrator", "daemon", "bin", "sys", "nobody", "sshd"}


@dataclass
class Sku:
    name: str = "Lab_2vCPU_512MiB"
    capacity: int = 2
    tier: str | None = None


@dataclass
class ImageReference:
    publisher: str
    offer: str
    sku: str
    version: str = LATEST


@dataclass
class OsDisk:
    createOption: str = "FromImage"
    caching: str = "ReadWrite"
    diskSizeGB: int | None = None


@dataclass
class DataDisk:
    lun: int
    diskSizeGB: int
    createOption: str = "Empty"
    caching: str = "None"


@dataclass
class StorageProfile:
    imageReference: ImageReference
    osDisk: OsDisk = field(default_factory=OsDisk)
    dataDisks: list[DataDisk] = field(default_factory=list)


@dataclass
class SshPublicKey:
    keyData: str
    path: str | None = None


@dataclass
class SshConfiguration:
    publicKeys: list[SshPublicKey] = field(default_factory=list)


@dataclass
class LinuxConfiguration:
    disablePasswordAuthentication: bool = True
    ssh: SshConfiguration = field(default_factory=SshConfiguration)


@dataclass
class OsProfile:
    computerNamePrefix: str
    adminUsername: str = "azureuser"
    customData: str | None = None  # base64, as in ARM
    linuxConfiguration: LinuxConfiguration = field(default_factory=LinuxConfiguration)


@dataclass
class ExtensionProperties:
    publisher: str
    type: str
    typeHandlerVersion: str = "1.0"
    autoUpgradeMinorVersion: bool = True
    settings: dict[str, Any] = field(default_factory=dict)
    protectedSettings: dict[str, Any] | None = None
    provisionAfterExtensions: list[str] = field(default_factory=list)


@dataclass
class Extension:
    name: str
    properties: ExtensionProperties


@dataclass
class ExtensionProfile:
    extensions: list[Extension] = field(default_factory=list)


@dataclass
class HealthProbe:
    """Lab: the load balancer's probe, run by the controller on the host."""
    protocol: str = "Http"
    port: int = 80
    requestPath: str | None = "/"
    intervalInSeconds: int = 15
    numberOfProbes: int = 2


@dataclass
class NetworkProfile:
    healthProbe: HealthProbe | None = None


@dataclass
class VirtualMachineProfile:
    storageProfile: StorageProfile
    osProfile: OsProfile
    extensionProfile: ExtensionProfile = field(default_factory=ExtensionProfile)
    networkProfile: NetworkProfile = field(default_factory=NetworkProfile)


@dataclass
class RollingUpgradePolicy:
    maxBatchInstancePercent: int = 20
    maxUnhealthyInstancePercent: int = 20
    maxUnhealthyUpgradedInstancePercent: int = 20
    pauseTimeBetweenBatches: str = "PT0S"
    prioritizeUnhealthyInstances: bool = False
    rollbackFailedInstancesOnPolicyBreach: bool = False
    maxSurge: bool = False


@dataclass
class AutomaticOSUpgradePolicy:
    enableAutomaticOSUpgrade: bool = False
    disableAutomaticRollback: bool = False
    useRollingUpgradePolicy: bool = False


@dataclass
class UpgradePolicy:
    mode: str = "Manual"
    rollingUpgradePolicy: RollingUpgradePolicy = field(default_factory=RollingUpgradePolicy)
    automaticOSUpgradePolicy: AutomaticOSUpgradePolicy = field(default_factory=AutomaticOSUpgradePolicy)


@dataclass
class LabSettings:
    """What only the lab has."""
    healthWaitTimeout: str = "PT5M"
    autoUpgradeDelay: str = "PT30S"
    vcpus: int = 2
    memoryMiB: int = 512
    network: str = "user"  # "user" (127.0.0.1 forwards) or "nat" (a libvirt NAT network)


@dataclass
class Properties:
    virtualMachineProfile: VirtualMachineProfile
    upgradePolicy: UpgradePolicy = field(default_factory=UpgradePolicy)
    labSettings: LabSettings = field(default_factory=LabSettings)
    provisioningState: str | None = None
    uniqueId: str | None = None


@dataclass
class ScaleSet:
    name: str
    properties: Properties
    location: str = "local"
    sku: Sku = field(default_factory=Sku)
    type: str = "Microsoft.Compute/virtualMachineScaleSets"
    id: str | None = None

    def health_extension(self) -> Extension | None:
        for ext in self.properties.virtualMachineProfile.extensionProfile.extensions:
            if (ext.properties.publisher, ext.properties.type) == HEALTH_EXTENSION:
                return ext
        return None

    def to_json(self) -> dict:
        return to_json(self)


def parse(data: Any) -> ScaleSet:
    """Parse and validate a scale-set document; raises ModelError naming the field."""
    ss = from_json(ScaleSet, data, "$")
    validate(ss)
    return ss


def _range(value: int, lo: int, hi: int, path: str) -> None:
    if not lo <= value <= hi:
        raise ModelError(path, f"{value} is out of range ({lo}..{hi})")


def _validate_rolling(p: RollingUpgradePolicy, path: str) -> None:
    for name in ("maxBatchInstancePercent", "maxUnhealthyInstancePercent", "maxUnhealthyUpgradedInstancePercent"):
        _range(getattr(p, name), 5, 100, f"{path}.{name}")
    if p.maxBatchInstancePercent > p.maxUnhealthyInstancePercent:
        raise ModelError(f"{path}.maxBatchInstancePercent",
                         f"{p.maxBatchInstancePercent} exceeds maxUnhealthyInstancePercent "
                         f"({p.maxUnhealthyInstancePercent})")
    parse_duration(p.pauseTimeBetweenBatches, f"{path}.pauseTimeBetweenBatches")


def _validate_extension_type(ext: Extension, path: str) -> None:
    kind = (ext.properties.publisher, ext.properties.type)
    if kind not in EXTENSION_TYPES:
        known = ", ".join(f"{p}.{t}" for p, t in EXTENSION_TYPES)
        raise ModelError(f"{path}.type", f"unknown extension type '{kind[0]}.{kind[1]}' (known: {known})",
                         "VMExtensionHandlerNotFound")
    if kind == CUSTOM_SCRIPT:
        merged = {**ext.properties.settings, **(ext.properties.protectedSettings or {})}
        if not merged.get("commandToExecute") and not merged.get("script"):
            raise ModelError(f"{path}.settings", "CustomScript needs commandToExecute or script "
                                                 "(in settings or protectedSettings)")
        uris = merged.get("fileUris", [])
        if not isinstance(uris, list) or not all(isinstance(u, str) for u in uris):
            raise ModelError(f"{path}.settings.fileUris", "must be a list of URLs")
    if kind == CLOUD_CONFIG and not isinstance(ext.properties.settings.get("cloudConfig"), str):
        raise ModelError(f"{path}.settings.cloudConfig", "must be the text of a #cloud-config document")


def _validate_extensions(exts: list[Extension], path: str) -> None:
    names: dict[str, int] = {}
    for i, ext in enumerate(exts):
        if not ext.name or not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", ext.name):
            raise ModelError(f"{path}[{i}].name", f"'{ext.name}' is not a valid extension name")
        if ext.name in names:
            raise ModelError(f"{path}[{i}].name", f"duplicate extension name '{ext.name}'")
        names[ext.name] = i
    for i, ext in enumerate(exts):
        _validate_extension_type(ext, f"{path}[{i}].properties")
    health = [i for i, e in enumerate(exts) if (e.properties.publisher, e.properties.type) == HEALTH_EXTENSION]
    if len(health) > 1:
        raise ModelError(f"{path}[{health[1]}]", "only one ApplicationHealthLinux extension is allowed")
    graph = {e.name: e.properties.provisionAfterExtensions for e in exts}
    for i, ext in enumerate(exts):
        for j, dep in enumerate(ext.properties.provisionAfterExtensions):
            if dep not in names:
                raise ModelError(f"{path}[{i}].properties.provisionAfterExtensions[{j}]",
                                 f"names an unknown extension '{dep}'")
    state: dict[str, int] = {}

    def visit(n: str, trail: list[str]) -> None:
        if state.get(n) == 2:
            return
        if state.get(n) == 1:
            cycle = " -> ".join(trail[trail.index(n):] + [n])
            raise ModelError(f"{path}[{names[n]}].properties.provisionAfterExtensions",
                             f"dependency cycle: {cycle}")
        state[n] = 1
        for d in graph[n]:
            visit(d, trail + [n])
        state[n] = 2

    for n in graph:
        visit(n, [])


def validate(ss: ScaleSet) -> None:
    if not _NAME.match(ss.name or ""):
        raise ModelError("$.name", f"'{ss.name}' is not a valid scale-set name: 1-64 letters, digits, '.', "
                                   "'-' or '_', starting with a letter or digit", "InvalidResourceName")
    if ss.sku.capacity < 0:
        raise ModelError("$.sku.capacity", f"{ss.sku.capacity} is negative")
    _range(ss.sku.capacity, 0, 1000, "$.sku.capacity")
    props = ss.properties
    vmp = props.virtualMachineProfile
    ref = vmp.storageProfile.imageReference
    if ref.version.lower() != LATEST:
        try:
            parse_version(ref.version)
        except ImageError as exc:
            raise ModelError("$.properties.virtualMachineProfile.storageProfile.imageReference.version",
                             exc.reason, "InvalidImageVersion") from None
    luns: set[int] = set()
    for i, d in enumerate(vmp.storageProfile.dataDisks):
        p = f"$.properties.virtualMachineProfile.storageProfile.dataDisks[{i}]"
        _range(d.lun, 0, 63, f"{p}.lun")
        if d.lun in luns:
            raise ModelError(f"{p}.lun", f"duplicate LUN {d.lun}", "DuplicateLun")
        luns.add(d.lun)
        _range(d.diskSizeGB, 1, 1023, f"{p}.diskSizeGB")
    osp = vmp.osProfile
    if not _PREFIX.match(osp.computerNamePrefix):
        raise ModelError("$.properties.virtualMachineProfile.osProfile.computerNamePrefix",
                         f"'{osp.computerNamePrefix}' must be 1-9 letters, digits or '-', starting with a letter")
    if not _USER.match(osp.adminUsername) or osp.adminUsername in _RESERVED_USERS:
        raise ModelError("$.properties.virtualMachineProfile.osProfile.adminUsername",
                         f"'{osp.adminUsername}' is not allowed as an admin user name")
    exts = vmp.extensionProfile.extensions
    _validate_extensions(exts, "$.properties.virtualMachineProfile.extensionProfile.extensions")
    up = props.upgradePolicy
    if up.mode not in UPGRADE_MODES:
        raise ModelError("$.properties.upgradePolicy.mode", f"'{up.mode}' is not one of {', '.join(UPGRADE_MODES)}")
    _validate_rolling(up.rollingUpgradePolicy, "$.properties.upgradePolicy.rollingUpgradePolicy")
    probe = vmp.networkProfile.healthProbe
    if probe is not None:
        pp = "$.properties.virtualMachineProfile.networkProfile.healthProbe"
        if probe.protocol.lower() not in ("http", "tcp"):
            raise ModelError(f"{pp}.protocol", f"'{probe.protocol}' is not Http or Tcp")
        _range(probe.port, 1, 65535, f"{pp}.port")
        _range(probe.intervalInSeconds, 5, 120, f"{pp}.intervalInSeconds")
    health_ext = ss.health_extension()
    if probe is not None and health_ext is not None:
        raise ModelError("$.properties.virtualMachineProfile.networkProfile.healthProbe",
                         "a scale set has one health source: remove the health probe or the "
                         "ApplicationHealthLinux extension", "MultipleHealthSourcesNotAllowed")
    auto = up.automaticOSUpgradePolicy
    if auto.enableAutomaticOSUpgrade:
        ap = "$.properties.upgradePolicy.automaticOSUpgradePolicy.enableAutomaticOSUpgrade"
        if ref.version.lower() != LATEST:
            raise ModelError(ap, "automatic OS upgrade needs imageReference.version 'latest' "
                                 f"(it is '{ref.version}')", "AutomaticOSUpgradeRequiresLatestVersion")
        if probe is None and health_ext is None:
            raise ModelError(ap, "automatic OS upgrade needs a health source: a health probe "
                                 "(networkProfile.healthProbe) or the ApplicationHealthLinux extension",
                             "AutomaticOSUpgradeRequiresHealthSource")
    ls = props.labSettings
    parse_duration(ls.healthWaitTimeout, "$.properties.labSettings.healthWaitTimeout")
    parse_duration(ls.autoUpgradeDelay, "$.properties.labSettings.autoUpgradeDelay")
    _range(ls.vcpus, 1, 16, "$.properties.labSettings.vcpus")
    _range(ls.memoryMiB, 256, 65536, "$.properties.labSettings.memoryMiB")
    if ls.network not in ("user", "nat"):
        raise ModelError("$.properties.labSettings.network", f"'{ls.network}' is not user or nat")
