"""CIDR functions: parseCidr, cidrSubnet, cidrHost (ARM's reference, "CIDR functions"), for the
address spaces and subnets of network templates."""
from __future__ import annotations

import ipaddress
from typing import Any

from controller.template.errors import FunctionError
from controller.template.functions import Arg, function

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _network(fn: str, value: Any) -> Network:
    value = Arg.str(fn, value, 0)
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise FunctionError(f"{fn}: '{value[:60]}' is not an IP address range in CIDR notation") from None


def _usable(net: Network) -> tuple[Any, Any]:
    """The first and last addresses a host may take: IPv4 leaves out the network and broadcast
    addresses (but for /31 and /32), IPv6 leaves nothing out."""
    if net.version == 4 and net.prefixlen < 31:
        return net.network_address + 1, net.broadcast_address - 1
    return net.network_address, net.broadcast_address


@function("parseCidr", 1, 1)
def parse_cidr(value: Any) -> dict:
    net = _network("parseCidr", value)
    first, last = _usable(net)
    out: dict = {"network": str(net.network_address), "netmask": str(net.netmask)}
    if net.version == 4:
        out["broadcast"] = str(net.broadcast_address)
    out.update(firstUsable=str(first), lastUsable=str(last), cidr=net.prefixlen)
    return out


@function("cidrSubnet", 3, 3)
def cidr_subnet(value: Any, new_prefix: Any, index: Any) -> str:
    """The `index`-th subnet of prefix length `new_prefix` within the range."""
    net = _network("cidrSubnet", value)
    new_prefix, index = Arg.int("cidrSubnet", new_prefix, 1), Arg.int("cidrSubnet", index, 2)
    if not net.prefixlen <= new_prefix <= net.max_prefixlen:
        raise FunctionError(f"cidrSubnet: the new CIDR {new_prefix} must be {net.prefixlen} to {net.max_prefixlen}")
    count = 1 << (new_prefix - net.prefixlen)
    if not 0 <= index < count:
        raise FunctionError(f"cidrSubnet: the subnet index {index} must be 0 to {count - 1}")
    start = int(net.network_address) + index * (1 << (net.max_prefixlen - new_prefix))
    return f"{type(net.network_address)(start)}/{new_prefix}"


@function("cidrHost", 2, 2)
def cidr_host(value: Any, index: Any) -> str:
    """The `index`-th host address of the range, counting from the one after the network address."""
    net = _network("cidrHost", value)
    index = Arg.int("cidrHost", index, 1)
    first, last = _usable(net)
    start = net.network_address + 1 if net.prefixlen < net.max_prefixlen - 1 else first
    if index < 0 or int(start) + index > int(last):
        raise FunctionError(f"cidrHost: the host index {index} is outside the range {net}")
    return str(start + index)
