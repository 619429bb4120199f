"""CIDR functions against Azure's reference ("CIDR functions for ARM templates")."""
from __future__ import annotations

from tests.templatefns import call, fails


def test_parse_cidr():
    assert call("parseCidr", "10.144.0.0/20") == {
        "network": "10.144.0.0", "netmask": "255.255.240.0", "broadcast": "10.144.15.255",
        "firstUsable": "10.144.0.1", "lastUsable": "10.144.15.254", "cidr": 20}
    assert call("parseCidr", "fdad:3236:5555::/48") == {
        "network": "fdad:3236:5555::", "netmask": "ffff:ffff:ffff::", "firstUsable": "fdad:3236:5555::",
        "lastUsable": "fdad:3236:5555:ffff:ffff:ffff:ffff:ffff", "cidr": 48}
    fails("parseCidr", "10.0.0.0/33", match="CIDR notation")
    fails("parseCidr", "nonsense", match="CIDR notation")


def test_cidr_subnet():
    assert [call("cidrSubnet", "10.144.0.0/20", 24, i) for i in range(3)] == \
        ["10.144.0.0/24", "10.144.1.0/24", "10.144.2.0/24"]
    assert call("cidrSubnet", "fdad:3236:5555::/48", 52, 1) == "fdad:3236:5555:1000::/52"
    fails("cidrSubnet", "10.144.0.0/20", 16, 0, match="new CIDR")
    fails("cidrSubnet", "10.144.0.0/20", 24, 16, match="subnet index 16")


def test_cidr_host():
    assert [call("cidrHost", "10.144.3.0/24", i) for i in range(3)] == ["10.144.3.1", "10.144.3.2", "10.144.3.3"]
    assert call("cidrHost", "fdad:3236:5555:3000::/52", 0) == "fdad:3236:5555:3000::1"
    assert call("cidrHost", "10.144.3.0/24", 253) == "10.144.3.254"
    fails("cidrHost", "10.144.3.0/24", 254, match="outside the range")
    fails("cidrHost", "10.144.3.0/24", -1, match="outside the range")
