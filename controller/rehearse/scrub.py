"""Secrets never leave a rehearsal: file-server tokens, protectedSettings and passwords are blanked in
everything it prints or writes (progress, JUnit, the report and its JSON)."""
from __future__ import annotations

import re
from typing import Any

from controller.model.scaleset import SECRETS

_TOKENS = re.compile(r"(\b(?:sig|ticket|token|access_token)=)[^&\s'\"]+", re.IGNORECASE)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+")


def scrub(value: Any) -> Any:
    """A copy of `value` (text, or JSON-like data) without tokens and protectedSettings."""
    if isinstance(value, str):
        return _BEARER.sub(r"\1<redacted>", _TOKENS.sub(r"\1<redacted>", value))
    if isinstance(value, dict):
        return {k: ("<redacted>" if k in SECRETS and v else scrub(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value
