"""The scale-set model: the ARM VMSS resource shape, typed, validated on every write."""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from controller.model.checks import UPGRADE_MODES, validate  # noqa: F401 (re-exported)
from controller.model.extcheck import (  # noqa: F401
    CLOUD_CONFIG,
    CUSTOM_SCRIPT,
    EXTENSION_TYPES,
    HEALTH_EXTENSION,
    shown,
)
from controller.core.errors import ModelError
from controller.model import password
from controller.model.armid import SUBSCRIPTION_ID
from controller.model.compat import current_shape
from controller.model.jsonmap import from_json, to_json
from controller.model.versions import LATEST


@dataclass
class Sku:
    name: str = "Lab_2vCPU_512MiB"
    capacity: int = 2
    tier: str | None = None


@dataclass
class ImageReference:
    """A URN's parts, or `id`: a lab gallery image or version (read_image_id)."""
    publisher: str = ""
    offer: str = ""  # with `id`: the gallery's offer of (publisher, sku), filled in by Lab.resolve_image
    sku: str = ""
    version: str = LATEST
    id: str | None = None


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
    adminPassword: str | None = None  # input only: parse() keeps its hash instead, never the password
    adminPasswordHash: str | None = None  # lab: its salted SHA-512 crypt hash (cloud-init's hashed_passwd)
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


# Never returned, printed or logged (views.redact, api.bodies.without_secrets, rehearse.scrub)
SECRETS = ("protectedSettings", "adminPassword", "adminPasswordHash")


def _password_hashed(ss: ScaleSet) -> ScaleSet:
    """adminPassword replaced by its hash: the one already there when it is that password's (an
    unchanged redeploy changes nothing), else a new one; no hash when passwords are disabled."""
    vmp = ss.properties.virtualMachineProfile
    osp = vmp.osProfile
    if osp.linuxConfiguration.disablePasswordAuthentication:
        kept = None
    elif osp.adminPassword is None or password.matches(osp.adminPassword, osp.adminPasswordHash):
        kept = osp.adminPasswordHash
    else:
        kept = password.hashed(osp.adminPassword)
    if (osp.adminPassword, osp.adminPasswordHash) == (None, kept):
        return ss
    osp = dataclasses.replace(osp, adminPassword=None, adminPasswordHash=kept)
    vmp = dataclasses.replace(vmp, osProfile=osp)
    return dataclasses.replace(ss, properties=dataclasses.replace(ss.properties, virtualMachineProfile=vmp))


IMAGE_ID = "$.properties.virtualMachineProfile.storageProfile.imageReference.id"
_NAME = r"([A-Za-z0-9][A-Za-z0-9._-]{0,79})"
_GALLERY_ID = re.compile(rf"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/[^/]{{1,90}}/providers/Microsoft\.Compute/"
                         rf"galleries/{_NAME}/images/{_NAME}(?:/versions/([0-9.]{{1,40}}))?", re.IGNORECASE)


def read_image_id(ref: ImageReference) -> None:
    """An `id` (`.../galleries/{publisher}/images/{sku}[/versions/{version}]`, as the gallery
    API names them; no version: latest) sets publisher, sku and version, in place; the id wins
    over the URN parts. Parts already naming that image (any case) keep their spelling and offer."""
    if ref.id is None:
        return
    m = _GALLERY_ID.fullmatch(ref.id)
    if m is None:
        raise ModelError(IMAGE_ID, f"'{shown(ref.id)}' is not the id of a lab gallery image or version "
                                   f"(/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{{group}}/providers/"
                                   "Microsoft.Compute/galleries/{publisher}/images/{sku}[/versions/{version}])",
                         "InvalidParameter")
    publisher, sku, version = m.groups()
    if (ref.publisher.lower(), ref.sku.lower()) != (publisher.lower(), sku.lower()):
        ref.publisher, ref.offer, ref.sku = publisher, "", sku
    ref.version = version or LATEST


def parse(data: Any) -> ScaleSet:
    """Parse and validate a scale-set document (read as ARM reads it: compat.current_shape, strings
    for numbers and booleans); raises ModelError naming the field, nothing else. An adminPassword
    comes out as its hash (adminPasswordHash): the model never holds the password."""
    ss = from_json(ScaleSet, current_shape(data), "$")
    read_image_id(ss.properties.virtualMachineProfile.storageProfile.imageReference)
    validate(ss)
    return _password_hashed(ss)
