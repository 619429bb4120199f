"""Validation of a parsed scale set: names, ranges, enums, and the fields that end up in paths,
cloud-init documents or URLs. Each error names the JSON path; secrets and customData never print."""
from __future__ import annotations

import base64
import binascii
import re
from typing import TYPE_CHECKING

from agent.settings import request_path_problem
from controller.core.errors import ImageError, ModelError
from controller.model import password
from controller.model.extcheck import shown, validate_extensions
from controller.model.jsonmap import parse_duration
from controller.model.versions import LATEST, parse_version

if TYPE_CHECKING:
    from controller.model.scaleset import ScaleSet

VMP = "$.properties.virtualMachineProfile"
UPGRADE_MODES = ("Automatic", "Manual", "Rolling")
RESOURCE_TYPE = "Microsoft.Compute/virtualMachineScaleSets"
_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9_])?")
_GALLERY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")  # images.gallery.check_name; regions too
_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,8}")
_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
_RESERVED_USERS = {"root", "admin", "administrator", "daemon", "bin", "sys", "nobody", "sshd"}
_KEY_TYPES = ("ssh-rsa", "ssh-dss", "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
              "ecdsa-sha2-nistp521", "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com")
_KEY = re.compile(r"([a-z0-9@.-]{1,40}) ([A-Za-z0-9+/]{16,16000}={0,2})(?: [ -~]{0,1024})?")
CACHING = ("None", "ReadOnly", "ReadWrite")
MAX_CUSTOM_DATA = 65535  # bytes, decoded (Azure's limit)
MAX_KEYS = 32
MAX_DURATION = 86400.0  # the lab's limit for its waits and pauses
MAX_FAULT_DOMAINS = 5  # Azure's platformFaultDomainCount of a regional Uniform scale set: 1..5
MAX_CAPACITY = 1000  # Azure's limit of a Uniform scale set's sku.capacity


def _range(value: int, lo: int, hi: int, path: str) -> None:
    if not lo <= value <= hi:
        raise ModelError(path, f"{value} is out of range ({lo}..{hi})")


def check_capacity(value: object, path: str = "$.sku.capacity") -> int:
    """A scale set's instance count: an integer 0..1000 (never a boolean, a float, inf or a string)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ModelError(path, f"must be an integer 0..{MAX_CAPACITY}, not {type(value).__name__}")
    _range(value, 0, MAX_CAPACITY, path)
    return value


def _one_of(value: str, allowed: tuple[str, ...], path: str) -> None:
    if value.lower() not in (a.lower() for a in allowed):
        raise ModelError(path, f"'{shown(value)}' is not one of {', '.join(allowed)}")


def _name(rx: re.Pattern, value: str, path: str, what: str, code: str | None = None) -> None:
    if not rx.fullmatch(value):
        raise ModelError(path, f"'{shown(value)}' {what}", code)


def check_region_name(value: str, path: str) -> None:
    """A region (a scale set's location, `scaleset region add --name`): the gallery's name rule."""
    _name(_GALLERY_NAME, value, path, "is not a region name: 1-80 letters, digits, '.', '-' or '_'")


def _ssh_key(key: str, path: str) -> None:
    m = _KEY.fullmatch(key)
    try:
        blob = base64.b64decode(m.group(2), validate=True) if m else b""
    except (binascii.Error, ValueError):
        blob = b""
    kind = m.group(1).encode() if m else b""
    n = int.from_bytes(blob[:4], "big")
    if not m or m.group(1) not in _KEY_TYPES or blob[4:4 + n] != kind or n != len(kind):
        raise ModelError(path, "is not an OpenSSH public key line ('ssh-ed25519 AAAA... comment'; "
                               f"types: {', '.join(_KEY_TYPES)})")


def _os_profile(ss: ScaleSet) -> None:
    osp = ss.properties.virtualMachineProfile.osProfile
    p = f"{VMP}.osProfile"
    _name(_PREFIX, osp.computerNamePrefix, f"{p}.computerNamePrefix",
          "must be 1-9 letters, digits or '-', starting with a letter")
    if not _USER.fullmatch(osp.adminUsername) or osp.adminUsername in _RESERVED_USERS:
        raise ModelError(f"{p}.adminUsername", f"'{shown(osp.adminUsername)}' is not allowed as an admin user "
                                               "name: 1-32 of a-z, 0-9, '_', '-', not a system user")
    if osp.customData is not None:
        try:
            size = len(base64.b64decode(osp.customData, validate=True)) if len(osp.customData) < 4 * MAX_CUSTOM_DATA else -1
        except (binascii.Error, ValueError):
            raise ModelError(f"{p}.customData", "is not valid base64 (A-Z a-z 0-9 + / with = padding, "
                                                "no line breaks)") from None
        if not 0 <= size <= MAX_CUSTOM_DATA:
            raise ModelError(f"{p}.customData", f"is larger than {MAX_CUSTOM_DATA} bytes once decoded")
    lc = osp.linuxConfiguration
    if osp.adminPassword is not None:
        if lc.disablePasswordAuthentication:
            raise ModelError(f"{p}.adminPassword", "cannot be set when linuxConfiguration."
                                                   "disablePasswordAuthentication is true (set it false for "
                                                   "password logins)")
        password.check(osp.adminPassword, f"{p}.adminPassword")
    if osp.adminPasswordHash is not None:
        password.check_hash(osp.adminPasswordHash, f"{p}.adminPasswordHash")
    if not lc.disablePasswordAuthentication and osp.adminPassword is None and osp.adminPasswordHash is None:
        raise ModelError(f"{p}.adminPassword", "is required (null) when linuxConfiguration."
                                               "disablePasswordAuthentication is false")
    keys = lc.ssh.publicKeys
    if len(keys) > MAX_KEYS:
        raise ModelError(f"{p}.linuxConfiguration.ssh.publicKeys", f"has more than {MAX_KEYS} keys")
    home = f"/home/{osp.adminUsername}/.ssh/authorized_keys"
    for i, k in enumerate(keys):
        kp = f"{p}.linuxConfiguration.ssh.publicKeys[{i}]"
        _ssh_key(k.keyData, f"{kp}.keyData")
        if k.path is not None and k.path != home:
            raise ModelError(f"{kp}.path", f"must be {home} (the admin user's authorized_keys)")


def _storage(ss: ScaleSet) -> None:
    sp = ss.properties.virtualMachineProfile.storageProfile
    p = f"{VMP}.storageProfile"
    ref = sp.imageReference
    for part in ("publisher", "offer", "sku"):
        if part == "offer" and ref.id is not None and not ref.offer:
            continue  # the gallery's, filled in by Lab.resolve_image
        if not getattr(ref, part) and ref.id is None:
            raise ModelError(f"{p}.imageReference.{part}", "is required (or imageReference.id)")
        _name(_GALLERY_NAME, getattr(ref, part), f"{p}.imageReference.{part}",
              "is not a valid name: 1-80 letters, digits, '.', '-' or '_', starting with a letter or digit")
    if ref.version.lower() != LATEST:
        try:
            parse_version(ref.version)
        except ImageError as exc:
            raise ModelError(f"{p}.imageReference.version", exc.reason, "InvalidImageVersion") from None
    _one_of(sp.osDisk.createOption, ("FromImage",), f"{p}.osDisk.createOption")
    _one_of(sp.osDisk.caching, CACHING, f"{p}.osDisk.caching")
    if sp.osDisk.diskSizeGB is not None:
        _range(sp.osDisk.diskSizeGB, 1, 4095, f"{p}.osDisk.diskSizeGB")
    luns: set[int] = set()
    for i, d in enumerate(sp.dataDisks):
        dp = f"{p}.dataDisks[{i}]"
        _range(d.lun, 0, 63, f"{dp}.lun")
        if d.lun in luns:
            raise ModelError(f"{dp}.lun", f"duplicate LUN {d.lun}", "DuplicateLun")
        luns.add(d.lun)
        _range(d.diskSizeGB, 1, 1023, f"{dp}.diskSizeGB")
        _one_of(d.createOption, ("Empty",), f"{dp}.createOption")
        _one_of(d.caching, CACHING, f"{dp}.caching")


def _health_probe(ss: ScaleSet) -> None:
    probe = ss.properties.virtualMachineProfile.networkProfile.healthProbe
    if probe is None:
        return
    pp = f"{VMP}.networkProfile.healthProbe"
    if probe.protocol.lower() not in ("http", "tcp"):
        raise ModelError(f"{pp}.protocol", f"'{shown(probe.protocol)}' is not Http or Tcp")
    _range(probe.port, 1, 65535, f"{pp}.port")
    if probe.requestPath is not None and (problem := request_path_problem(probe.requestPath)):
        raise ModelError(f"{pp}.requestPath", problem)
    _range(probe.intervalInSeconds, 5, 120, f"{pp}.intervalInSeconds")
    _range(probe.numberOfProbes, 1, 100, f"{pp}.numberOfProbes")
    if ss.health_extension() is not None:
        raise ModelError(pp, "a scale set has one health source: remove the health probe or the "
                             "ApplicationHealthLinux extension", "MultipleHealthSourcesNotAllowed")


def _upgrade_policy(ss: ScaleSet) -> None:
    up = ss.properties.upgradePolicy
    if up.mode not in UPGRADE_MODES:
        raise ModelError("$.properties.upgradePolicy.mode", f"'{shown(up.mode)}' is not one of "
                                                            f"{', '.join(UPGRADE_MODES)}")
    rp, path = up.rollingUpgradePolicy, "$.properties.upgradePolicy.rollingUpgradePolicy"
    for name, lo in (("maxBatchInstancePercent", 5), ("maxUnhealthyInstancePercent", 5),
                     ("maxUnhealthyUpgradedInstancePercent", 0)):  # Azure's ranges: 0 stops at any failure
        _range(getattr(rp, name), lo, 100, f"{path}.{name}")
    if rp.maxBatchInstancePercent > rp.maxUnhealthyInstancePercent:
        raise ModelError(f"{path}.maxBatchInstancePercent",
                         f"{rp.maxBatchInstancePercent} exceeds maxUnhealthyInstancePercent "
                         f"({rp.maxUnhealthyInstancePercent})")
    parse_duration(rp.pauseTimeBetweenBatches, f"{path}.pauseTimeBetweenBatches", MAX_DURATION)
    auto = up.automaticOSUpgradePolicy
    if auto.enableAutomaticOSUpgrade:
        ap = "$.properties.upgradePolicy.automaticOSUpgradePolicy.enableAutomaticOSUpgrade"
        version = ss.properties.virtualMachineProfile.storageProfile.imageReference.version
        if version.lower() != LATEST:
            raise ModelError(ap, "automatic OS upgrade needs imageReference.version 'latest' "
                                 f"(it is '{version}')", "AutomaticOSUpgradeRequiresLatestVersion")
        if ss.properties.virtualMachineProfile.networkProfile.healthProbe is None and ss.health_extension() is None:
            raise ModelError(ap, "automatic OS upgrade needs a health source: a health probe "
                                 "(networkProfile.healthProbe) or the ApplicationHealthLinux extension",
                             "AutomaticOSUpgradeRequiresHealthSource")


def _resource(ss: ScaleSet) -> None:
    _name(_NAME, ss.name, "$.name", "is not a valid scale-set name: 1-64 letters, digits, '.', '-' or '_', "
                                    "starting with a letter or digit, not ending with '.' or '-'", "InvalidResourceName")
    check_region_name(ss.location, "$.location")
    if ss.type.lower() != RESOURCE_TYPE.lower():
        raise ModelError("$.type", f"must be {RESOURCE_TYPE}")
    for path, value in (("$.id", ss.id), ("$.properties.provisioningState", ss.properties.provisioningState),
                        ("$.properties.uniqueId", ss.properties.uniqueId)):
        if value is not None and len(value) > 1024:
            raise ModelError(path, "is longer than 1024 characters")
    _name(_GALLERY_NAME, ss.sku.name, "$.sku.name", "is not a size name: 1-80 letters, digits, '.', '-' or '_'")
    if ss.sku.tier is not None and ss.sku.tier.lower() != "standard":
        raise ModelError("$.sku.tier", f"'{shown(ss.sku.tier)}': the lab has one tier, Standard (Basic sizes "
                                       "have no load balancing or autoscale in Azure either)")
    check_capacity(ss.sku.capacity)
    if ss.properties.platformFaultDomainCount is not None:
        _range(ss.properties.platformFaultDomainCount, 1, MAX_FAULT_DOMAINS, "$.properties.platformFaultDomainCount")


def _lab_settings(ss: ScaleSet) -> None:
    ls, p = ss.properties.labSettings, "$.properties.labSettings"
    parse_duration(ls.healthWaitTimeout, f"{p}.healthWaitTimeout", MAX_DURATION)
    parse_duration(ls.autoUpgradeDelay, f"{p}.autoUpgradeDelay", MAX_DURATION)
    _range(ls.vcpus, 1, 16, f"{p}.vcpus")
    _range(ls.memoryMiB, 256, 65536, f"{p}.memoryMiB")
    if ls.network not in ("user", "nat"):
        raise ModelError(f"{p}.network", f"'{shown(ls.network)}' is not user or nat")


def validate(ss: ScaleSet) -> None:
    """Raise ModelError for the first field that is wrong."""
    _resource(ss)
    _storage(ss)
    _os_profile(ss)
    validate_extensions(ss.properties.virtualMachineProfile.extensionProfile.extensions,
                        f"{VMP}.extensionProfile.extensions")
    _upgrade_policy(ss)
    _health_probe(ss)
    _lab_settings(ss)
