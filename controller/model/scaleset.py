"""The scale-set model: the ARM VMSS resource shape, typed, validated on every write."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from controller.model.checks import UPGRADE_MODES, validate  # noqa: F401 (re-exported)
from controller.model.extcheck import (  # noqa: F401
    CLOUD_CONFIG,
    CUSTOM_SCRIPT,
    EXTENSION_TYPES,
    HEALTH_EXTENSION,
)
from controller.model.jsonmap import from_json, to_json
from controller.model.versions import LATEST


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
    requestPath: str | None = None  # Http: "/" when absent
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
    platformFaultDomainCount: int | None = None  # None: 5, or a configured region's host count if fewer


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
    """Parse and validate a scale-set document; raises ModelError naming the field, nothing else."""
    ss = from_json(ScaleSet, data, "$")
    validate(ss)
    return ss
