"""Noisy logs: a rate limit per (logger, event, level), with summaries.

Each key has a token bucket: ``burst`` events pass at once, then ``rate``
events per second. What is over the limit is suppressed, counted, and told
by one summary event per key (``Log events suppressed``) that says how many
were suppressed and over how many seconds. A summary is written when the key
is let through again, at most every ``interval`` seconds while the flood
lasts, and at `flush()` (the service's flush and shutdown call it).

An event's name is its message before the ``%`` arguments (``"retry %d"``),
so a flood of one call with changing arguments is one key. Errors and above
are limited only as repeats of the same error (same logger, message as
written, exception type and message) unless ``errors`` says otherwise.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Hashable
from typing import Any

from runtime_logging.config import LEVELS, Settings
from runtime_logging.schema import STANDARD_KEYS

#: The summary's event name.
SUMMARY_EVENT = "Log events suppressed"
#: Keys remembered at most; past it, the oldest key is forgotten.
MAX_KEYS = 10_000
#: Seconds between summaries of a flood that goes on.
SUMMARY_INTERVAL = 10.0
_ERROR = 40
_limiters: weakref.WeakSet[RateLimiter] = weakref.WeakSet()


class _Bucket:
    __slots__ = ("first", "last", "name", "sample", "suppressed", "tokens")

    def __init__(self, tokens: float, now: float, name: object) -> None:
        self.name = name
        self.tokens = tokens
        self.last = now
        self.suppressed = 0
        self.first = now
        self.sample: dict[str, Any] = {}


class RateLimiter:
    """The pipeline's ``rate_limit`` step; `suppressed` counts what it held back."""

    def __init__(
        self,
        rate: float,
        burst: int,
        errors: str = "duplicates",
        *,
        max_keys: int = MAX_KEYS,
        interval: float = SUMMARY_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Let *burst* events of a key through at once, then *rate* per second."""
        self.rate = rate
        self.burst = max(1, burst)
        self.errors = errors
        self.max_keys = max_keys
        self.interval = interval
        #: Events suppressed since start, in all and by level name.
        self.suppressed = 0
        self.suppressed_by_level: Counter[str] = Counter()
        #: Delivers a summary's fields at a level; the service points it at
        #: the pipeline's fan-out.
        self.emit: Callable[[dict[str, Any], int], None] | None = None
        self._clock = clock
        self._lock = threading.RLock()
        self._buckets: dict[Hashable, _Bucket] = {}
        self._next_sweep = clock() + interval
        _limiters.add(self)

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter | None:
        """The limiter *settings* ask for, or None when ``rate_limit`` is 0."""
        if settings.rate_limit <= 0:
            return None
        return cls(
            settings.rate_limit, settings.rate_limit_burst, settings.rate_limit_errors
        )

    def __call__(
        self, fields: dict[str, Any], level: int, template: str | None = None
    ) -> dict[str, Any] | None:
        """Pass *fields* on, or None when its key is over the limit.

        *template* is the message before its ``%`` arguments: the event's
        name, so that ``"retry %d"`` is one key whatever the number.
        """
        name = fields.get("event") if template is None else template
        key: tuple[Any, ...] | None
        if level < _ERROR:
            key = (fields.get("logger"), name, level)
        else:
            key = self._error_key(fields, level, name)
            if key is None:
                return fields
        now = self._clock()
        summaries: list[tuple[dict[str, Any], int]] = []
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= self.max_keys:
                    self._forget_oldest(now, summaries)
                bucket = self._buckets[key] = _Bucket(self.burst, now, key[1])
            tokens = min(bucket.tokens + (now - bucket.last) * self.rate, self.burst)
            bucket.last = now
            if tokens >= 1:
                bucket.tokens = tokens - 1
                if bucket.suppressed:
                    summaries.append(self._summary(bucket, now, level))
                passed: dict[str, Any] | None = fields
            else:
                bucket.tokens = tokens
                self._suppress(bucket, fields, now)
                passed = None
            if now >= self._next_sweep:
                self._sweep(now, summaries)
        if summaries:
            self._deliver(summaries)
        return passed

    def flush(self) -> None:
        """Write the summary of every key with suppressed events now."""
        now = self._clock()
        with self._lock:
            summaries = [
                self._summary(bucket, now)
                for bucket in self._buckets.values()
                if bucket.suppressed
            ]
        self._deliver(summaries)

    def after_fork(self) -> None:
        """Give a forked child a lock nobody holds."""
        self._lock = threading.RLock()

    def _suppress(self, bucket: _Bucket, fields: dict[str, Any], now: float) -> None:
        if not bucket.suppressed:
            bucket.first = now
        bucket.suppressed += 1
        bucket.sample = fields
        self.suppressed += 1
        self.suppressed_by_level[str(fields.get("level"))] += 1

    def _error_key(
        self, fields: dict[str, Any], level: int, name: object
    ) -> tuple[Any, ...] | None:
        if self.errors == "never":
            return None
        if self.errors == "all":
            return (fields.get("logger"), name, level)
        # Only repeats of one error: its message as written, its exception.
        key = (fields.get("logger"), fields.get("event"), level)
        exception = fields.get("exception")
        if self.errors == "duplicates" and isinstance(exception, dict):
            return (*key, exception.get("type"), exception.get("message"))
        return key

    def _summary(
        self, bucket: _Bucket, now: float, level: int | None = None
    ) -> tuple[dict[str, Any], int]:
        sample = bucket.sample
        fields = {key: sample[key] for key in STANDARD_KEYS if key in sample}
        fields["event"] = SUMMARY_EVENT
        fields["suppressed_event"] = bucket.name
        fields["suppressed"] = bucket.suppressed
        fields["suppressed_seconds"] = round(max(0.0, now - bucket.first), 6)
        fields["rate_limit"] = self.rate
        fields["rate_limit_burst"] = self.burst
        bucket.suppressed = 0
        bucket.sample = {}
        if level is None:
            level = _level_number(sample)
        return fields, level

    def _sweep(self, now: float, summaries: list[tuple[dict[str, Any], int]]) -> None:
        self._next_sweep = now + self.interval
        idle = []
        for key, bucket in self._buckets.items():
            if bucket.suppressed and now - bucket.first >= self.interval:
                summaries.append(self._summary(bucket, now))
            elif not bucket.suppressed and (
                bucket.tokens + (now - bucket.last) * self.rate >= self.burst
            ):
                idle.append(key)
        for key in idle:
            del self._buckets[key]

    def _forget_oldest(
        self, now: float, summaries: list[tuple[dict[str, Any], int]]
    ) -> None:
        oldest = next(iter(self._buckets))
        bucket = self._buckets.pop(oldest)
        if bucket.suppressed:
            summaries.append(self._summary(bucket, now))

    def _deliver(self, summaries: list[tuple[dict[str, Any], int]]) -> None:
        emit = self.emit
        if emit is None:
            return
        for fields, level in summaries:
            emit(fields, level)


def _level_number(fields: dict[str, Any]) -> int:
    return LEVELS.get(str(fields.get("level")), 0)


def _after_fork_in_child() -> None:
    for limiter in list(_limiters):
        limiter.after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
