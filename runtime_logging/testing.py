"""Helpers for testing code that logs, shipped as a pytest plugin.

Fixtures (available once the package is installed):

- ``reset_logging``: shuts down any set-up after the test and restores the
  stdlib's root logger, so tests don't leak handlers into each other;
- ``capture_events``: configures logging with a `CaptureSink` only and returns
  it; the events are the ones sinks see, after redaction.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from runtime_logging._pipeline import LogEvent
from runtime_logging._service import configure_logging, get_service
from runtime_logging.sinks import Sink


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

    def find(self, event: str, **fields: Any) -> list[dict[str, Any]]:
        """The events named *event* whose fields include *fields*."""
        return [
            f
            for f in self.fields
            if f.get("event") == event and all(f.get(k) == v for k, v in fields.items())
        ]

    def clear(self) -> None:
        """Forget what was captured."""
        self.events.clear()


def shutdown_logging() -> None:
    """End any active set-up and leave stdlib logging as a fresh process has it."""
    service = get_service()
    if service is not None:
        service.shutdown(timeout=5.0)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(logging.WARNING)


@pytest.fixture
def reset_logging() -> Iterator[None]:
    """Undo whatever logging set-up the test made."""
    yield
    shutdown_logging()


@pytest.fixture
def capture_events(reset_logging: None) -> CaptureSink:
    """Configure logging to capture events in memory only, and return the sink."""
    del reset_logging
    sink = CaptureSink()
    configure_logging(
        env={},
        console="off",
        log_dir="off",
        handle_signals=False,
        level="debug",
        sinks=[sink],
    )
    return sink
