"""Names from hashes, as Azure computes them: uniqueString (a 64-bit MurmurHash variant over the
arguments joined with '-', in 13 characters of base32), guid (a name-based UUID, version 5, in
ARM's namespace over the arguments joined with '-'), newGuid (a random one)."""
from __future__ import annotations

import uuid
from typing import Any

from controller.template.errors import FunctionError
from controller.template.functions import function, type_name

ARM_NAMESPACE = uuid.UUID("11fb06fb-712d-4ddd-98c7-e71bbd588830")
_BASE32 = "abcdefghijklmnopqrstuvwxyz234567"
_M32 = 0xFFFFFFFF


def _joined(fn: str, args: tuple) -> str:
    for i, a in enumerate(args):
        if not isinstance(a, str):
            raise FunctionError(f"{fn}: argument {i + 1} must be a string, not {type_name(a)}")
    return "-".join(args)


@function("uniqueString", 1, None)
def unique_string(*args: Any) -> str:
    """13 characters, deterministic: Azure's value for the same arguments."""
    value = murmur64(_joined("uniqueString", args).encode("utf-8"))
    out = []
    for _ in range(13):
        out.append(_BASE32[value >> 59])
        value = (value << 5) & 0xFFFFFFFFFFFFFFFF
    return "".join(out)


@function("guid", 1, None)
def guid(*args: Any) -> str:
    """Azure's deterministic GUID for the same arguments."""
    return str(uuid.uuid5(ARM_NAMESPACE, _joined("guid", args)))


@function("newGuid", 0, 0)
def new_guid() -> str:
    return str(uuid.uuid4())


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _M32


def _fmix(h: int) -> int:
    h = ((h ^ (h >> 16)) * 0x85EBCA6B) & _M32
    h = ((h ^ (h >> 13)) * 0xC2B2AE35) & _M32
    return h ^ (h >> 16)


def murmur64(data: bytes, seed: int = 0) -> int:
    """The 64-bit MurmurHash of Azure's ResourceStack (MurmurHash3 x86-128's mixing on two
    32-bit lanes, 8-byte blocks, little-endian) that uniqueString() uses."""
    c1, c2 = 0x239B961B, 0xAB0E9789
    h1 = h2 = seed
    n = len(data)
    end = n - n % 8
    for i in range(0, end, 8):
        k1 = int.from_bytes(data[i:i + 4], "little")
        k2 = int.from_bytes(data[i + 4:i + 8], "little")
        h1 ^= (_rotl((k1 * c1) & _M32, 15) * c2) & _M32
        h1 = (_rotl(h1, 19) + h2) & _M32
        h1 = (h1 * 5 + 0x561CCD1B) & _M32
        h2 ^= (_rotl((k2 * c2) & _M32, 17) * c1) & _M32
        h2 = (_rotl(h2, 13) + h1) & _M32
        h2 = (h2 * 5 + 0x0BCAA747) & _M32
    tail = data[end:]
    if tail:
        k1 = int.from_bytes(tail[:4], "little")
        h1 ^= (_rotl((k1 * c1) & _M32, 15) * c2) & _M32
        if len(tail) > 4:
            k2 = int.from_bytes(tail[4:], "little")
            h2 ^= (_rotl((k2 * c2) & _M32, 17) * c1) & _M32
    h1 ^= n
    h2 ^= n
    h1 = (h1 + h2) & _M32
    h2 = (h2 + h1) & _M32
    h1, h2 = _fmix(h1), _fmix(h2)
    h1 = (h1 + h2) & _M32
    h2 = (h2 + h1) & _M32
    return (h2 << 32) | h1
