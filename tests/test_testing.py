from __future__ import annotations

import logging
import weakref
from unittest.mock import ANY

import pytest
from scripts import run_script

from runtime_logging import (
    _stdlib,
    bind_context,
    configure_logging,
    get_context,
    get_logger,
)
from runtime_logging.testing import capturing, shutdown_logging


class TestAssertLogged:
    """`assert_logged` finds an event or says what was logged instead."""

    def test_finds_by_name_level_and_fields(self, capture_events):
        """The matching event's fields are returned."""
        get_logger("app").info("Installation finished", status="success", modules=3)

        found = capture_events.assert_logged(
            "Installation finished", level="info", status="success", modules=ANY
        )

        assert found["logger"] == "app"

    def test_events_are_seen_after_redaction(self, capture_events):
        """What the sinks see: the secret is already replaced."""
        logging.getLogger("lib").warning("login", extra={"password": "hunter2"})

        capture_events.assert_logged("login", password="[REDACTED:password]")

    def test_a_near_miss_names_the_differences(self, capture_events):
        """Same event name, other values: each difference is shown."""
        get_logger("app").info("Installation finished", status="failure")

        with pytest.raises(AssertionError) as failure:
            capture_events.assert_logged(
                "Installation finished", level="error", status="success"
            )

        expected = (
            "no event 'Installation finished' at level 'error' with "
            "status='success' was logged; 1 event(s) of that name differ:\n"
            "  - level='info' (wanted 'error'), status='failure' (wanted 'success')"
        )
        assert expected == str(failure.value)

    def test_a_miss_lists_what_was_captured(self, capture_events):
        """No event of that name: the captured events are listed."""
        get_logger("app").info("Cache hit")
        get_logger("app").warning("Cache miss")

        with pytest.raises(AssertionError) as failure:
            capture_events.assert_logged("Cache evicted")

        expected = (
            "no event 'Cache evicted' was logged; the 2 captured event(s):\n"
            "  - info 'Cache hit'\n"
            "  - warning 'Cache miss'"
        )
        assert expected == str(failure.value)

    def test_a_missing_field_is_not_none(self, capture_events):
        """A field asked to be None must be there and be None."""
        get_logger("app").info("Cache hit")

        with pytest.raises(AssertionError, match="key='<missing>'"):
            capture_events.assert_logged("Cache hit", key=None)

    def test_nothing_captured_says_so(self, capture_events):
        """An empty capture is named as such."""
        with pytest.raises(AssertionError, match="nothing was captured"):
            capture_events.assert_logged("anything")

    def test_assert_not_logged(self, capture_events):
        """Passes when absent; fails naming the first match."""
        get_logger("app").error("Download failed", host="a")

        capture_events.assert_not_logged("Download failed", host="b")
        with pytest.raises(AssertionError, match="but 1 were logged"):
            capture_events.assert_not_logged("Download failed", level="error")


class TestResetLogging:
    """After `shutdown_logging()` logging is as a fresh process has it."""

    def test_handlers_level_context_and_make_record(self, tmp_path, monkeypatch):
        """The set-up, the root logger, the bound context: all undone."""
        # No JSON formatter of another test keeps the toolkit's makeRecord.
        monkeypatch.setattr(_stdlib, "_make_record_keepers", weakref.WeakSet())
        root = logging.getLogger()
        configure_logging(env={}, console="off", log_dir="off", handle_signals=False)
        root.addHandler(logging.NullHandler())
        bind_context(request_id="r-1")

        shutdown_logging()

        assert root.handlers == []
        assert root.level == logging.WARNING
        assert dict(get_context()) == {}
        with pytest.raises(KeyError):
            logging.getLogger("x").warning("m", extra={"message": "clash"})  # noqa: G101

    def test_capturing_outside_pytest(self):
        """The context manager captures inside the block only."""
        with capturing(level="info") as sink:
            get_logger("app").debug("filtered")
            get_logger("app").info("kept")

        assert [f["event"] for f in sink.fields] == ["kept"]
        from runtime_logging import get_service

        assert get_service() is None

    def test_capturing_without_pytest_installed(self):
        """A program (no pytest there) imports the helpers and captures."""
        output = run_script(
            """
            import sys
            sys.modules["pytest"] = None  # as where it is not installed
            from runtime_logging import get_logger
            from runtime_logging.testing import capturing
            with capturing() as sink:
                get_logger("app").info("kept")
            print(sink.fields[0]["event"])
            """
        )
        assert output.strip() == "kept"


def test_the_plugin_in_a_users_project(pytester):
    """A user's test gets the fixtures and a readable failure."""
    pytester.makepyfile(
        """
        from runtime_logging import get_logger

        def test_ok(capture_events):
            get_logger("app").info("Installation finished", status="success")
            capture_events.assert_logged("Installation finished", status="success")

        def test_fails(capture_events):
            get_logger("app").info("Installation finished", status="failure")
            capture_events.assert_logged("Installation finished", status="success")
        """
    )

    result = pytester.runpytest_subprocess()

    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*status='failure' (wanted 'success')*"])


def test_caplog_beside_reset_logging(pytester):
    """pytest's own capture sees what a fixture logs after resetting logging."""
    pytester.makeconftest(
        """
        import logging
        import pytest

        @pytest.fixture
        def app(reset_logging):
            logging.getLogger("app").warning("set up")
        """
    )
    pytester.makepyfile(
        """
        import logging

        def test_caplog_sees_records(app, caplog):
            logging.getLogger("app").warning("called")
            setup = [r.getMessage() for r in caplog.get_records("setup")]
            call = [r.getMessage() for r in caplog.records]
            assert (setup, call) == (["set up"], ["called"])
        """
    )

    result = pytester.runpytest_subprocess()

    result.assert_outcomes(passed=1)
