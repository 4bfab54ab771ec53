"""What keeps the installer well-behaved when its services are not.

A circuit breaker per service, the clock it reads, a rate limiter for
requests in flight, and the exceptions they and the network raise.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from runtime_logging import get_logger

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"


class ServerError(ConnectionError):
    """The service answered with a 5xx status."""

    def __init__(self, service: str, status: int) -> None:
        """Say which *service* answered which *status*."""
        super().__init__(f"the {service} service answered HTTP {status}")
        self.status = status


class CircuitOpenError(ConnectionError):
    """The circuit is open: the request was not made."""

    def __init__(self, message: str, *, trial_in_flight: bool = False) -> None:
        """Say why; *trial_in_flight* when a half-open circuit is testing."""
        super().__init__(message)
        self.trial_in_flight = trial_in_flight


class ChecksumMismatchError(ValueError):
    """A download's SHA-256 differs from the manifest's."""


class RateLimitRejectedError(Exception):
    """The rate limiter's queue is full: the request was not admitted."""


class DemoClock:
    """The time the circuit breakers read: it passes only when the demo waits.

    On a loaded machine every step of a run takes longer; a breaker on the
    wall clock would then reach its reset time at a different point of each
    run. This clock moves by the waits themselves (back-off, a scheduler
    waiting for an open circuit), so every run makes the same transitions.
    """

    def __init__(self, start: float = 1000.0) -> None:
        """A clock that reads *start* seconds until the first wait."""
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        """The current time, in seconds."""
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        """Wait *seconds*, and move the clock on by as much."""
        time.sleep(seconds)
        with self._lock:
            self._now += seconds


class CircuitBreaker:
    """Stops calling a service after repeated failures, then tries it again.

    Closed: requests pass, consecutive failures are counted. After
    *failure_threshold* of them it opens: requests fail at once with
    `CircuitOpenError`. After *reset_seconds* one trial request passes
    (half open); its success closes the circuit, its failure opens it again.
    """

    def __init__(
        self,
        circuit: str,
        failure_threshold: int = 3,
        reset_seconds: float = 0.3,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """A closed breaker for the service *circuit*."""
        self.circuit = circuit
        self.failure_threshold = failure_threshold
        self.reset_seconds = reset_seconds
        self.state = CLOSED
        self._clock = clock
        self._failures = 0
        self._opened_at = 0.0
        self._trial_in_flight = False
        self._lock = threading.Lock()
        self._log = get_logger("vscode_runtime.circuit_breaker")

    def before_request(self) -> None:
        """Let a request pass, or raise `CircuitOpenError`."""
        with self._lock:
            if self.state == OPEN:
                wait = self._opened_at + self.reset_seconds - self._clock()
                if wait > 0:
                    raise CircuitOpenError(
                        f"the {self.circuit} circuit is open; "
                        f"the next trial is in {wait:.2f}s"
                    )
                self._change(HALF_OPEN)
            if self.state == HALF_OPEN:
                if self._trial_in_flight:
                    raise CircuitOpenError(
                        f"the {self.circuit} circuit is half open and its "
                        "trial request is still in flight",
                        trial_in_flight=True,
                    )
                self._trial_in_flight = True

    def record_success(self) -> None:
        """A request succeeded: close the circuit."""
        with self._lock:
            self._failures = 0
            self._trial_in_flight = False
            if self.state != CLOSED:
                self._change(CLOSED)

    def record_failure(self) -> None:
        """A request failed: count it, and open the circuit when it is time."""
        self._log.debug("Circuit breaker failure", circuit=self.circuit)
        with self._lock:
            self._failures += 1
            self._trial_in_flight = False
            if self.state == HALF_OPEN or (
                self.state == CLOSED and self._failures >= self.failure_threshold
            ):
                self._opened_at = self._clock()
                self._change(OPEN)

    def retry_after(self) -> float:
        """Seconds until an open circuit lets a trial through; 0 if it is not open."""
        with self._lock:
            if self.state != OPEN:
                return 0.0
            return max(0.0, self._opened_at + self.reset_seconds - self._clock())

    def _change(self, state: str) -> None:
        previous, self.state = self.state, state
        # `from` is a keyword in Python: the mapping form carries the field.
        fields = {"circuit": self.circuit, "from": previous, "to": state}
        if state == OPEN:
            self._log.warning("Circuit breaker state changed", fields)
        else:
            self._log.info("Circuit breaker state changed", fields)


class RateLimiter:
    """At most *max_active* requests in flight and *max_queued* waiting.

    A request is first reserved (queued, or rejected when the queue is
    full), then waits in `active()` for a free slot.
    """

    def __init__(self, max_active: int = 2, max_queued: int = 3) -> None:
        """An idle limiter."""
        self.max_active = max_active
        self.max_queued = max_queued
        self.queued = 0
        self.active_count = 0
        self._free = threading.Condition()
        self._log = get_logger("vscode_runtime.rate_limiter")

    def reserve(self, service: str) -> None:
        """Queue a request to *service*, or raise `RateLimitRejectedError`."""
        with self._free:
            if self.queued + self.active_count >= self.max_active + self.max_queued:
                self._log.warning("Rate limit rejected", service=service)
                raise RateLimitRejectedError(
                    f"{self.queued} requests are queued and {self.active_count} "
                    "in flight"
                )
            self.queued += 1
            self._report()

    @contextmanager
    def active(self) -> Iterator[None]:
        """Wait for a slot for a reserved request, and hold it inside the block."""
        with self._free:
            self._free.wait_for(lambda: self.active_count < self.max_active)
            self.queued -= 1
            self.active_count += 1
            self._report()
        try:
            yield
        finally:
            with self._free:
                self.active_count -= 1
                self._report()
                self._free.notify()

    def _report(self) -> None:
        self._log.debug(
            "Rate limiter state", queued=self.queued, active=self.active_count
        )
