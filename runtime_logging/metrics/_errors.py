"""Which events are errors, of which type and severity: one rule for live and files.

Both the live metrics sink and ``runtime-logging stats`` call `classify` with
the event's fields exactly as its JSON line has them, so that the two always
agree on the same events.
"""

from __future__ import annotations

import builtins
import calendar
import fnmatch
from collections.abc import Iterable, Mapping
from typing import Any

from runtime_logging.errors import ConfigurationError

ERROR_TYPES = ("domain", "application", "infrastructure")
SEVERITIES = ("warning", "error", "fatal")

#: The severity of each level that counts as an error.
SEVERITY_OF_LEVEL = {"warning": "warning", "error": "error", "critical": "fatal"}

#: The field that names an event's error type outright.
ERROR_TYPE_FIELD = "errorType"

#: Exceptions that are infrastructure unless configured otherwise: the
#: built-in OS errors (disk, permissions, connections, timeouts) and the
#: network errors of the standard library and the common HTTP clients.
DEFAULT_INFRASTRUCTURE = (
    *sorted(
        name
        for name, value in vars(builtins).items()
        if isinstance(value, type) and issubclass(value, OSError)
    ),
    "socket.*",
    "ssl.*",
    "http.client.*",
    "urllib.error.*",
    "urllib3.exceptions.*",
    "requests.exceptions.*",
    "httpx.*Error",
    "httpx.*Timeout",
)

#: How deep the cause and context chain of an exception is followed.
_MAX_CHAIN = 20


class ErrorClassifier:
    """Decides whether an event is an error, and its type and severity.

    Rules, first match wins:

    1. an ``errorType`` field whose value is one of `ERROR_TYPES`;
    2. the exception's type name, then those of its causes and contexts,
       against the configured name patterns (``fnmatch``, so
       ``urllib3.exceptions.*``), domain first, then infrastructure, then
       application;
    3. the longest configured logger-name prefix;
    4. ``application``.

    Only events at ``warning`` and above are errors, and an exception that
    an earlier line already logged (``exception.repeated``) is not counted
    again.
    """

    def __init__(
        self,
        infrastructure: Iterable[str] = (),
        domain: Iterable[str] = (),
        application: Iterable[str] = (),
        loggers: Mapping[str, str] | None = None,
        *,
        replace_defaults: bool = False,
    ) -> None:
        """Add exception name patterns and logger prefixes to the defaults."""
        defaults = () if replace_defaults else DEFAULT_INFRASTRUCTURE
        self.patterns = (
            ("domain", tuple(domain)),
            ("infrastructure", (*defaults, *infrastructure)),
            ("application", tuple(application)),
        )
        self.loggers = dict(loggers or {})
        for prefix, kind in self.loggers.items():
            if kind not in ERROR_TYPES:
                raise ConfigurationError(
                    f"`errors.loggers` maps {prefix!r} to {kind!r}; "
                    f"use one of {', '.join(ERROR_TYPES)}."
                )
        self._by_name: dict[str, str | None] = {}

    def classify(self, fields: Mapping[str, Any]) -> tuple[str, str] | None:
        """``(type, severity)`` when *fields* are a countable error, else None."""
        severity = SEVERITY_OF_LEVEL.get(fields.get("level"))  # type: ignore[arg-type]
        if severity is None:
            return None
        exception = fields.get("exception")
        # dict, not Mapping: an ABC check costs more than the rest of the step.
        if isinstance(exception, dict) and exception.get("repeated") is True:
            return None
        explicit = fields.get(ERROR_TYPE_FIELD)
        if explicit in ERROR_TYPES:
            return explicit, severity
        if isinstance(exception, dict):
            kind = self._exception_type(exception)
            if kind is not None:
                return kind, severity
        return self._logger_type(str(fields.get("logger", ""))), severity

    def _exception_type(self, exception: Mapping[str, Any]) -> str | None:
        for _ in range(_MAX_CHAIN):
            kind = self._type_of(str(exception.get("type", "")))
            if kind is not None:
                return kind
            linked = exception.get("cause") or exception.get("context")
            if not isinstance(linked, dict):
                return None
            exception = linked
        return None

    def _type_of(self, name: str) -> str | None:
        try:
            return self._by_name[name]
        except KeyError:
            pass
        found = None
        for kind, patterns in self.patterns:
            if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns):
                found = kind
                break
        if len(self._by_name) < 4096:
            self._by_name[name] = found
        return found

    def _logger_type(self, logger: str) -> str:
        name = logger
        while name:
            kind = self.loggers.get(name)
            if kind is not None:
                return kind
            name = name.rpartition(".")[0]
        return "application"


class ErrorWindow:
    """Errors per second of each severity over a sliding window.

    The window holds whole seconds: the rate at second *t* is the number of
    errors stamped in the seconds ``t - window + 1`` to ``t``, divided by
    the window's length.
    """

    def __init__(self, window: int) -> None:
        """Count over the last *window* seconds (1 or more)."""
        self.window = window
        self._slots: dict[tuple[str, int], tuple[int, int]] = {}

    def add(self, severity: str, second: int, amount: int = 1) -> int:
        """Count an error at *second*; returns the second's new count."""
        key = (severity, second % self.window)
        stamp, count = self._slots.get(key, (second, 0))
        count = count + amount if stamp == second else amount
        self._slots[key] = (second, count)
        return count

    def slots(self) -> Iterable[tuple[str, int, int]]:
        """``(severity, second, count)`` of each slot in use."""
        for (severity, _), (second, count) in list(self._slots.items()):
            yield severity, second, count

    def rates(self, now: int) -> dict[str, float]:
        """Errors per second of each severity in the window ending at *now*."""
        return rates_from_slots(self.slots(), now, self.window)


def rates_from_slots(
    slots: Iterable[tuple[str, int, float]], now: int, window: int
) -> dict[str, float]:
    """Per-second rate of each severity from ``(severity, second, count)`` slots."""
    totals = dict.fromkeys(SEVERITIES, 0.0)
    for severity, second, count in slots:
        if now - window < second <= now and severity in totals:
            totals[severity] += count
    return {severity: total / window for severity, total in totals.items()}


def timestamp_second(timestamp: str) -> int | None:
    """The Unix second of an RFC 3339 UTC timestamp of the JSON line."""
    try:
        return calendar.timegm(
            (
                int(timestamp[0:4]),
                int(timestamp[5:7]),
                int(timestamp[8:10]),
                int(timestamp[11:13]),
                int(timestamp[14:16]),
                int(timestamp[17:19]),
                0,
                0,
                0,
            )
        )
    except (ValueError, TypeError, IndexError):
        return None
