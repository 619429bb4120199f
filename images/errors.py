"""Errors of the image pipeline: each names the field and the reason."""
from __future__ import annotations


class ImageError(Exception):
    """Bad input or a failed step; `field` names what was wrong, `code` is Azure-like."""

    def __init__(self, field: str, reason: str, code: str = "InvalidParameter") -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.code = code

    def to_json(self) -> dict:
        return {"error": {"code": self.code, "target": self.field, "message": str(self)}}
