"""Shared fixtures: every test starts and ends with logging unconfigured."""

from __future__ import annotations

import pytest

from runtime_logging.testing import shutdown_logging


@pytest.fixture(autouse=True)
def _fresh_logging():
    shutdown_logging()
    yield
    shutdown_logging()
