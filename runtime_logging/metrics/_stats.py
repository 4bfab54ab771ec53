"""Error counts and rates from JSON log lines, as the live counters count them."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from runtime_logging.config import LEVELS
from runtime_logging.metrics._errors import (
    ERROR_TYPES,
    SEVERITIES,
    ErrorClassifier,
    ErrorWindow,
    timestamp_second,
)


def instant(second: int) -> str:
    """The RFC 3339 UTC form of a Unix *second*."""
    return dt.datetime.fromtimestamp(second, dt.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


class ErrorStats:
    """Counts events by level and errors by type, severity and time window."""

    def __init__(
        self, classifier: ErrorClassifier, window: int, bucket: int = 60
    ) -> None:
        """Rates over *window* seconds; the breakdown in *bucket*-second windows."""
        self.classifier = classifier
        self.window = ErrorWindow(window)
        self.bucket = bucket
        self.events = 0
        self.unreadable = 0
        self.levels: Counter[str] = Counter()
        self.types: Counter[str] = Counter()
        self.severities: Counter[str] = Counter()
        self.buckets: dict[int, Counter[tuple[str, str]]] = {}
        self.last_second: int | None = None

    def add(self, fields: Mapping[str, Any]) -> None:
        """Count one event's *fields*, as its JSON line has them.

        Raises:
            TypeError: a standard key holds what no line of ours does (a list
                as ``level``); nothing is counted.
        """
        # First: it refuses such fields before anything is counted.
        found = self.classifier.classify(fields)
        second = timestamp_second(str(fields.get("timestamp", "")))
        self.events += 1
        level = fields.get("level")
        if isinstance(level, str):
            self.levels[level] += 1
        if second is not None and (
            self.last_second is None or second > self.last_second
        ):
            self.last_second = second
        if found is None:
            return
        kind, severity = found
        self.types[kind] += 1
        self.severities[severity] += 1
        if second is not None:
            self.window.add(severity, second)
            start = second - second % self.bucket
            self.buckets.setdefault(start, Counter())[kind, severity] += 1

    def add_all(self, lines: Iterable[Mapping[str, Any] | None]) -> None:
        """Count every parsed line; None stands for a line that was not JSON.

        A line whose fields can't be counted is unreadable too.
        """
        for fields in lines:
            if fields is None:
                self.unreadable += 1
                continue
            try:
                self.add(fields)
            except (TypeError, ValueError, RecursionError):
                self.unreadable += 1

    def report(self, at: int | None = None) -> dict[str, Any]:
        """Everything counted, with the error rate over the window ending *at*."""
        at = self.last_second if at is None else at
        rates = (
            self.window.rates(at) if at is not None else dict.fromkeys(SEVERITIES, 0.0)
        )
        return {
            "events": self.events,
            "unreadable_lines": self.unreadable,
            "levels": {level: self.levels[level] for level in LEVELS},
            "errors": {
                "total": sum(self.types.values()),
                "by_type": {kind: self.types[kind] for kind in ERROR_TYPES},
                "by_severity": {s: self.severities[s] for s in SEVERITIES},
            },
            "error_rate": {
                "window_seconds": self.window.window,
                "at": None if at is None else instant(at),
                "per_second": rates,
            },
            "windows": [
                {
                    "start": instant(start),
                    "seconds": self.bucket,
                    "by_type": {
                        kind: sum(n for (k, _), n in counts.items() if k == kind)
                        for kind in ERROR_TYPES
                    },
                    "by_severity": {
                        sev: sum(n for (_, s), n in counts.items() if s == sev)
                        for sev in SEVERITIES
                    },
                    "per_second": sum(counts.values()) / self.bucket,
                }
                for start, counts in sorted(self.buckets.items())
            ],
        }


def render_table(report: Mapping[str, Any]) -> str:
    """The report as a few plain-text tables."""
    errors = report["errors"]
    lines = [f"events: {report['events']}", ""]
    lines.append("errors by type          count")
    lines.extend(f"  {k:<20}{v:>7}" for k, v in errors["by_type"].items())
    lines.append(f"  {'total':<20}{errors['total']:>7}")
    lines.append("")
    rate = report["error_rate"]
    lines.append(
        f"errors by severity      count   per second over {rate['window_seconds']}s"
        f" to {rate['at']}"
    )
    lines.extend(
        f"  {s:<20}{n:>7}   {rate['per_second'][s]:.4f}"
        for s, n in errors["by_severity"].items()
    )
    if report["windows"]:
        lines.append("")
        lines.append(
            "window start             "
            + " ".join(f"{k[:5]:>6}" for k in ERROR_TYPES)
            + " "
            + " ".join(f"{s[:5]:>6}" for s in SEVERITIES)
            + "   per second"
        )
        lines.extend(
            f"{window['start']:<25}"
            + " ".join(f"{n:>6}" for n in window["by_type"].values())
            + " "
            + " ".join(f"{n:>6}" for n in window["by_severity"].values())
            + f"   {window['per_second']:.4f}"
            for window in report["windows"]
        )
    unreadable = report["unreadable_lines"]
    if unreadable:
        lines.append("")
        lines.append(f"unreadable lines (not JSON, or not a record): {unreadable}")
    return "\n".join(lines) + "\n"
