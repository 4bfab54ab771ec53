"""The delivery machinery network sinks share.

A bounded queue on the caller's side, a background thread on the other.

Contract: ``emit()`` only appends to the queue (no I/O, no waiting). When the
events queued or in flight reach ``max_entries``, or their bytes would pass
``max_bytes``, the new event is dropped and counted (the oldest are kept, so
what arrives is in order and without holes up to the first drop). Every
event given to ``emit()`` ends up counted exactly once as delivered or
dropped: ``delivered + dropped + queue_depth == emitted`` at every moment,
and ``delivered + dropped == emitted`` once the sink is closed. Drops are
told on stderr at a bounded rate, from the background thread. The thread is
started when `configure_logging()` takes the sink (or on first use, for a
sink used on its own) and again on first use in a forked child (whose copy
of the parent's queue and counts is discarded: the parent delivers and
counts it).
``flush()`` and ``close()`` wait at most their timeout; a batch still
unanswered when ``close()`` gives up is counted as dropped, and `interrupt`
ends its request so that the thread ends within that timeout. Each drop is
told once, with its reason.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from collections.abc import Sequence
from typing import Any

from runtime_logging._diagnostics import diagnostics
from runtime_logging._pipeline import LogEvent, background_thread
from runtime_logging.sinks import DOWN, Sink, SinkHealth

#: The part of ``close()``'s timeout kept for ending the thread (at most half).
STOP_SECONDS = 0.1

#: Why events are dropped, for the report on stderr.
FULL = "buffer full"
CLOSED = "logged after close"


#: Forks this process descends from: a sink's thread is of one of them. Read
#: on every event, so a counter rather than a `getpid()` system call.
_forks = 0


def _count_fork() -> None:
    global _forks  # noqa: PLW0603 - the process's own count
    _forks += 1


os.register_at_fork(after_in_child=_count_fork)


class QueuedSink(Sink):
    """Base for sinks whose delivery happens on a background thread.

    Subclasses implement `deliver`, and may override `measure` and `keep`.
    A `deliver` that waits (a retry's back-off) calls `pause`, and gives up
    when it returns False.
    """

    name = "queued"

    def __init__(
        self,
        *,
        max_entries: int = 10_000,
        max_bytes: int = 16 * 1000**2,
        batch_entries: int = 1000,
        batch_interval: float = 1.0,
        batch_bytes: int = 0,
        min_level: int = 0,
    ) -> None:
        """Hold at most *max_entries* events or *max_bytes* bytes.

        A batch holds at most *batch_entries* events and, unless it is 0,
        *batch_bytes* bytes (one event larger than that goes alone).
        """
        super().__init__(min_level)
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.batch_entries = batch_entries
        self.batch_interval = batch_interval
        self.batch_bytes = batch_bytes
        #: Bytes held: the queue and the batch in flight.
        self.queued_bytes = 0
        # Each event followed by its size, added in one extend(): a tuple
        # kept per event would be one more object for the collector to count
        # on the caller's thread, and two appends could be parted by a
        # signal handler that raises between them.
        self._queue: collections.deque[Any] = collections.deque()
        self._in_flight = 0
        self._in_flight_bytes = 0
        self._batch_number = 0
        self._closed = False
        self._deadline: float | None = None
        self._unreported: dict[str, int] = {}
        self._reset_threading()

    def _reset_threading(self) -> None:
        # Re-entrant: SIGTERM's handler drains and closes from the main
        # thread, possibly in the middle of that thread's own emit().
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._stopped = threading.Event()
        self._idle = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._forks = _forks

    # What subclasses provide.

    def measure(self, event: LogEvent) -> int:
        """The bytes *event* holds in the queue; its JSON line by default."""
        return len(event.json_line)

    def keep(self, event: LogEvent) -> LogEvent:
        """What the queue holds of an admitted *event*; the event by default."""
        return event

    def deliver(self, batch: Sequence[LogEvent]) -> int:
        """Send *batch*; return how many of its events were delivered.

        The last failure (`health().detail`) is the reason given for the rest.
        """
        raise NotImplementedError

    def interrupt(self) -> None:
        """End the request in flight at once; `close()` has given up on it."""

    def warm_up(self) -> None:
        """Pay a first delivery's one-off costs; the thread's first act.

        Done as the set-up ends, so that they don't fall on the callers'
        interpreter time when the first event comes (an error, often).
        """

    # The caller's side.

    def emit(self, event: LogEvent) -> None:
        """Queue *event*, or drop and count it when the queue is full."""
        size = self.measure(event)
        with self._lock:
            if (
                self._closed
                or len(self._queue) // 2 + self._in_flight >= self.max_entries
                or self.queued_bytes + size > self.max_bytes
            ):
                self._drop(1, CLOSED if self._closed else FULL)
                return
            self._queue.extend((self.keep(event), size))
            self.queued_bytes += size
            if not self._wake.is_set() and (
                len(self._queue) >= 2 * self.batch_entries
                or (self.batch_bytes and self.queued_bytes >= self.batch_bytes)
            ):
                self._wake.set()
        if self._thread is None or self._forks != _forks:
            self._start()

    def attach(self, service: object) -> None:
        """Start the background thread: *service* now sends events here.

        Started with the set-up rather than by the first event, so that no
        logging call pays for a thread's start.
        """
        del service
        self._start()

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None and self._forks == _forks:
                return
            self._forks = _forks
            self._thread = threading.Thread(
                target=self._run, name=f"runtime_logging-{self.name}", daemon=True
            )
            self._thread.start()

    # The background side.

    def _take(self) -> tuple[int, list[LogEvent]]:
        with self._lock:
            batch: list[LogEvent] = []
            size = 0
            queue = self._queue
            while queue and len(batch) < self.batch_entries:
                event_size = queue[1]
                if batch and self.batch_bytes and size + event_size > self.batch_bytes:
                    break
                batch.append(queue.popleft())
                queue.popleft()
                size += event_size
            if not queue:
                # What is held is the batch: mends a count a signal handler
                # that raised in emit() left one event off.
                self.queued_bytes = size
            self._in_flight = len(batch)
            self._in_flight_bytes = size
            self._batch_number += 1
            return self._batch_number, batch

    def _settle(self, number: int, delivered: int) -> None:
        """Count batch *number* as *delivered*, the rest of it as dropped."""
        with self._lock:
            if number != self._batch_number or not self._in_flight:
                return  # close() gave up on it and counted it already
            delivered = max(0, min(delivered, self._in_flight))
            self.delivered += delivered
            if delivered < self._in_flight:
                self._drop(self._in_flight - delivered, self._detail or "undelivered")
            self.queued_bytes -= self._in_flight_bytes
            self._in_flight = self._in_flight_bytes = 0

    def _run(self) -> None:
        background_thread()
        try:
            self.warm_up()
        except Exception as error:
            diagnostics.failure(f"sink {self.name}", f"warm-up raised {error!r}")
        while True:
            self._wake.wait(self.batch_interval)
            self._wake.clear()
            while not self._closed:
                number, batch = self._take()
                if not batch:
                    break
                self._send(number, batch)
            self.report_drops()
            with self._idle:
                self._idle.notify_all()
            if self._closed:
                return

    def _send(self, number: int, batch: list[LogEvent]) -> None:
        try:
            delivered = self.deliver(batch)
        except Exception as error:
            delivered = 0
            self._failed("deliver", error)
        self._settle(number, delivered)

    def time_left(self) -> float | None:
        """Seconds left before `close()` gives up; None while not closing."""
        deadline = self._deadline
        return None if deadline is None else deadline - time.monotonic()

    def pause(self, seconds: float) -> bool:
        """Wait *seconds* on the background thread; False when closing ran out.

        `close()` cuts a wait short once, so that one more attempt is made
        within the drain time; later waits end at the drain limit.
        """
        self.report_drops()
        left = self.time_left()
        if left is None:
            self._closing.wait(seconds)
        elif left > 0:
            self._stopped.wait(min(seconds, left))
        left = self.time_left()
        return not self._closed and (left is None or left > 0)

    def _drop(self, count: int, reason: str) -> None:
        """Count *count* events as dropped for *reason* (holding the lock)."""
        self.dropped += count
        self._unreported[reason] = self._unreported.get(reason, 0) + count

    def report_drops(self) -> None:
        """Tell stderr, once, the events dropped since the last report and why."""
        with self._lock:
            if not self._unreported:
                return
            reasons, self._unreported = self._unreported, {}
            counts = (self.dropped, self.queue_depth, self.queued_bytes)
        told = "; ".join(f"{reason}: {count}" for reason, count in reasons.items())
        diagnostics.failure(
            f"sink {self.name}",
            f"{sum(reasons.values())} events dropped ({told}); {counts[0]} in all,"
            f" {counts[1]} queued, {counts[2]} bytes",
        )

    # Lifecycle.

    @property
    def queue_depth(self) -> int:
        """Events waiting for the background thread or in flight."""
        return len(self._queue) // 2 + self._in_flight

    def flush(self, timeout: float | None = None) -> None:
        """Wait until the queue is empty, at most *timeout* seconds."""
        if self._thread is None or not self._thread.is_alive():
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        self._wake.set()
        with self._idle:
            while self._pending():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return
                self._wake.set()
                self._idle.wait(0.05 if remaining is None else min(0.05, remaining))

    def _pending(self) -> bool:
        with self._lock:
            return bool(self._queue) or self._in_flight > 0

    def close(self, timeout: float | None = None) -> None:
        """Drain within *timeout*, then stop; what is left is counted as dropped."""
        drain = timeout
        if timeout is not None:
            self._deadline = time.monotonic() + timeout
            self._closing.set()
            drain = timeout - min(STOP_SECONDS, timeout / 2)
        self.flush(drain)
        with self._lock:
            self._closed = True
            left = len(self._queue) // 2 + self._in_flight
            self._queue.clear()
            self._in_flight = self._in_flight_bytes = self.queued_bytes = 0
            self._batch_number += 1
            if left:
                why = f"; last failure: {self._detail}" if self._detail else ""
                self._drop(left, f"unsent when the shutdown time ran out{why}")
        self._closing.set()
        self._stopped.set()
        self._wake.set()
        self.interrupt()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, self.time_left() or 0.0))
        self.report_drops()

    def after_fork(self) -> None:
        """Drop the parent's queue and counts; restart the thread on next use."""
        super().after_fork()
        self._queue.clear()
        self.queued_bytes = self._in_flight = self._in_flight_bytes = 0
        self.delivered = self.dropped = self.failures = 0
        self._unreported = {}
        self._reset_threading()

    def health(self) -> SinkHealth:
        """State and counts, with the queue's depth and bytes."""
        base = super().health()
        state = DOWN if self._closed else base.state
        return SinkHealth(
            base.name,
            state,
            base.detail,
            base.delivered,
            base.dropped,
            base.failures,
            self.queue_depth,
            self.queued_bytes,
        )
