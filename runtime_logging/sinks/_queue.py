"""The delivery machinery network sinks share.

A bounded queue on the caller's side, a background thread on the other.

Contract: ``emit()`` only appends to the queue (no I/O, no waiting). When the
queue holds ``max_entries`` events or ``max_bytes`` bytes, the new event is
dropped and counted; ``delivered + dropped + queued == accepted + dropped``
at every moment. The thread is started on first use and again in a forked
child (whose copy of the parent's queue is discarded: the parent delivers
it). ``flush()`` and ``close()`` wait at most their timeout.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from collections.abc import Sequence

from runtime_logging._pipeline import LogEvent, internal_thread
from runtime_logging.sinks import DOWN, Sink, SinkHealth


class QueuedSink(Sink):
    """Base for sinks whose delivery happens on a background thread.

    Subclasses implement `deliver`, and may override `measure`.
    """

    name = "queued"

    def __init__(
        self,
        *,
        max_entries: int = 10_000,
        max_bytes: int = 16 * 1000**2,
        batch_entries: int = 1000,
        batch_interval: float = 1.0,
        min_level: int = 0,
    ) -> None:
        """Queue at most *max_entries* events or *max_bytes* bytes."""
        super().__init__(min_level)
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.batch_entries = batch_entries
        self.batch_interval = batch_interval
        self.queued_bytes = 0
        self._queue: collections.deque[tuple[LogEvent, int]] = collections.deque()
        self._in_flight = 0
        self._closed = False
        self._reset_threading()

    def _reset_threading(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    # What subclasses provide.

    def measure(self, event: LogEvent) -> int:
        """The bytes *event* holds in the queue; its JSON line by default."""
        return len(event.json_line)

    def deliver(self, batch: Sequence[LogEvent]) -> int:
        """Send *batch*; return how many of its events were delivered."""
        raise NotImplementedError

    # The caller's side.

    def emit(self, event: LogEvent) -> None:
        """Queue *event*, or drop and count it when the queue is full."""
        if self._closed:
            self.dropped += 1
            return
        size = self.measure(event)
        with self._lock:
            if (
                len(self._queue) >= self.max_entries
                or self.queued_bytes + size > self.max_bytes
            ):
                self.dropped += 1
                return
            self._queue.append((event, size))
            self.queued_bytes += size
            if len(self._queue) >= self.batch_entries:
                self._wake.set()
        if self._thread is None or self._pid != os.getpid():
            self._start()

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None and self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._thread = threading.Thread(
                target=self._run, name=f"runtime_logging-{self.name}", daemon=True
            )
            self._thread.start()

    # The background side.

    def _take(self) -> list[LogEvent]:
        with self._lock:
            count = min(len(self._queue), self.batch_entries)
            batch = [self._queue.popleft() for _ in range(count)]
            self.queued_bytes -= sum(size for _, size in batch)
            self._in_flight = len(batch)
        return [event for event, _ in batch]

    def _run(self) -> None:
        internal_thread.active = True
        while True:
            self._wake.wait(self.batch_interval)
            self._wake.clear()
            while True:
                batch = self._take()
                if not batch:
                    break
                self._send(batch)
            with self._idle:
                self._in_flight = 0
                self._idle.notify_all()
            if self._closed and not self._queue:
                return

    def _send(self, batch: list[LogEvent]) -> None:
        try:
            delivered = self.deliver(batch)
        except Exception as error:
            delivered = 0
            self._failed("deliver", error)
        delivered = max(0, min(delivered, len(batch)))
        self.delivered += delivered
        self.dropped += len(batch) - delivered

    # Lifecycle.

    @property
    def queue_depth(self) -> int:
        """Events waiting for the background thread."""
        return len(self._queue) + self._in_flight

    def flush(self, timeout: float | None = None) -> None:
        """Wait until the queue is empty, at most *timeout* seconds."""
        if self._thread is None or not self._thread.is_alive():
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        self._wake.set()
        with self._idle:
            while self._queue or self._in_flight:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return
                self._wake.set()
                self._idle.wait(0.05 if remaining is None else min(0.05, remaining))

    def close(self, timeout: float | None = None) -> None:
        """Drain within *timeout*, then stop; what is left is counted as dropped."""
        self.flush(timeout)
        self._closed = True
        self._wake.set()
        with self._lock:
            left = len(self._queue)
            self._queue.clear()
            self.queued_bytes = 0
        self.dropped += left

    def after_fork(self) -> None:
        """Drop the parent's queue copy and restart the thread on next use."""
        super().after_fork()
        self._queue.clear()
        self.queued_bytes = 0
        self._in_flight = 0
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
