"""osProfile.adminPassword: Azure's rules for a Linux admin password, and the salted SHA-512
crypt hash (passlib's sha512_crypt, from the maintained `libpass` distribution) that the lab
keeps instead of the password. The password itself is never stored, returned or printed: every
message here names the field, never the value."""
from __future__ import annotations

import re

from passlib.hash import sha512_crypt

from controller.core.errors import ModelError

ROUNDS = 100_000  # glibc's default is 5000; more makes a stolen hash slower to guess (~40 ms here)
MIN_LENGTH, MAX_LENGTH = 6, 72  # Azure's, for Linux
_CLASSES = (re.compile(r"[a-z]"), re.compile(r"[A-Z]"), re.compile(r"[0-9]"), re.compile(r"[^a-zA-Z0-9]"))
# Azure refuses these common passwords whatever their complexity
_DISALLOWED = {"abc@123", "p@$$w0rd", "p@ssw0rd", "p@ssword123", "pa$$word", "pass@word1", "password!",
               "password1", "password22", "iloveyou!"}
_HASH = re.compile(r"\$6\$(?:rounds=[0-9]{4,9}\$)?[./0-9A-Za-z]{1,16}\$[./0-9A-Za-z]{86}")
AZURE_RULE = (f"The supplied password must be between {MIN_LENGTH}-{MAX_LENGTH} characters long and must satisfy "
              "at least 3 of password complexity requirements from the following: 1) Contains an uppercase "
              "character 2) Contains a lowercase character 3) Contains a numeric digit 4) Contains a special "
              "character 5) Control characters are not allowed")


def check(password: str, path: str) -> None:
    """Azure's rules: 6..72 characters, 3 of the 4 classes, no control character, not a common one."""
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH or sum(bool(c.search(password)) for c in _CLASSES) < 3 \
            or not password.isprintable():
        raise ModelError(path, AZURE_RULE)
    if password.lower() in _DISALLOWED:
        raise ModelError(path, "The specified password is too common and is not allowed; choose another one")


def check_hash(value: str, path: str) -> None:
    """A stored hash (a lab field) is a SHA-512 crypt string, nothing else."""
    if not _HASH.fullmatch(value):
        raise ModelError(path, "is not a SHA-512 crypt hash ($6$salt$hash), as the lab stores a password")


def hashed(password: str) -> str:
    """A new salted SHA-512 crypt hash of `password` (what cloud-init's hashed_passwd takes)."""
    return sha512_crypt.using(rounds=ROUNDS).hash(password)


def matches(password: str, hash_: str | None) -> bool:
    """Whether `password` is the one `hash_` was made from (False for no or a malformed hash)."""
    if not hash_ or not _HASH.fullmatch(hash_):
        return False
    return sha512_crypt.verify(password, hash_)
