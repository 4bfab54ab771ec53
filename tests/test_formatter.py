from __future__ import annotations

import datetime as dt
import decimal
import logging
import logging.config
import math

import pytest
from conftest import strict_loads

from runtime_logging import ConfigurationError, bound_context, configure_logging
from runtime_logging.testing import shutdown_logging

SETTINGS = {
    "service": "web",
    "environment": "staging",
    "release": "web@2.0",
    "redact_keys": ["installation_note"],
}


class Unrepresentable:
    def __repr__(self):
        raise RuntimeError


def log_every_kind(logger):
    """One record of every kind the identity must hold for."""
    logger.info("Server started")
    logger.warning("Retry %d of %s", 3, "download")
    reserved_names = {
        "installationId": "inst-1",
        "name": "n",
        "message": "m",
        "msg": "x",
        "args": (1, 2),
        "level": "custom",
        "timestamp": "yesterday",
        "filename": "f.py",
        "trace_id": "mine",
    }
    logger.info("Installation started", extra=reserved_names)
    try:
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError as error:
            raise ValueError("bad value") from error
    except ValueError:
        logger.exception("Install failed", extra={"installModule": "python-tools"})
        logger.error("plain error", exc_info=True)
    logger.info(
        "login password=%s to https://user:pw@example.test/cb?code=abc&x=1",
        "hunter2",
        extra={
            "headers": {"Authorization": "Bearer s3cr3t", "Cookie": "session=zzz"},
            "api_key": "K",
            "installation_note": "private",
        },
    )
    logger.info(
        "odd values",
        extra={
            "decimal": decimal.Decimal("1.10"),
            "bytes": b"\xff\x00",
            "nan": math.nan,
            "inf": [math.inf],
            "object": object,
            "broken": Unrepresentable(),
            "set": {3, 1, 2},
            "when": dt.datetime(2026, 12, 4, 10, 0, tzinfo=dt.timezone.utc),
            "surrogate": "\ud800x",
            "keys": {1: "a", None: "b"},
        },
    )
    logger.log(25, "custom level")
    logger.debug("with stack", stack_info=True)
    logger.info("bad args %d", "not a number")
    with bound_context(request_id="req-7"):
        logger.info("in a request")


class TestIdentityWithThePipeline:
    """The formatter writes the pipeline's line, byte for byte."""

    def test_same_bytes_for_every_kind_of_record(self, tmp_path):
        """dictConfig names the formatter; its file equals the pipeline's file."""
        service = configure_logging(
            env={},
            console="off",
            log_dir=str(tmp_path / "pipeline"),
            handle_signals=False,
            level="debug",
            **SETTINGS,
        )
        logging.config.dictConfig(
            {
                "version": 1,
                "disable_existing_loggers": False,
                "formatters": {
                    "json": {
                        "()": "runtime_logging.formatter.JsonFormatter",
                        "env": {},
                        **SETTINGS,
                    }
                },
                "handlers": {
                    "file": {
                        "class": "logging.FileHandler",
                        "filename": str(tmp_path / "formatter.log"),
                        "encoding": "utf-8",
                        "formatter": "json",
                    }
                },
                "loggers": {"app": {"handlers": ["file"], "level": "DEBUG"}},
            }
        )

        log_every_kind(logging.getLogger("app.web"))
        service.flush()
        logging.getLogger("app").handlers[0].close()

        expected = (tmp_path / "pipeline" / "app.log").read_bytes()
        actual = (tmp_path / "formatter.log").read_bytes()
        assert len(expected.splitlines()) == 11
        assert expected == actual

    def test_lines_are_the_schema_and_redacted(self, tmp_path):
        """Standalone, without configure_logging(), the lines hold the schema."""
        path = tmp_path / "formatter.log"
        handler = logging.FileHandler(path, encoding="utf-8")
        from runtime_logging.formatter import JsonFormatter

        handler.setFormatter(JsonFormatter(env={}, **SETTINGS))
        logger = logging.getLogger("standalone")
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        try:
            log_every_kind(logger)
        finally:
            logger.removeHandler(handler)
            handler.close()

        lines = [strict_loads(line) for line in path.read_bytes().splitlines()]
        assert len(lines) == 11
        first = lines[0]
        assert list(first)[:9] == [
            "timestamp",
            "level",
            "logger",
            "event",
            "service",
            "environment",
            "release",
            "host",
            "pid",
        ]
        assert (first["service"], first["release"]) == ("web", "web@2.0")
        assert lines[2]["field_level"] == "custom"
        assert lines[3]["exception"]["cause"]["type"] == "ZeroDivisionError"
        raw = path.read_bytes()
        for secret in (b"hunter2", b"s3cr3t", b"zzz", b"abc", b'"K"', b"private"):
            assert secret not in raw
        assert lines[-1]["request_id"] == "req-7"


class TestConfiguration:
    """Mistakes in the formatter's configuration fail when it is built."""

    def test_a_format_string_is_refused(self):
        """The schema fixes the keys; a format string would be silently ignored."""
        from runtime_logging.formatter import JsonFormatter

        with pytest.raises(ConfigurationError, match=r"'%\(message\)s'"):
            JsonFormatter("%(message)s")

    def test_an_unknown_setting_is_refused(self):
        """A misspelt setting names itself and the close match."""
        from runtime_logging.formatter import JsonFormatter

        with pytest.raises(ConfigurationError, match=r"servce.*service"):
            JsonFormatter(env={}, servce="x")

    def test_the_environment_is_read(self):
        """With dictConfig's `class` form, settings come from the environment."""
        from runtime_logging.formatter import JsonFormatter

        formatter = JsonFormatter(env={"RUNTIME_LOGGING_SERVICE": "from-env"})
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", (), None)

        assert strict_loads(formatter.format(record))["service"] == "from-env"


def test_the_record_is_not_changed():
    """Formatting leaves msg, args, exc_info and the attributes as they were."""
    from runtime_logging.formatter import JsonFormatter

    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        import sys

        exc_info = sys.exc_info()
    record = logging.LogRecord("x", 40, __file__, 1, "n=%d", (5,), exc_info)
    before = dict(vars(record))

    JsonFormatter(env={}).format(record)

    assert before == vars(record)
    shutdown_logging()


def test_dictconfig_class_form(tmp_path, monkeypatch):
    """Named by `class`, the formatter takes its settings from the environment."""
    monkeypatch.setenv("RUNTIME_LOGGING_SERVICE", "by-class")
    path = tmp_path / "out.log"
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                "json": {"class": "runtime_logging.formatter.JsonFormatter"}
            },
            "handlers": {
                "file": {
                    "class": "logging.FileHandler",
                    "filename": str(path),
                    "encoding": "utf-8",
                    "formatter": "json",
                }
            },
            "loggers": {"byclass": {"handlers": ["file"], "level": "INFO"}},
        }
    )
    logger = logging.getLogger("byclass")

    logger.info("hello")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()

    [line] = [strict_loads(raw) for raw in path.read_bytes().splitlines()]
    assert (line["service"], line["event"]) == ("by-class", "hello")


def test_a_forked_child_writes_its_own_pid(tmp_path):
    """A formatter made before fork() writes the child's pid in the child."""
    import os

    from runtime_logging.formatter import JsonFormatter

    formatter = JsonFormatter(env={})
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", (), None)
    path = tmp_path / "child.json"

    pid = os.fork()
    if pid == 0:
        try:
            path.write_text(formatter.format(record))
        finally:
            os._exit(0)
    os.waitpid(pid, 0)

    assert strict_loads(path.read_text())["pid"] == pid
    assert strict_loads(formatter.format(record))["pid"] == os.getpid()
