"""configure_logging() and the LoggingService: set-up, replacement, errors."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import threading

import pytest

from runtime_logging import ConfigurationError, configure_logging, get_service
from runtime_logging._stdlib import PipelineHandler
from runtime_logging.sinks.console import ConsoleSink


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class TestReplacement:
    def test_configure_twice_replaces(self, tmp_path):
        """Configuring again leaves one handler, no new threads, no leaked files."""
        options = {"env": {}, "console": "off", "handle_signals": False}
        configure_logging(log_dir=str(tmp_path / "a"), **options).get_logger().info("1")
        threads, fds = threading.active_count(), _open_fds()

        for number in range(5):
            configure_logging(log_dir=str(tmp_path / "a"), **options).get_logger().info(
                str(number)
            )

        handlers = [
            h for h in logging.getLogger().handlers if isinstance(h, PipelineHandler)
        ]
        assert len(handlers) == 1
        assert threading.active_count() <= threads
        assert _open_fds() == fds
        assert (tmp_path / "a" / "app.log").read_text().count("\n") == 6

    def test_shutdown_restores_stdlib(self, tmp_path):
        """After shutdown the root logger has its old handlers and level back."""
        root = logging.getLogger()
        own = logging.StreamHandler(io.StringIO())
        root.addHandler(own)
        root.setLevel(logging.ERROR)

        service = configure_logging(env={}, console="off", log_dir=str(tmp_path))
        assert root.handlers == [service._handler]
        service.shutdown()

        assert root.handlers == [own]
        assert root.level == logging.ERROR
        assert get_service() is None

    def test_calls_after_shutdown_are_silent(self, tmp_path):
        """A logger used after shutdown neither raises nor writes."""
        service = configure_logging(env={}, console="off", log_dir=str(tmp_path))
        log = service.get_logger("late")
        service.shutdown()

        log.error("after")

        assert (tmp_path / "app.log").read_text() == ""


class TestConfigurationErrors:
    def test_unwritable_log_dir(self, tmp_path):
        """A log_dir that can't hold the file fails at configuration time."""
        blocker = tmp_path / "file"
        blocker.write_text("")

        with pytest.raises(ConfigurationError, match=r"`log_dir`.*'off' for no file"):
            configure_logging(env={}, console="off", log_dir=str(blocker / "sub"))

    def test_failed_reconfigure_keeps_the_old_setup(self, tmp_path):
        """A bad second configuration leaves the first one running."""
        service = configure_logging(env={}, console="off", log_dir=str(tmp_path))

        with pytest.raises(ConfigurationError):
            configure_logging(env={}, level="loud")
        service.get_logger("x").info("still")

        assert get_service() is service
        assert "still" in (tmp_path / "app.log").read_text()

    def test_not_a_sink(self):
        """An object without emit() in sinks= is refused."""
        with pytest.raises(ConfigurationError, match="not a sink"):
            configure_logging(env={}, console="off", log_dir="off", sinks=[object()])

    def test_unknown_hook_point(self):
        """A processor at an unknown hook point is refused, naming the points."""
        with pytest.raises(ConfigurationError, match="context, fields, exception"):
            configure_logging(
                env={}, console="off", log_dir="off", processors={"after_redaction": []}
            )

    def test_processor_not_callable(self):
        """A processor must be callable."""
        with pytest.raises(ConfigurationError, match="not callable"):
            configure_logging(
                env={}, console="off", log_dir="off", processors={"fields": ["x"]}
            )


class TestHandle:
    def test_health_flush_reopen(self, tmp_path):
        """The handle reports each sink's health and can flush and reopen."""
        stream = io.StringIO()
        service = configure_logging(
            env={},
            console="off",
            log_dir=str(tmp_path),
            handle_signals=False,
            sinks=[ConsoleSink(stream, style="json")],
        )
        service.get_logger("x").info("one")
        (tmp_path / "app.log").rename(tmp_path / "app.log.1")

        service.reopen()
        service.get_logger("x").info("two")
        service.flush(1.0)

        health = service.health()
        assert set(health) == {"file", "console"}
        assert health["file"].state == "healthy"
        assert health["file"].delivered == 2
        assert "two" in (tmp_path / "app.log").read_text()
        assert "two" not in (tmp_path / "app.log.1").read_text()
        assert service.sink("console").delivered == 2
        with pytest.raises(KeyError):
            service.sink("nope")

    def test_reference_start_up(self, tmp_path):
        """The reference start-up: a level and colours off, then structured calls."""
        stream = io.StringIO()
        service = configure_logging(
            env={},
            level="info",
            color="never",
            log_dir=str(tmp_path),
            handle_signals=False,
            console="off",
            sinks=[ConsoleSink(stream, color="never")],
        )
        logger = service.get_logger("vscode_runtime")

        logger.debug("hidden")
        logger.info("Installation started", {"installationId": "i-7", "moduleCount": 2})

        assert "hidden" not in stream.getvalue()
        assert "installationId=i-7 moduleCount=2" in stream.getvalue()
        assert "\x1b[" not in stream.getvalue()


class TestStartUp:
    def test_a_default_set_up_loads_only_what_it_uses(self, tmp_path):
        """No Sentry sink, rate limiter, TOML parser or gzip until configured."""
        unused = (
            "sentry_sdk",
            "runtime_logging.sinks.sentry",
            "runtime_logging.ratelimit",
            "runtime_logging.metrics",
            "prometheus_client",
            "urllib3",
            "tomllib",
            "gzip",
        )
        # Only what the package itself loads counts: a coverage run loads
        # tomllib in every subprocess before the script starts.
        script = (
            "import sys\n"
            "before = set(sys.modules)\n"
            "import runtime_logging\n"
            f"runtime_logging.configure_logging(env={{}}, log_dir={str(tmp_path)!r})\n"
            f"print(sorted(set({unused!r}) & (set(sys.modules) - before)))\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        assert done.stdout.strip() == "[]"
