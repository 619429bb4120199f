"""The lab's bearer tokens: JWTs signed HS256 with a key kept in $SCALESET_HOME/api/token.key.

Shaped like Azure AD access tokens for ARM (`az` decodes them without checking the signature
and reads `tid`). `verify` is on every request: the key is read once per lab and cached.
Errors say what is wrong with a token, never the token or the key.
"""
from __future__ import annotations

import math
import os
import secrets
import time
import uuid
from pathlib import Path

import jwt

from controller.core.errors import LabError, ModelError, from_os_error
from controller.core.files import atomic_create
from controller.core.settings import LabPaths, private
from controller.model.armid import DEFAULT_RESOURCE_GROUP, SUBSCRIPTION_ID, TENANT_ID  # noqa: F401 (re-exported)

DEFAULT_TTL = 3600.0
MAX_TTL = 30 * 86400

ISSUER = "https://scaleset-lab.local/"
AUDIENCE = "https://management.azure.com/"
APP_ID = "scaleset-lab"
ALGORITHM = "HS256"
KEY_BYTES = 32
MAX_TOKEN = 8192  # characters: a longer header value is refused before any decoding
CLAIMS = ("iss", "aud", "tid", "oid", "sub", "appid", "idtyp", "iat", "nbf", "exp", "jti")
_SUBJECTS = uuid.UUID("5ca1e5e7-0000-4000-8000-00000000005b")  # uuid5 namespace of token subjects

# key file -> (key, inode, mtime_ns): read once; read again only when a signature fails and the file changed
_KEYS: dict[Path, tuple[bytes, int, int]] = {}


class Unauthorized(LabError):
    """A request without a valid lab token: HTTP 401, field `Authorization`."""

    default_code = "InvalidAuthenticationToken"

    def __init__(self, reason: str, code: str | None = None) -> None:
        super().__init__("Authorization", reason, code)


def key_path(paths: LabPaths) -> Path:
    return paths.home / "api" / "token.key"


def _load(path: Path) -> tuple[bytes, int, int]:
    with path.open("rb") as f:
        data, st = f.read(KEY_BYTES + 1), os.fstat(f.fileno())
    if len(data) != KEY_BYTES:
        raise LabError(str(path), f"is not a {KEY_BYTES}-byte key; remove it to make a new one "
                                  "(tokens signed with the old key stop working)", "StateCorrupt")
    return data, st.st_ino, st.st_mtime_ns


def lab_key(paths: LabPaths) -> bytes:
    """The lab's 32-byte token key, created (0600) on first use; of two racing processes one key wins."""
    path = key_path(paths)
    cached = _KEYS.get(path)
    if cached is not None:
        return cached[0]
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            private(path.parent)
            atomic_create(path, secrets.token_bytes(KEY_BYTES), 0o600)
        _KEYS[path] = _load(path)
    except OSError as exc:
        raise from_os_error(exc, str(path)) from None
    return _KEYS[path][0]


def _reloaded(paths: LabPaths) -> bool:
    """Read the key again if its file was replaced since it was cached (another process made a
    new one); True when the key changed."""
    path = key_path(paths)
    old = _KEYS.get(path)
    try:
        st = path.stat()
        if old is not None and (st.st_ino, st.st_mtime_ns) == old[1:]:
            return False
        _KEYS[path] = _load(path)
    except (OSError, LabError):
        return False
    return old is None or _KEYS[path][0] != old[0]


def _subject_id(subject: str) -> str:
    return str(uuid.uuid5(_SUBJECTS, subject))


def mint(paths: LabPaths, ttl: float = DEFAULT_TTL, subject: str = "lab-user", not_after: int | None = None) -> str:
    """A lab token for `subject`, valid `ttl` seconds (more than 0, at most MAX_TTL) and, with
    `not_after` (a Unix time), no later than that (a token handed out for another expires with it)."""
    if not (isinstance(ttl, (int, float)) and math.isfinite(ttl) and 0 < ttl <= MAX_TTL):
        raise ModelError("ttl", f"a token lives more than 0 and at most {MAX_TTL} seconds, not {ttl!r}")
    now = int(time.time())
    exp = now + max(1, math.ceil(ttl))
    if not_after is not None:
        if not_after <= now:
            raise Unauthorized("the token has expired; get a new one with `scaleset api token`",
                               "ExpiredAuthenticationToken")
        exp = min(exp, not_after)
    oid = _subject_id(subject)
    claims = {"iss": ISSUER, "aud": AUDIENCE, "tid": TENANT_ID, "oid": oid, "sub": oid, "appid": APP_ID,
              "idtyp": "app", "iat": now, "nbf": now, "exp": exp, "jti": secrets.token_hex(16)}
    return jwt.encode(claims, lab_key(paths), algorithm=ALGORITHM, headers={"typ": "JWT"})


def _decode(token: str, key: bytes) -> dict:
    return jwt.decode(token, key, algorithms=[ALGORITHM], audience=AUDIENCE, issuer=ISSUER, leeway=0,
                      options={"require": list(CLAIMS), "verify_signature": True})


_VERIFIED: dict[tuple[bytes, str], dict] = {}  # (key, token) -> claims: a token's signature is checked once
_VERIFIED_MAX = 4096


def verify(paths: LabPaths, token: str) -> dict:
    """The claims of a valid lab token, or Unauthorized (expired, or invalid for any other reason)."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN or not token.isascii():
        raise Unauthorized("the token is malformed")
    key = lab_key(paths)
    known = _VERIFIED.get((key, token))
    if known is not None and known["exp"] > time.time():
        return known
    claims = _verify(paths, token, key)
    if len(_VERIFIED) >= _VERIFIED_MAX:
        _VERIFIED.clear()
    _VERIFIED[(key, token)] = claims
    return claims


def _verify(paths: LabPaths, token: str, key: bytes) -> dict:
    try:
        try:
            claims = _decode(token, key)
        except jwt.InvalidSignatureError:
            if not _reloaded(paths):
                raise
            claims = _decode(token, lab_key(paths))
    except jwt.ExpiredSignatureError:
        raise Unauthorized("the token has expired; get a new one with `scaleset api token`",
                           "ExpiredAuthenticationToken") from None
    except jwt.InvalidAlgorithmError:
        raise Unauthorized(f"the token is not signed with {ALGORITHM}") from None
    except jwt.InvalidSignatureError:
        raise Unauthorized("the token's signature does not verify (a token of another lab, or altered)") from None
    except jwt.MissingRequiredClaimError as exc:
        raise Unauthorized(f"the token lacks the claim '{exc.claim}'") from None
    except jwt.InvalidAudienceError:
        raise Unauthorized(f"the token's audience is not {AUDIENCE}") from None
    except jwt.InvalidIssuerError:
        raise Unauthorized(f"the token's issuer is not {ISSUER}") from None
    except jwt.ImmatureSignatureError:
        raise Unauthorized("the token is not valid yet") from None
    except (jwt.PyJWTError, ValueError, TypeError):
        raise Unauthorized("the token is malformed") from None
    if claims.get("tid") != TENANT_ID:
        raise Unauthorized("the token's tenant is not the lab's")
    return claims


def bearer(header: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header value, or Unauthorized."""
    scheme, _, value = (header or "").strip().partition(" ")
    token = value.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("the request has no Authorization: Bearer token", "AuthenticationFailed")
    return token
