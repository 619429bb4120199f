"""Fault domains of a scale set in its region, and the host each fault domain runs on (pure).

As Azure (regional Uniform sets): `platformFaultDomainCount` is 1..5, 5 when not given, and 1
means max spreading. In a configured region a fault domain is a host (its position in the
region), so the default is the host count when the region has fewer than 5, a fixed count may
not exceed the host count, and 1 spreads instances over every host of the region (the lab shows
each instance's host as its fault domain; Azure shows one). On `local` and on a label region
(one host) fault domains stay labels on that host, as before regions: id mod the count.
Update domains are not placement: they stay id mod 5 (instance.DOMAINS).
"""
from __future__ import annotations

from dataclasses import dataclass

from controller.core.errors import ModelError
from controller.model.checks import MAX_FAULT_DOMAINS
from controller.model.region import Host, Region
from controller.model.scaleset import ScaleSet

FD_COUNT = "$.properties.platformFaultDomainCount"
MAX_SPREADING = 1


@dataclass(frozen=True)
class Placement:
    fault_domain: int
    host: Host


def fault_domain_count(requested: int | None, region: Region) -> int:
    """The scale set's fault-domain count in `region` (`requested`: its platformFaultDomainCount)."""
    if requested is not None:
        return requested
    return min(MAX_FAULT_DOMAINS, len(region.hosts)) if region.configured else MAX_FAULT_DOMAINS


def check_fault_domains(ss: ScaleSet, region: Region) -> None:
    """Refuse a fixed platformFaultDomainCount above the host count of a configured region."""
    count = ss.properties.platformFaultDomainCount
    if region.configured and count is not None and count > len(region.hosts):
        raise ModelError(FD_COUNT, f"{count} fault domains, but region '{region.name}' has "
                                   f"{len(region.hosts)} host(s): one fault domain is one host (give at most "
                                   f"{len(region.hosts)}, or 1 to spread over every host)", "InvalidParameter")


def fault_domain(instance_id: int, count: int, region: Region) -> int:
    """The instance's fault domain: round-robin by instance id over `count` fault domains
    (max spreading, count 1, in a configured region: over all its hosts)."""
    if count == MAX_SPREADING and region.configured:
        return instance_id % len(region.hosts)
    return instance_id % count


def host_for(region: Region, fault_domain: int) -> Host:
    """The host a fault domain runs on: its position in a configured region; the one host otherwise."""
    if not region.configured:
        return region.hosts[0]
    if not 0 <= fault_domain < len(region.hosts):
        raise ModelError(FD_COUNT, f"fault domain {fault_domain} is not a host of region '{region.name}' "
                                   f"(0..{len(region.hosts) - 1})")
    return region.hosts[fault_domain]


def place(ss: ScaleSet, region: Region, instance_id: int) -> Placement:
    """Where instance `instance_id` of `ss` goes in `region` (its location's region)."""
    fd = fault_domain(instance_id, fault_domain_count(ss.properties.platformFaultDomainCount, region), region)
    return Placement(fd, host_for(region, fd))
