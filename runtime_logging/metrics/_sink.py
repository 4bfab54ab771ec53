"""The metrics sink: every event that passes the pipeline updates counters.

Delivery contract: ``emit()`` updates numbers in memory (and, with a metrics
directory, this process's mmap files); it does no other I/O and never
blocks on a scrape for longer than a lock held for one update.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from prometheus_client.metrics_core import Metric

from runtime_logging._pipeline import LogEvent
from runtime_logging.config import LEVELS, Settings
from runtime_logging.errors import ConfigurationError
from runtime_logging.metrics._errors import ERROR_TYPES
from runtime_logging.metrics._http import MetricsApp, MetricsServer
from runtime_logging.metrics._process import (
    ProcessSampler,
    count_start,
    runtime_families,
)
from runtime_logging.metrics._rules import Family, Rule, RuleSet, load_rules
from runtime_logging.metrics._store import Recorder
from runtime_logging.ratelimit import SUMMARY_EVENT
from runtime_logging.sinks import Sink, SinkHealth


class _HealthSource(Protocol):
    def health(self) -> dict[str, SinkHealth]: ...


class MetricsSink(Sink):
    """Counts events, errors and rule matches; serves them to scrapes."""

    name = "metrics"

    def __init__(
        self, settings: Settings, rules: RuleSet | Mapping[str, Any] | None = None
    ) -> None:
        """Build the families for *settings* (and *rules*, else its rules file).

        Raises:
            ConfigurationError: the rules or the metrics directory are unusable.
        """
        super().__init__()
        prefix = settings.prefix
        if rules is None or isinstance(rules, Mapping):
            rules = load_rules(
                settings.metrics_rules if rules is None else rules, prefix
            )
        self.prefix = prefix
        self.rules = rules
        self.settings = settings
        window = int(settings.metrics_error_window)
        if window < 1:
            raise ConfigurationError(
                f"`metrics_error_window` is {settings.metrics_error_window!r}; "
                "expected at least 1 second, such as '60s'."
            )
        self.errors = Family(
            prefix + "errors_total",
            "counter",
            "Errors logged (warning and above), by type.",
            ("type",),
            known=tuple((kind,) for kind in ERROR_TYPES),
        )
        self.events = Family(
            prefix + "log_events_total",
            "counter",
            "Events logged, by level.",
            ("level",),
            known=tuple((level,) for level in LEVELS),
        )
        self.suppressed = Family(
            prefix + "log_events_suppressed_total",
            "counter",
            "Events the rate limit held back, by level (counted from its summaries).",
            ("level",),
            known=tuple((level,) for level in LEVELS),
        )
        self.health_checks = Family(
            prefix + "health_check_duration_seconds",
            "histogram",
            "How long asking a component for its health took.",
            ("component",),
            (0.00001, 0.0001, 0.001, 0.01, 0.1, 1.0),
        )
        taken = {
            self.errors.name,
            self.events.name,
            self.suppressed.name,
            self.health_checks.name,
        }
        for family in rules.families:
            if family.name in taken or family.name.startswith(prefix + "log_"):
                raise ConfigurationError(
                    f"`metrics_rules` defines {family.name!r}, a name the toolkit "
                    "uses for its own metrics; rename the rule's metric."
                )
        self.directory = _metrics_dir(settings.metrics_dir)
        self.recorder = Recorder(
            (
                self.errors,
                self.events,
                self.suppressed,
                self.health_checks,
                *rules.families,
            ),
            self.directory,
            window,
        )
        self._classify = rules.classifier.classify
        self._by_event = rules.rules
        self._sampler = ProcessSampler()
        self.restarts = count_start(self.directory or settings.log_dir)
        #: Rule updates skipped because the event lacked a usable number.
        self.skipped = 0
        self._source: _HealthSource | None = None
        self._collect_lock = threading.Lock()
        self.server: MetricsServer | None = None
        if settings.metrics_address:
            self.server = MetricsServer(
                settings.metrics_address, MetricsApp(lambda: (self, {}))
            )

    def attach(self, source: _HealthSource) -> None:
        """Report the health of *source*'s sinks (the `LoggingService`)."""
        self._source = source

    # The hot path.

    def emit(self, event: LogEvent) -> None:
        """Count *event* by level, as an error, and by the rules for its name."""
        fields = event.fields
        recorder = self.recorder
        name = fields["event"]
        rules = self._by_event.get(name)
        # ``with``, not acquire() and try: a signal handler that raises just
        # after acquire() returned would leave the lock held for good.
        with recorder.lock:
            recorder.add_unlocked(self.events, (fields["level"],), 1.0)
            if event.level >= 30:
                found = self._classify(fields)
                if found is not None:
                    recorder.count_error_unlocked(
                        self.errors, found[0], found[1], event.time_ns // 1_000_000_000
                    )
            if name == SUMMARY_EVENT:
                self._count_suppressed(fields)
            if rules is not None:
                for rule in rules:
                    self._apply(rule, fields)
        self.delivered += 1

    def _count_suppressed(self, fields: Mapping[str, Any]) -> None:
        # The summary, not the limiter's own counter, so that pre-fork
        # workers' suppressions reach the shared files like every count.
        suppressed = fields.get("suppressed")
        if type(suppressed) is int and suppressed > 0:
            self.recorder.add_unlocked(self.suppressed, (fields["level"],), suppressed)

    def _apply(self, rule: Rule, fields: Mapping[str, Any]) -> None:
        if rule.when and not rule.matches(fields):
            return
        number = rule.number(fields) if rule.value_field else rule.amount
        if number is None:
            # The event lacks a number the rule can use (a counter takes none
            # below 0): that update is skipped, the event is delivered.
            self.skipped += 1
            return
        labels = (
            tuple([label.value(fields) for label in rule.labels]) if rule.labels else ()
        )
        action = rule.action
        recorder = self.recorder
        if action == "inc":
            recorder.add_unlocked(rule.family, labels, number)
        elif action == "dec":
            recorder.add_unlocked(rule.family, labels, -number)
        elif action == "set":
            recorder.set_unlocked(rule.family, labels, number)
        else:
            recorder.observe_unlocked(rule.family, labels, number)

    # Scrapes.

    def collect(self) -> list[Metric]:
        """Every family, as a scrape now should see it."""
        with self._collect_lock:
            report = self.timed_health()
            families = self.recorder.collect()
            families.extend(
                runtime_families(
                    self.prefix,
                    report,
                    self._sampler,
                    self.restarts,
                    [self.settings.log_dir] if self.settings.log_dir else [],
                    self.recorder.error_rates(int(time.time())),
                )
            )
            return families

    def timed_health(self) -> dict[str, SinkHealth]:
        """The health of every sink, each check timed into a histogram."""
        if self._source is None:
            return {self.name: self.health()}
        report = {}
        for sink in getattr(self._source, "sinks", ()):
            start = time.perf_counter()
            health = getattr(sink, "health", None)
            state = health() if health else SinkHealth(sink.name)
            self.recorder.observe(
                self.health_checks, (sink.name,), time.perf_counter() - start
            )
            report[sink.name] = state
        return report

    # Lifecycle.

    def close(self, timeout: float | None = None) -> None:
        """Stop serving and unmap this process's files."""
        del timeout
        server, self.server = self.server, None
        if server is not None:
            server.stop()
        self.recorder.close()

    def after_fork(self) -> None:
        """Count this worker's events in its own files; the parent serves scrapes."""
        super().after_fork()
        self._collect_lock = threading.Lock()
        self.delivered = 0
        if self.server is not None:
            self.server.forget()
            self.server = None
        self.recorder.after_fork()


def _metrics_dir(path: Path | None) -> Path | None:
    if path is None:
        return None
    try:
        os.makedirs(path, mode=0o750, exist_ok=True)
        probe = path / f".probe-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as error:
        raise ConfigurationError(
            f"`metrics_dir` is {str(path)!r}, which can't be used ({error.strerror}); "
            "point it (or PROMETHEUS_MULTIPROC_DIR) at a writable directory that "
            "only this service uses, or unset it for one process."
        ) from None
    return path
