"""The rich health state machine of the Application Health extension.

Initializing until `probes` consecutive equal results or the grace period ends; after that
the state changes only when `probes` consecutive results agree on a new state.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

HEALTHY, UNHEALTHY, UNKNOWN, INITIALIZING = "Healthy", "Unhealthy", "Unknown", "Initializing"


@dataclass
class ProbeResult:
    state: str  # Healthy | Unhealthy | Unknown
    detail: str
    at: float


@dataclass
class HealthState:
    probes: int
    grace_period: float
    started_at: float
    state: str = INITIALIZING
    since: float = 0.0
    history: deque = field(default_factory=lambda: deque(maxlen=24))

    def __post_init__(self) -> None:
        self.since = self.started_at

    def record(self, result: ProbeResult) -> str:
        """Add one probe result; return the (possibly new) state."""
        self.history.append(result)
        recent = list(self.history)[-self.probes:]
        agreed = len(recent) == self.probes and all(r.state == recent[0].state for r in recent)
        if self.state == INITIALIZING:
            if agreed:
                self._set(recent[0].state, result.at)
            elif result.at - self.started_at >= self.grace_period:
                self._set(result.state, result.at)
        elif agreed and recent[0].state != self.state:
            self._set(recent[0].state, result.at)
        return self.state

    def tick(self, now: float) -> str:
        """Time passing with no result: the grace period can still end initialization."""
        if self.state == INITIALIZING and now - self.started_at >= self.grace_period and self.history:
            self._set(self.history[-1].state, now)
        return self.state

    def _set(self, state: str, at: float) -> None:
        if state != self.state:
            self.state, self.since = state, at
