"""Logins to the web view: a one-time link (`scaleset dashboard`) becomes a session cookie.

Both are JWTs signed with the lab's token key, each with an audience of its own, so neither is
an API token and an API token is neither. A link's `jti` is written to SQLite when it is used:
a second use is refused, also after a controller restart. Actions also need the CSRF token the
page carries (an HMAC of the session's id), sent in a header a cross-site form cannot set.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import time

import jwt

from controller.api.tokens import ALGORITHM, ISSUER, Unauthorized, lab_key
from controller.core.errors import ModelError
from controller.core.settings import LabPaths
from controller.core.txn import transaction
from controller.state.db import connect

LOGIN_AUDIENCE = "scaleset-lab:web-login"
SESSION_AUDIENCE = "scaleset-lab:web-session"
LOGIN_TTL = 600.0  # seconds a login link stays usable (once)
SESSION_TTL = 12 * 3600.0
COOKIE = "scaleset_session"
CSRF_HEADER = "X-Scaleset-CSRF"
LOGIN_PATH = "/lab/login"


def _mint(paths: LabPaths, audience: str, ttl: float) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": audience, "iat": now, "exp": now + int(ttl), "jti": secrets.token_hex(16)}
    return jwt.encode(claims, lab_key(paths), algorithm=ALGORITHM)


def _check(paths: LabPaths, token: str, audience: str, what: str) -> dict:
    if not token or len(token) > 4096 or not token.isascii():
        raise Unauthorized(f"the {what} is malformed")
    try:
        return jwt.decode(token, lab_key(paths), algorithms=[ALGORITHM], audience=audience, issuer=ISSUER,
                          options={"require": ["exp", "jti", "aud", "iss"]})
    except jwt.ExpiredSignatureError:
        raise Unauthorized(f"the {what} has expired; run `scaleset dashboard` for a new link",
                           "ExpiredAuthenticationToken") from None
    except (jwt.PyJWTError, ValueError, TypeError):
        raise Unauthorized(f"the {what} is not valid for this lab; run `scaleset dashboard` for a new link") from None


def login_link(paths: LabPaths, base: str, ttl: float = LOGIN_TTL) -> str:
    """A one-time login URL for the web view at `base` (https://127.0.0.1:PORT)."""
    if not 0 < ttl <= 86400:
        raise ModelError("--expires-in", "a login link lives more than 0 s and at most one day")
    return f"{base}{LOGIN_PATH}?ticket={_mint(paths, LOGIN_AUDIENCE, ttl)}"


def redeem(paths: LabPaths, ticket: str) -> str:
    """Use a login ticket (once): a new session token for the cookie."""
    claims = _check(paths, ticket, LOGIN_AUDIENCE, "login link")
    db = connect(paths.db)
    try:
        with transaction(db):
            db.execute("DELETE FROM login_tickets WHERE expires < ?", (time.time(),))
            if db.execute("SELECT 1 FROM login_tickets WHERE jti=?", (claims["jti"],)).fetchone():
                raise Unauthorized("this login link was used already; run `scaleset dashboard` for a new one")
            db.execute("INSERT INTO login_tickets (jti, expires) VALUES (?, ?)", (claims["jti"], claims["exp"]))
    finally:
        db.close()
    return _mint(paths, SESSION_AUDIENCE, SESSION_TTL)


def session(paths: LabPaths, cookie: str | None) -> dict:
    """The claims of a valid session cookie, or Unauthorized."""
    if not cookie:
        raise Unauthorized("not logged in: open the link that `scaleset dashboard` prints", "AuthenticationFailed")
    return _check(paths, cookie, SESSION_AUDIENCE, "session")


def csrf_token(paths: LabPaths, claims: dict) -> str:
    return hmac.new(lab_key(paths), b"csrf:" + claims["jti"].encode(), hashlib.sha256).hexdigest()


def check_csrf(paths: LabPaths, claims: dict, header: str | None) -> None:
    if not header or not hmac.compare_digest(header, csrf_token(paths, claims)):
        raise ModelError(CSRF_HEADER, "missing or wrong: actions are taken from the lab's own page only",
                         "Forbidden")
