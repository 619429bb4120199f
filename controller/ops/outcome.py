"""What one instance's part of a rolling-upgrade batch came to."""
from __future__ import annotations

from dataclasses import dataclass

from controller.model.instance import Instance
from controller.state.journal import Swap


@dataclass
class Outcome:
    instance_id: int
    state: str  # Succeeded | Failed | RolledBack | RollbackFailed
    timings: dict
    unsettled: tuple[Swap, Instance] | None = None  # Failed, rollback deferred to the end of the batch
    saved: Instance | None = None  # the instance as last written to its row (None: read it again)
    replaced_by: int | None = None  # MaxSurge: the new instance that replaced it (or was discarded)
