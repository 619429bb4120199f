"""ARM's optimistic concurrency: every resource has an `etag` (body and `ETag` header) that
changes on every write; `If-Match` and `If-None-Match` on PUT, PATCH and DELETE are checked
against it inside the write's own transaction (a stale one: 412 `PreconditionFailed`)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from controller.core.errors import ModelError

MAX_HEADER = 256  # characters of an If-Match / If-None-Match value worth reading


def etag(version: int | str) -> str:
    """The etag of a resource at `version` (a generation: Azure's compute etags are quoted integers)."""
    return f'"{version}"'


def _values(raw: str | None, header: str) -> tuple[str, ...] | None:
    if raw is None:
        return None
    if len(raw) > MAX_HEADER:
        raise ModelError(header, f"is longer than {MAX_HEADER} characters", "InvalidParameter")
    items = tuple(v.strip().removeprefix("W/") for v in raw.split(",") if v.strip())
    if not items:
        raise ModelError(header, "is empty: give an etag, a list of etags or '*'", "InvalidParameter")
    return items


@dataclass(frozen=True)
class Preconditions:
    if_match: tuple[str, ...] | None = None
    if_none_match: tuple[str, ...] | None = None

    @classmethod
    def of(cls, headers: Mapping[str, str]) -> Preconditions:
        """Read from a request's headers (malformed: InvalidParameter naming the header)."""
        return cls(_values(headers.get("If-Match"), "If-Match"), _values(headers.get("If-None-Match"), "If-None-Match"))

    def __bool__(self) -> bool:
        return self.if_match is not None or self.if_none_match is not None

    def check(self, current: str | None) -> None:
        """Refuse the write when the resource's etag (`current`, None: it does not exist) does not
        satisfy the conditions. Call it where the write reads the resource it changes."""
        if self.if_match is not None:
            if current is None:
                raise ModelError("If-Match", "the resource does not exist", "PreconditionFailed")
            if "*" not in self.if_match and current not in self.if_match:
                raise ModelError("If-Match", f"{', '.join(self.if_match)[:80]} does not match the resource's "
                                             f"etag {current}: it was changed since it was read", "PreconditionFailed")
        if self.if_none_match is not None and current is not None:
            if "*" in self.if_none_match:
                raise ModelError("If-None-Match", "* : the resource already exists", "PreconditionFailed")
            if current in self.if_none_match:
                raise ModelError("If-None-Match", f"the resource's etag is {current}", "PreconditionFailed")


NONE = Preconditions()
