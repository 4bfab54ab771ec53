"""Sinks: where finished events go.

A sink is a small object with a delivery contract. ``emit()`` is called on
the logging caller's thread with a finished `LogEvent`; it must not raise
for a delivery failure (count it, report it, turn degraded) and must not do
network I/O (queue the event for a background thread instead). Subclass
`Sink`, or pass any object with the same methods in ``sinks=`` to
`configure_logging()`.
"""

from __future__ import annotations

import dataclasses
import threading

from runtime_logging._diagnostics import diagnostics
from runtime_logging._pipeline import LogEvent

HEALTHY = "healthy"
DEGRADED = "degraded"
DOWN = "down"

#: The value of ``<prefix>_health_status`` for each state.
HEALTH_VALUES = {HEALTHY: 1.0, DEGRADED: 0.5, DOWN: 0.0}


@dataclasses.dataclass(frozen=True)
class SinkHealth:
    """A sink's state, and its delivery counts since it was made."""

    name: str
    state: str = HEALTHY
    detail: str = ""
    delivered: int = 0
    dropped: int = 0
    failures: int = 0
    queue_depth: int = 0
    buffered_bytes: int = 0

    @property
    def value(self) -> float:
        """1.0 healthy, 0.5 degraded, 0.0 down."""
        return HEALTH_VALUES[self.state]


class Sink:
    """Base class for sinks: counters, health, and no-op lifecycle methods."""

    name = "sink"

    def __init__(self, min_level: int = 0) -> None:
        """Take events at *min_level* and above."""
        self.min_level = min_level
        self.delivered = 0
        self.dropped = 0
        self.failures = 0
        self._state = HEALTHY
        self._detail = ""
        self._state_lock = threading.RLock()

    def emit(self, event: LogEvent) -> None:
        """Deliver or queue *event*."""
        raise NotImplementedError

    def flush(self, timeout: float | None = None) -> None:
        """Deliver what is buffered, waiting at most *timeout* seconds."""

    def reopen(self) -> None:
        """Reopen files or connections (after an external rotation)."""

    def close(self, timeout: float | None = None) -> None:
        """Flush within *timeout* and release every resource."""
        self.flush(timeout)

    def after_fork(self) -> None:
        """Re-create locks and threads in a forked child."""
        self._state_lock = threading.RLock()

    def follow(self, previous: object) -> None:
        """Go on from *previous*, a sink of the set-up this one's replaces."""

    def health(self) -> SinkHealth:
        """The sink's state now."""
        return SinkHealth(
            self.name,
            self._state,
            self._detail,
            self.delivered,
            self.dropped,
            self.failures,
        )

    def _failed(
        self, what: str, error: BaseException | str, *, report: bool = True
    ) -> None:
        """Count a delivery failure, turn degraded, report at a bounded rate.

        With *report* False the failure is told later, by whoever reports
        the events it dropped.
        """
        with self._state_lock:
            self.failures += 1
            self._state = DEGRADED
            self._detail = f"{what}: {error}"
        if report:
            diagnostics.failure(f"sink {self.name}", f"{what}: {error}")

    def _recovered(self) -> None:
        with self._state_lock:
            self._state = HEALTHY
            self._detail = ""


__all__ = ["DEGRADED", "DOWN", "HEALTHY", "LogEvent", "Sink", "SinkHealth"]
