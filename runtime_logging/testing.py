"""Helpers for testing code that logs, shipped as a pytest plugin.

Fixtures (available once the package is installed):

- ``capture_events``: configures logging with a `CaptureSink` only and
  returns it; the events are the ones sinks see, after redaction::

      def test_install(capture_events):
          install("python-tools")
          capture_events.assert_logged(
              "Installation finished", level="info", status="success"
          )

- ``reset_logging``: leaves logging as a fresh process has it before and
  after the test (no set-up, the root logger's handlers and level restored,
  no bound context), so tests don't leak handlers into each other. Make it
  automatic in a ``conftest.py``::

      @pytest.fixture(autouse=True)
      def _clean_logging(reset_logging): ...

Outside pytest, `capturing()` does what ``capture_events`` does.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from runtime_logging import _stdlib
from runtime_logging._pipeline import LogEvent
from runtime_logging._service import configure_logging, get_service
from runtime_logging.context import clear_context
from runtime_logging.sinks import Sink

#: How many captured events a failure message lists at most.
SHOWN_IN_FAILURES = 20


class CaptureSink(Sink):
    """Keeps every event it receives, in order."""

    name = "capture"

    def __init__(self, min_level: int = 0) -> None:
        """Start with no events."""
        super().__init__(min_level)
        self.events: list[LogEvent] = []

    def emit(self, event: LogEvent) -> None:
        """Keep *event*."""
        self.events.append(event)
        self.delivered += 1

    @property
    def fields(self) -> list[dict[str, Any]]:
        """The fields of every event, as the JSON line has them."""
        return [event.fields for event in self.events]

    @property
    def lines(self) -> list[bytes]:
        """The JSON line of every event."""
        return [event.json_line for event in self.events]

    def find(
        self, event: str, level: str | None = None, **fields: Any
    ) -> list[dict[str, Any]]:
        """The events named *event* (at *level*) whose fields include *fields*."""
        return [
            found
            for found in self.fields
            if found.get("event") == event
            and (level is None or found.get("level") == level)
            and _has(found, fields)
        ]

    def assert_logged(
        self, event: str, level: str | None = None, **fields: Any
    ) -> dict[str, Any]:
        """The first event named *event* with *fields*; fails with what was seen.

        Fields compare with ``==``, so `unittest.mock.ANY` matches any value.
        """
        found = self.find(event, level, **fields)
        if not found:
            raise AssertionError(self._describe_miss(event, level, fields))
        return found[0]

    def assert_not_logged(
        self, event: str, level: str | None = None, **fields: Any
    ) -> None:
        """Fail when an event named *event* with *fields* was captured."""
        found = self.find(event, level, **fields)
        if found:
            raise AssertionError(
                f"expected no {_wanted(event, level, fields)}, "
                f"but {len(found)} were logged; the first: {found[0]!r}"
            )

    def clear(self) -> None:
        """Forget what was captured."""
        self.events.clear()

    def _describe_miss(
        self, event: str, level: str | None, fields: dict[str, Any]
    ) -> str:
        wanted = {"level": level, **fields} if level is not None else fields
        same_name = [f for f in self.fields if f.get("event") == event]
        message = f"no {_wanted(event, level, fields)} was logged;"
        if same_name:
            message += f" {len(same_name)} event(s) of that name differ:"
            for found in same_name[:SHOWN_IN_FAILURES]:
                differences = ", ".join(
                    f"{key}={found.get(key, '<missing>')!r} (wanted {value!r})"
                    for key, value in wanted.items()
                    if key not in found or found[key] != value
                )
                message += f"\n  - {differences}"
            return message
        seen = [f"{f.get('level')} {f.get('event')!r}" for f in self.fields]
        if not seen:
            return message + " nothing was captured."
        message += f" the {len(seen)} captured event(s):"
        message += "".join(f"\n  - {line}" for line in seen[:SHOWN_IN_FAILURES])
        if len(seen) > SHOWN_IN_FAILURES:
            message += f"\n  ... and {len(seen) - SHOWN_IN_FAILURES} more"
        return message


def _has(found: dict[str, Any], fields: dict[str, Any]) -> bool:
    return all(key in found and found[key] == value for key, value in fields.items())


def _wanted(event: str, level: str | None, fields: dict[str, Any]) -> str:
    text = f"event {event!r}"
    if level is not None:
        text += f" at level {level!r}"
    if fields:
        text += " with " + ", ".join(f"{k}={v!r}" for k, v in fields.items())
    return text


def shutdown_logging() -> None:
    """End any active set-up and leave logging as a fresh process has it."""
    service = get_service()
    if service is not None:
        service.shutdown(timeout=5.0)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(logging.WARNING)
    _stdlib.restore_logger_methods()
    clear_context()


@contextmanager
def capturing(level: str = "debug", **settings: Any) -> Iterator[CaptureSink]:
    """Configure logging to capture events in memory only, inside the block.

    *settings* go to `configure_logging()`; the console and the file are off.
    """
    sink = CaptureSink()
    options: dict[str, Any] = {
        "env": {},
        "console": "off",
        "log_dir": "off",
        "handle_signals": False,
        "level": level,
        **settings,
    }
    configure_logging(sinks=[sink], **options)
    try:
        yield sink
    finally:
        shutdown_logging()


try:
    import pytest
except ImportError:  # pragma: no cover - the helpers above work without it
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    def _reset_beside_pytest() -> None:
        """`shutdown_logging`, pytest's own capture handlers (``caplog``) kept."""
        root = logging.getLogger()
        pytests = [h for h in root.handlers if type(h).__module__ == "_pytest.logging"]
        shutdown_logging()
        for handler in pytests:
            root.addHandler(handler)

    @pytest.fixture
    def reset_logging() -> Iterator[None]:
        """Start and end the test with logging as a fresh process has it."""
        _reset_beside_pytest()
        yield
        _reset_beside_pytest()

    @pytest.fixture
    def capture_events(reset_logging: None) -> Iterator[CaptureSink]:
        """Capture events in memory only, as sinks see them; the sink is returned."""
        del reset_logging
        with capturing() as sink:
            yield sink
