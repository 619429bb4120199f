"""galleries/{g}/images/{i}/versions/{v} (filled in below)."""
from __future__ import annotations

from controller.api.context import ApiContext
from controller.api.router import Router


def register(router: Router, ctx: ApiContext) -> None:
    return None
