"""Shared fixtures: every test starts and ends with logging unconfigured."""

from __future__ import annotations

import pytest

# The plugin is loaded here rather than from its entry point, so that the
# package is imported after coverage has started.
pytest_plugins = ["runtime_logging.testing", "pytester"]


@pytest.fixture(autouse=True)
def _fresh_logging(reset_logging):
    """Every test starts and ends with logging as a fresh process has it."""


class LogFile:
    """A configured set-up writing to a file in a temporary directory."""

    def __init__(self, tmp_path, **settings):
        from runtime_logging import configure_logging

        self.dir = tmp_path / "logs"
        options = {
            "env": {},
            "console": "off",
            "log_dir": str(self.dir),
            "handle_signals": False,
            "level": "debug",
        }
        options.update(settings)
        self.service = configure_logging(**options)

    @property
    def path(self):
        return self.dir / "app.log"

    def raw(self) -> bytes:
        self.service.flush()
        return self.path.read_bytes() if self.path.exists() else b""

    def lines(self) -> list[dict]:
        return [strict_loads(line) for line in self.raw().splitlines()]


def strict_loads(line):
    """Parse JSON refusing NaN and Infinity tokens."""
    import json

    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(line, parse_constant=refuse)


@pytest.fixture
def log_file(tmp_path):
    """Logging configured to a temporary file; `.lines()` reads it back."""
    return LogFile(tmp_path)


@pytest.fixture
def make_log_file(tmp_path):
    """A factory for `log_file` with other settings."""
    return lambda **settings: LogFile(tmp_path, **settings)
