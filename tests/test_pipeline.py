"""The one chain: both APIs, context, hook points, and never raising (C7)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import logging.config
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import warnings
import weakref
from typing import ClassVar

import pytest
import structlog
from scripts import run_script

from runtime_logging import (
    ConfigurationError,
    ContextExecutor,
    _stdlib,
    bind_context,
    bound_context,
    clear_context,
    configure_logging,
    get_context,
    get_logger,
    sinks,
    unbind_context,
    with_context,
)
from runtime_logging._diagnostics import Diagnostics
from runtime_logging.schema import STANDARD_KEYS
from runtime_logging.sinks import Sink
from runtime_logging.sinks._queue import QueuedSink
from runtime_logging.testing import CaptureSink


class TestBothApis:
    def test_same_schema_for_structlog_and_stdlib(self, log_file):
        """A stdlib record and a structlog call give lines with the same key order."""
        log_file.service.get_logger("app").info("hello", user="u1")
        logging.getLogger("urllib3.connectionpool").info("hello", extra={"user": "u1"})

        ours, theirs = log_file.lines()
        assert list(ours) == list(theirs) == [*STANDARD_KEYS, "user"]
        assert (theirs["logger"], theirs["user"]) == ("urllib3.connectionpool", "u1")

    def test_module_level_structlog_logger(self, log_file):
        """structlog.get_logger() made early logs through the pipeline."""
        log = structlog.get_logger("early")
        log_file.service.get_logger("x")

        log.bind(a=1).warning("from structlog")

        [line] = log_file.lines()
        assert (line["logger"], line["level"], line["a"]) == ("early", "warning", 1)

    def test_dart_style_and_keyword_calls_agree(self, log_file):
        """info(message, {fields}) and info(message, **fields) give the same fields."""
        logger = log_file.service.get_logger("installer")
        fields = {"installationId": "i-1", "moduleCount": 3, "trigger": "user"}

        logger.info("Installation started", fields)
        logger.info("Installation started", **fields)

        first, second = log_file.lines()
        for key, value in fields.items():
            assert first[key] == second[key] == value

    def test_percent_arguments(self, log_file):
        """Positional arguments format the message as stdlib does."""
        log = log_file.service.get_logger("x")

        log.info("%s of %d", "three", 3)
        log.info("%d broken", "not a number")

        fine, broken = log_file.lines()
        assert fine["event"] == "three of 3"
        assert broken["event"] == "%d broken 'not a number'"


class TestLevels:
    def test_level_filters_both_apis(self, make_log_file):
        """Below the configured level nothing is written, from either API."""
        log_file = make_log_file(level="warning")
        log = log_file.service.get_logger("x")

        log.debug("no")
        log.info("no")
        logging.getLogger("lib").info("no")
        log.warning("yes")
        logging.getLogger("lib").error("yes")

        assert [line["event"] for line in log_file.lines()] == ["yes", "yes"]

    def test_logger_levels(self, make_log_file):
        """Per-logger levels quieten one library without hiding the others."""
        log_file = make_log_file(logger_levels={"noisy": "error"})

        logging.getLogger("noisy.sub").warning("hidden")
        logging.getLogger("quiet").warning("shown")
        log_file.service.get_logger("noisy").warning("hidden")

        assert [line["logger"] for line in log_file.lines()] == ["quiet"]

    def test_is_enabled_for(self, make_log_file):
        """A logger tells whether a level would be written."""
        log = make_log_file(level="info").service.get_logger("x")

        assert (log.is_enabled_for(10), log.is_enabled_for(20)) == (False, True)


class TestContext:
    def test_bind_unbind_and_block(self, log_file):
        """Bound context reaches every line until unbound; a block restores it."""
        log = log_file.service.get_logger("ctx")

        bind_context(request_id="r1", user="u")
        with bound_context(step="download"):
            log.info("inside")
        unbind_context("user")
        log.info("after")
        clear_context()
        log.info("cleared")

        inside, after, cleared = log_file.lines()
        assert (inside["request_id"], inside["user"], inside["step"]) == (
            "r1",
            "u",
            "download",
        )
        assert after["request_id"] == "r1"
        assert "user" not in after
        assert "step" not in after
        assert "request_id" not in cleared
        assert get_context() == {}

    def test_call_fields_win_over_context(self, log_file):
        """A keyword of the call wins over the same key bound in context."""
        bind_context(step="context")
        try:
            log_file.service.get_logger("ctx").bind(step="bound").info("x", step="call")
        finally:
            clear_context()

        [line] = log_file.lines()
        assert line["step"] == "call"

    def test_with_context_carries_into_threads(self, log_file):
        """A wrapped callable logs with its creator's context in another thread."""
        log = log_file.service.get_logger("ctx")
        with bound_context(request_id="r9"):
            work = with_context(lambda: log.info("in thread"))
        thread = threading.Thread(target=work)

        thread.start()
        thread.join()

        [line] = log_file.lines()
        assert line["request_id"] == "r9"

    def test_c7_tasks_and_executors(self, log_file):
        """100 tasks log directly and via run_in_executor: 0 mismatched ids in 200."""
        log = log_file.service.get_logger("c7")
        executor = ContextExecutor(max_workers=4)

        async def task(number):
            if number % 10 == 0:
                log.info("direct", task=number)
                await asyncio.get_running_loop().run_in_executor(
                    executor, lambda: log.info("executor", task=number)
                )
                return
            bind_context(request_id=f"req-{number}")
            await asyncio.sleep(0)
            log.info("direct", task=number)
            await asyncio.get_running_loop().run_in_executor(
                executor, lambda: log.info("executor", task=number)
            )

        async def main():
            await asyncio.gather(*(task(n) for n in range(100)))

        asyncio.run(main())
        executor.shutdown()

        lines = [line for line in log_file.lines() if line["logger"] == "c7"]
        assert len(lines) == 200
        mismatches = [
            line
            for line in lines
            if line.get("request_id")
            != (None if line["task"] % 10 == 0 else f"req-{line['task']}")
        ]
        assert mismatches == []


class TestHookPoints:
    def test_processors_run_at_their_points(self, tmp_path):
        """User processors run at context, fields and exception, in that order."""
        calls = []

        def at(point):
            def processor(logger, method, event):
                calls.append((point, method, event.get("event")))
                event[f"seen_{point}"] = True
                return event

            return processor

        service = configure_logging(
            env={},
            console="off",
            log_dir=str(tmp_path),
            handle_signals=False,
            processors={p: [at(p)] for p in ("context", "fields", "exception")},
        )
        try:
            raise KeyError("k")
        except KeyError:
            service.get_logger("x").exception("boom")
        service.flush()

        assert [c[0] for c in calls] == ["context", "fields", "exception"]
        assert calls[0][1:] == ("error", "boom")
        line = (tmp_path / "app.log").read_text()
        assert '"seen_context":true' in line
        assert '"seen_exception":true' in line

    def test_secret_added_by_processor_is_still_redacted(self, tmp_path):
        """Processors run before redaction, so what they add is redacted too."""

        def add_secret(logger, method, event):
            event["api_key"] = "sk-live-123456"
            return event

        service = configure_logging(
            env={},
            console="off",
            log_dir=str(tmp_path),
            handle_signals=False,
            processors={"fields": [add_secret]},
        )
        service.get_logger("x").info("hi")
        service.flush()

        assert b"sk-live-123456" not in (tmp_path / "app.log").read_bytes()

    def test_drop_event(self, tmp_path):
        """A processor raising structlog.DropEvent drops the event quietly."""

        def drop_health(logger, method, event):
            if event.get("event") == "health":
                raise structlog.DropEvent
            return event

        service = configure_logging(
            env={},
            console="off",
            log_dir=str(tmp_path),
            handle_signals=False,
            processors={"context": [drop_health]},
        )
        log = service.get_logger("x")
        log.info("health")
        log.info("kept")
        service.flush()

        assert (tmp_path / "app.log").read_text().count("\n") == 1


class TestNeverRaises:
    def test_logger_names_that_cant_be_shown(self, make_log_file):
        """A name whose str() raises still gives a logger; a str subclass its text."""

        class Odd(str):  # noqa: SLOT000
            def __str__(self):
                raise RuntimeError("no str")

        class Unprintable:
            def __str__(self):
                raise RuntimeError("no str")

        log_file = make_log_file()

        get_logger(Odd("odd.name")).info("one")
        structlog.get_logger(Unprintable()).info("two")

        odd, unprintable = (line["logger"] for line in log_file.lines())
        assert odd == "odd.name"
        assert unprintable.startswith("<unrepresentable ")
        assert unprintable.endswith("Unprintable>")

    def test_failing_processor_is_counted_and_the_line_kept(self, tmp_path, capfd):
        """A processor that raises never escapes; the line is written without it."""

        def broken(logger, method, event):
            raise RuntimeError("processor bug")

        service = configure_logging(
            env={},
            console="off",
            log_dir=str(tmp_path),
            handle_signals=False,
            processors={"fields": [broken]},
        )
        for _ in range(20):
            service.get_logger("x").info("still here")
        service.flush()

        assert (tmp_path / "app.log").read_text().count("still here") == 20
        err = capfd.readouterr().err
        assert "processor bug" in err
        assert err.count("runtime_logging: processor") <= 5

    def test_failing_sink_does_not_stop_the_others(self, tmp_path, capfd):
        """A sink that raises is counted; the file still gets the line."""

        class Broken:
            name = "broken"
            min_level = 0

            def emit(self, event):
                raise OSError("disk on fire")

        service = configure_logging(
            env={},
            console="off",
            log_dir=str(tmp_path),
            handle_signals=False,
            sinks=[Broken()],
        )
        service.get_logger("x").info("line")
        service.flush()

        assert (tmp_path / "app.log").read_text().count("line") == 1
        assert "disk on fire" in capfd.readouterr().err

    def test_an_event_a_sink_raised_on_is_its_drop(self, make_log_file, monkeypatch):
        """The sink counts the event dropped and turns degraded with the reason."""

        class Picky(Sink):
            name = "picky"

            def emit(self, event):
                if event.fields["event"] == "bad":
                    raise OverflowError("too big")
                self.delivered += 1

        monkeypatch.setattr(sinks, "diagnostics", Diagnostics())
        log_file = make_log_file(sinks=[Picky()])
        log = log_file.service.get_logger("x")

        log.info("bad")
        log.info("good")

        health = log_file.service.health()["picky"]
        counts = (health.delivered, health.dropped, health.failures)
        assert (*counts, health.state) == (1, 1, 1, "degraded")
        assert "OverflowError('too big')" in health.detail
        assert [line["event"] for line in log_file.lines()] == ["bad", "good"]
        assert sinks.diagnostics.counts["sink picky"] == 1

    def test_a_sink_without_the_base_class_state_still_never_raises(
        self, make_log_file, capfd
    ):
        """A Sink subclass that skipped the base __init__ raising is only told."""

        class Bare(Sink):
            name = "bare"

            def __init__(self):
                self.min_level = 0

            def emit(self, event):
                raise RuntimeError("bare sink")

        log_file = make_log_file(sinks=[Bare()])

        log_file.service.get_logger("x").info("kept")

        assert [line["event"] for line in log_file.lines()] == ["kept"]
        assert "RuntimeError('bare sink')" in capfd.readouterr().err

    @pytest.mark.parametrize("message", [None, 42, object()])
    def test_odd_messages(self, log_file, message):
        """A non-string event is written as its string."""
        log_file.service.get_logger("x").info(message)

        [line] = log_file.lines()
        assert line["event"] == ("" if message is None else str(message))

    def test_stdlib_bad_arguments(self, log_file):
        """A stdlib record whose arguments don't fit keeps its raw message."""
        logging.getLogger("lib").warning("%d items", "many")

        [line] = log_file.lines()
        assert line["event"] == "%d items"
        assert "format_error" in line

    def test_toolkit_logger_does_not_reenter(self, log_file):
        """The toolkit's own logger never feeds its sinks."""
        logging.getLogger("runtime_logging").error("internal")
        logging.getLogger("runtime_logging.sinks").error("internal")

        assert log_file.lines() == []


class TestPerLoggerLevelsBelowTheGlobalLevel:
    """A logger may be more verbose than the rest, from either API."""

    def test_structlog_and_stdlib(self, make_log_file):
        """chatty=debug under level=info: chatty's debug lines, nobody else's."""
        log_file = make_log_file(
            level="info", logger_levels={"chatty": "debug", "chatty.hush": "error"}
        )
        service = log_file.service

        service.get_logger("chatty").debug("a")
        service.get_logger("chatty.sub").debug("b")
        structlog.get_logger("chatty").debug("c")
        logging.getLogger("chatty").debug("d")
        service.get_logger("other").debug("hidden")
        service.get_logger("chatty.hush").warning("hidden")
        service.get_logger("other").info("e")

        assert [line["event"] for line in log_file.lines()] == list("abcde")
        assert service.get_logger("chatty").is_enabled_for(10)
        assert not service.get_logger("other").is_enabled_for(10)


class TestMappingAsFieldsAndPercent:
    """One mapping after the message: fields, unless it fills %(name)s."""

    @pytest.mark.parametrize(
        ("message", "mapping", "event", "fields"),
        [
            ("Download 100% done", {"module": "m1"}, "Download 100% done", True),
            ("Download 100% sure", {"module": "m1"}, "Download 100% sure", True),
            ("50% of %s", {"module": "m1"}, "50% of %s", True),
            ("ratio %(a)s", {"a": 1}, "ratio 1", True),
            ("%(a)d%% done", {"a": 7}, "7% done", True),
            ("ratio %(missing)s", {"a": 1}, "ratio %(missing)s", True),
            ("plain", {"a": 1}, "plain", True),
        ],
    )
    def test_rule(self, log_file, message, mapping, event, fields):
        """A literal % never turns fields into text; %(name)s formats as stdlib."""
        log_file.service.get_logger("x").info(message, mapping)

        [line] = log_file.lines()
        assert line["event"] == event
        for key, value in mapping.items():
            assert (line.get(key) == value) is fields

    def test_stdlib_agrees_on_named_placeholders(self, log_file):
        """The same call through stdlib gives the same message."""
        logging.getLogger("x").warning("ratio %(a)s", {"a": 1})
        log_file.service.get_logger("x").warning("ratio %(a)s", {"a": 1})

        theirs, ours = log_file.lines()
        assert theirs["event"] == ours["event"] == "ratio 1"


class TestNoValueLost:
    """A field never overwrites another, odd exc_info values are kept."""

    @pytest.mark.parametrize(
        "fields",
        [
            {"level": "A", "field_level": "B"},
            {"field_level": "B", "level": "A"},
            {"level": "A", "field_level": "B", "field_field_level": "C"},
            {"stack": "S", "field_stack": "T"},
        ],
    )
    def test_repeated_collisions_structlog(self, log_file, fields):
        """The clashing field takes the prefix as often as needed; all values kept."""
        log_file.service.get_logger("x").info("e", **fields)

        [line] = log_file.lines()
        self._assert_all_kept(line, fields)

    def test_repeated_collisions_stdlib(self, log_file):
        """The same through stdlib extra= and bound context."""
        fields = {"level": "A", "field_level": "B"}
        with bound_context(timestamp="T", field_timestamp="U"):
            logging.getLogger("x").warning("e", extra=fields)

        [line] = log_file.lines()
        self._assert_all_kept(
            line, {**fields, "timestamp": "T", "field_timestamp": "U"}
        )

    @staticmethod
    def _assert_all_kept(line, fields):
        assert line["level"] in ("info", "warning")
        written = {k: v for k, v in line.items() if k.startswith("field_")}
        expected = {k: v for k, v in fields.items() if k.startswith("field_")}
        for key in fields:
            if key in STANDARD_KEYS or key == "stack":
                prefixed = "field_" + key
                while prefixed in fields:
                    prefixed = "field_" + prefixed
                expected[prefixed] = fields[key]
        assert written == expected

    @pytest.mark.parametrize("value", ["garbage", 2.5, (1, 2), ["x"], {"a": 1}])
    def test_exc_info_that_is_no_exception_is_kept(self, log_file, value):
        """Outside an except block: the value as field_exc_info, no exception."""
        log_file.service.get_logger("x").info("x", exc_info=value)

        [line] = log_file.lines()
        expected = list(value) if isinstance(value, tuple) else value
        assert line["field_exc_info"] == expected
        assert "exception" not in line

    def test_exc_info_odd_value_inside_except(self, log_file):
        """Inside an except block it still asks for the exception, as stdlib's."""
        log = log_file.service.get_logger("x")
        try:
            raise KeyError("k")
        except KeyError:
            log.error("x", exc_info="yes")
            log.error("y", exc_info=1)

        odd, one = log_file.lines()
        assert odd["field_exc_info"] == "yes"
        assert odd["exception"]["type"] == "KeyError"
        assert one["exception"]["type"] == "KeyError"
        assert "field_exc_info" not in one


class TestStackInfo:
    """stack_info=True gives the documented `stack` key from both APIs."""

    def test_structlog(self, log_file):
        """The caller's stack, as stdlib writes it; no stack_info field."""
        log = log_file.service.get_logger("x")

        log.info("with", stack_info=True, stack="mine")
        log.info("without", stack_info=False)

        with_stack, without = log_file.lines()
        assert with_stack["stack"].startswith("Stack (most recent call last):\n")
        assert "in test_structlog\n" in with_stack["stack"]
        assert "runtime_logging/_" not in with_stack["stack"]
        assert with_stack["field_stack"] == "mine"
        assert "stack_info" not in with_stack
        assert list(with_stack)[-2:] == ["field_stack", "stack"]
        assert "stack" not in without
        assert "stack_info" not in without

    def test_stdlib(self, log_file):
        """stdlib's stack_info is written as `stack`, never `field_stack`."""
        logging.getLogger("x").warning("with", stack_info=True)

        [line] = log_file.lines()
        assert line["stack"].startswith("Stack (most recent call last):\n")
        assert "in test_stdlib\n" in line["stack"]
        assert "field_stack" not in line


class TestFieldsNamedLikeParameters:
    """Keywords named like the methods' own parameters are fields, not errors."""

    @pytest.mark.parametrize("method", ["debug", "info", "warning", "error"])
    def test_event_self_and_level_keywords(self, log_file, method):
        """`event=`, `self=`, `level=` next to a message: kept under their names."""
        log = log_file.service.get_logger("x")

        getattr(log, method)("m", event="E", self="S", level="L")
        log.log(30, "m", event="E", self="S", level="L")

        for line in log_file.lines():
            assert line["event"] == "m"
            assert line["field_event"] == "E"
            assert line["self"] == "S"
            assert line["field_level"] == "L"

    def test_message_and_level_by_keyword(self, log_file):
        """Without the positional message or level, the keywords give them."""
        log = log_file.service.get_logger("x")

        log.info(event="by keyword", a=1)
        log.log(level=40, event="both by keyword")
        try:
            raise OSError("disk")
        except OSError:
            log.exception(event="exception by keyword")

        first, second, third = log_file.lines()
        assert (first["event"], first["a"]) == ("by keyword", 1)
        assert (second["event"], second["level"]) == ("both by keyword", "error")
        assert (third["event"], third["exception"]["type"]) == (
            "exception by keyword",
            "OSError",
        )


LEVELS_ODD = [100, 60, 51, 25, 1, 0, -5, "info", "WARNING", "nonsense", 2.5, None]


class TestNoCallRaises:
    """No log call raises into the caller, whatever the level or the state."""

    @pytest.mark.parametrize(
        ("level", "name"),
        [
            (100, "critical"),
            (60, "critical"),
            (51, "critical"),
            (25, "info"),
            (1, None),
            (0, None),
            (-5, None),
            ("info", "info"),
            ("WARNING", "warning"),
            ("nonsense", "warning"),
            (2.5, "warning"),
            (None, "warning"),
        ],
    )
    def test_configured(self, log_file, level, name):
        """Custom levels take the next lower name; one that isn't a level is kept."""
        log_file.service.get_logger("x").log(level, "odd")

        lines = log_file.lines()
        assert [line["level"] for line in lines] == ([name] if name else [])
        if name and not isinstance(level, int) and level not in ("info", "WARNING"):
            assert lines[0]["field_level"] == level

    @pytest.mark.parametrize("level", LEVELS_ODD)
    def test_before_configuration_and_after_shutdown(self, tmp_path, capfd, level):
        """Unconfigured, warnings and above go to stderr; nothing raises."""
        early = get_logger("early")
        early.log(level, "odd %s", "arg", key="v")
        early.warning("loud", key="v")
        early.info("quiet")
        service = configure_logging(
            env={}, console="off", log_dir="off", handle_signals=False
        )
        late = service.get_logger("late")
        service.shutdown()

        late.log(level, "odd %s", "arg", key="v")
        late.debug("quiet")
        late.info("quiet")
        late.warning("loud", key="v")
        late.exception("loud")

        err = capfd.readouterr().err
        assert "quiet" not in err
        assert err.count("loud") == 3
        assert "key=v" in err
        assert "[early]" in err
        assert "[late]" in err


class TestStdlibDirectRoute:
    """A record only the pipeline would see skips the LogRecord, same line.

    Any other listener (a second handler, a filter, a record factory, a
    patched logger method) gets the stdlib's own way and sees the record.
    """

    @staticmethod
    def _calls():
        return (
            ("plain %s", ("x",), {}),
            ("mapping %(a)s", ({"a": 1},), {}),
            ("bad %d", ("many",), {}),
            ("fields", (), {"extra": {"task_id": "t-1", "count": 3, "message": "m"}}),
            ("no args but %s", (), {}),
            ("exception", (), {"exc_info": ValueError("boom")}),
            ("password=hunter2", (), {"extra": {"api_key": "s3cr3t"}}),
            ("reserved first", (), {"extra": {"name": "alice", "user_id": 7}}),
            ("no mapping", (), {"extra": "ab"}),
            ("pairs", (), {"extra": [("k", "v")]}),
        )

    @staticmethod
    def _without_time(line):
        """The line's keys and values in order, the time left out."""
        return [(k, v) for k, v in line.items() if k != "timestamp"]

    @pytest.fixture
    def lib(self):
        """A logger of its own, its handlers and filters gone after the test."""
        logger = logging.getLogger("direct_route")
        yield logger
        logger.handlers.clear()
        logger.filters.clear()
        logger.disabled = False
        logger.propagate = True

    def test_same_line_as_through_a_record(self, log_file, lib):
        """Each call writes what it writes when another handler forces a record."""
        for message, args, kwargs in self._calls():
            lib.warning(message, *args, **kwargs)
        lib.addHandler(logging.NullHandler())
        for message, args, kwargs in self._calls():
            lib.warning(message, *args, **kwargs)

        lines = [self._without_time(line) for line in log_file.lines()]
        count = len(self._calls())
        direct, recorded = lines[:count], lines[count:]
        assert direct == recorded
        lines = [dict(line) for line in direct]
        assert lines[1]["event"] == "mapping 1"
        assert lines[3]["message"] == "m"
        assert lines[5]["exception"]["type"] == "ValueError"
        assert "s3cr3t" not in str(direct)
        assert "hunter2" not in str(direct)
        assert list(lines[7])[-2:] == ["user_id", "name"]
        assert lines[8]["extra"] == "ab"
        assert lines[9]["extra"] == [["k", "v"]]

    def test_exception_being_handled(self, log_file, lib):
        """``exc_info=True`` and ``logger.exception`` take the current exception."""
        try:
            raise KeyError("k")
        except KeyError:
            lib.exception("failed")
            lib.error("again", exc_info=True)

        first, second = log_file.lines()
        assert first["exception"]["type"] == second["exception"]["type"] == "KeyError"

    def test_no_record_is_made_when_only_the_pipeline_listens(
        self, log_file, monkeypatch, lib
    ):
        """The caller's frame is not looked up for a line that never shows it."""
        looked_up = []
        stdlib_find_caller = logging.Logger.findCaller

        def find_caller(self, *args):
            looked_up.append(self.name)
            return stdlib_find_caller(self, *args)

        monkeypatch.setattr(logging.Logger, "findCaller", find_caller)
        lib.info("direct")
        assert looked_up == []
        lib.info("with its stack", stack_info=True)
        assert looked_up == ["direct_route"]
        assert [line["event"] for line in log_file.lines()] == [
            "direct",
            "with its stack",
        ]

    def test_another_handler_sees_every_record(self, log_file, lib):
        seen = []

        class Collect(logging.Handler):
            def emit(self, record):
                seen.append((record.getMessage(), record.funcName))

        handler = Collect()
        lib.addHandler(handler)
        lib.getChild("sub").info("hello %s", "you")

        assert seen == [("hello you", "test_another_handler_sees_every_record")]
        assert [line["event"] for line in log_file.lines()] == ["hello you"]

    def test_a_logger_filter_still_drops(self, log_file, lib):
        lib.addFilter(lambda record: "keep" in record.getMessage())
        lib.info("keep this")
        lib.info("drop this")
        lib.getChild("child").info("a child's record: no logger filter")

        assert [line["event"] for line in log_file.lines()] == [
            "keep this",
            "a child's record: no logger filter",
        ]

    def test_a_disabled_logger_and_a_handler_filter(self, log_file, lib):
        lib.disabled = True
        lib.warning("never")
        lib.disabled = False
        handler = log_file.service._handler
        handler.addFilter(lambda record: record.name != "direct_route.filtered")
        lib.getChild("filtered").warning("never either")
        lib.warning("kept")

        assert [line["event"] for line in log_file.lines()] == ["kept"]

    def test_a_record_factory_is_used(self, log_file, lib):
        """A factory's added attribute arrives as a field, as it did before."""
        stdlib_factory = logging.getLogRecordFactory()

        def factory(*args, **kwargs):
            record = stdlib_factory(*args, **kwargs)
            record.request_id = "r-7"
            return record

        logging.setLogRecordFactory(factory)
        try:
            lib.info("with factory")
        finally:
            logging.setLogRecordFactory(stdlib_factory)

        [line] = log_file.lines()
        assert line["request_id"] == "r-7"

    def test_a_patched_call_handlers_still_runs(self, log_file, monkeypatch, lib):
        """A tool that wraps ``Logger.callHandlers`` (sentry-sdk does) sees records."""
        seen = []
        stdlib_call_handlers = logging.Logger.callHandlers

        def call_handlers(self, record):
            seen.append(record.getMessage())
            stdlib_call_handlers(self, record)

        monkeypatch.setattr(logging.Logger, "callHandlers", call_handlers)
        lib.info("watched")

        assert seen == ["watched"]
        assert [line["event"] for line in log_file.lines()] == ["watched"]

    def test_not_propagating_logger_without_handlers(self, log_file, capfd, lib):
        """No handler on the way: the stdlib's last resort, as without the toolkit."""
        lib.propagate = False
        lib.warning("to stderr")

        assert log_file.lines() == []
        assert "to stderr" in capfd.readouterr().err

    def test_stdlib_route_is_back_after_shutdown(self, log_file):
        stdlib_log = logging.Logger.__dict__["_log"]
        assert stdlib_log.__module__ == "runtime_logging._stdlib"
        log_file.service.shutdown()
        assert logging.Logger.__dict__["_log"].__module__ == "logging"

    def test_stacklevel_as_without_the_toolkit(self, log_file, lib):
        """Another handler sees the frame the stdlib alone would name."""
        seen = []

        class Collect(logging.Handler):
            def emit(self, record):
                seen.append((record.funcName, record.lineno))

        lib.addHandler(Collect())

        def helper(stacklevel):
            lib.warning("m", stacklevel=stacklevel)

        def calls():
            for stacklevel in (-1, 0, 1, 2, 3):
                helper(stacklevel)

        seen_by_phase = []
        for with_toolkit in (True, False):
            seen.clear()
            calls()
            seen_by_phase.append(list(seen))
            if with_toolkit:
                log_file.service.shutdown()

        assert seen_by_phase[0] == seen_by_phase[1]
        assert [name for name, _ in seen[2:4]] == ["helper", "calls"]

    def test_an_instances_own_methods_are_called(self, log_file, lib):
        quiet = lib.getChild("quiet")
        quiet.handle = lambda _record: None
        enriched = lib.getChild("enriched")
        stdlib_make_record = enriched.makeRecord

        def make_record(*args, **kwargs):
            record = stdlib_make_record(*args, **kwargs)
            record.tenant = "t1"
            return record

        enriched.makeRecord = make_record
        handler = log_file.service._handler
        handler.handle = lambda record: type(handler).handle(handler, record)
        quiet.warning("not written")
        enriched.warning("with tenant")

        [line] = log_file.lines()
        assert (line["event"], line["tenant"]) == ("with tenant", "t1")

    def test_a_patched_filter_is_called(self, log_file, lib, monkeypatch):
        def refuse(self, record):
            return False

        monkeypatch.setattr(logging.Filterer, "filter", refuse)
        lib.warning("refused by every filter")

        assert log_file.lines() == []

    def test_odd_logger_names(self, log_file, lib):
        numbered = logging.Logger(5)  # noqa: LOG001 - a name that is no str
        numbered.parent = lib
        numbered.warning("numbered")
        logging.getLogger("runtime_logging_plugins.x").warning("a plugin's")

        lines = log_file.lines()
        assert [(line["logger"], line["event"]) for line in lines] == [
            ("5", "numbered"),
            ("runtime_logging_plugins.x", "a plugin's"),
        ]


class TestStdlibPatchedByOthers:
    """Another tool's patch of a logger method, before or after the import."""

    @staticmethod
    def _run(*parts):
        return run_script("\n".join(textwrap.dedent(part) for part in parts)).split()

    SET_UP = """
        from runtime_logging import configure_logging
        from runtime_logging.testing import CaptureSink
        capture = CaptureSink()
        service = configure_logging(
            sinks=[capture], env={}, console="off", log_dir="off",
            handle_signals=False,
        )
        app = logging.getLogger("app")
    """

    def test_call_handlers_patched_before_the_import(self):
        """As sentry-sdk's logging integration patches it at its init."""
        seen = self._run(
            """
            import functools, logging
            stdlib_call_handlers = logging.Logger.callHandlers
            seen = []
            @functools.wraps(stdlib_call_handlers)
            def call_handlers(self, record):
                seen.append(record.getMessage())
                stdlib_call_handlers(self, record)
            logging.Logger.callHandlers = call_handlers
            """,
            self.SET_UP,
            """
            app.error("first")
            app.error("second")
            print(*seen, *[e.event for e in capture.events])
            """,
        )
        assert seen == ["first", "second", "first", "second"]

    def test_make_record_patched_before_the_import(self):
        fields = self._run(
            """
            import logging
            stdlib_make_record = logging.Logger.makeRecord
            def make_record(self, *args, **kwargs):
                record = stdlib_make_record(self, *args, **kwargs)
                record.dd_trace = "t-1"
                return record
            logging.Logger.makeRecord = make_record
            """,
            self.SET_UP,
            """
            app.warning("traced", extra={"message": "kept"})
            [event] = capture.events
            print(event.fields["dd_trace"], event.fields["message"])
            service.shutdown()
            print(logging.Logger.makeRecord is make_record)
            """,
        )
        assert fields == ["t-1", "kept", "True"]

    def test_log_patched_before_and_after_the_import(self):
        patch = """
            stdlib_log = logging.Logger._log
            def _log(self, level, msg, args, **kwargs):
                kwargs["extra"] = {"trace": "t-1"}
                stdlib_log(self, level, msg, args, **kwargs)
            logging.Logger._log = _log
        """
        check = """
            app.warning("traced")
            [event] = capture.events
            service.shutdown()
            print(event.fields.get("trace"), logging.Logger._log is _log)
        """
        for before in (True, False):
            first, second = (patch, "") if before else ("", patch)
            output = self._run(
                "import logging",
                first,
                "import runtime_logging",
                second,
                self.SET_UP,
                check,
            )
            assert output == ["t-1", "True"], before

    def test_shutdown_without_set_up_leaves_a_patch(self):
        output = self._run(
            """
            import logging
            import runtime_logging.testing
            def _log(self, *args, **kwargs):
                pass
            logging.Logger._log = _log
            runtime_logging.testing.shutdown_logging()
            print(logging.Logger._log is _log)
            """
        )
        assert output == ["True"]


class TestStdlibAcrossSetUps:
    def test_reconfigured_while_threads_log(self, tmp_path, capfd):
        """Every stdlib line of the threads arrives; none raises, none on stderr."""
        settings = {
            "env": {},
            "console": "off",
            "log_dir": str(tmp_path),
            "handle_signals": False,
        }
        configure_logging(**settings)
        failures = []
        lines_each = 2000

        def log(number):
            app = logging.getLogger(f"app.{number}")
            try:
                for count in range(lines_each):
                    app.warning("line", extra={"message": "m", "n": count})
            except Exception as error:
                failures.append(error)

        threads = [threading.Thread(target=log, args=(n,)) for n in range(3)]
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            configure_logging(**settings)
        for thread in threads:
            thread.join()
        configure_logging(**settings).shutdown()

        lines = [
            line
            for path in sorted(tmp_path.glob("app.log*"))
            for line in path.read_text().splitlines()
        ]
        assert failures == []
        assert len(lines) == 3 * lines_each
        assert "line" not in capfd.readouterr().err

    def test_json_formatter_keeps_extra_safe_after_a_set_up_ends(self, tmp_path, capfd):
        from runtime_logging.formatter import JsonFormatter

        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(JsonFormatter(env={}))
        service = configure_logging(
            env={}, console="off", log_dir="off", handle_signals=False
        )
        service.shutdown()
        app = logging.getLogger("formatted")
        app.addHandler(handler)
        app.propagate = False
        try:
            app.warning("kept", extra={"message": "m"})
        finally:
            app.removeHandler(handler)
            app.propagate = True

        line = json.loads(stream.getvalue())
        assert (line["event"], line["message"]) == ("kept", "m")


class TestStdlibGivenBack:
    """What a set-up changed in stdlib logging is put back, and only that."""

    SETTINGS: ClassVar[dict[str, object]] = {
        "env": {},
        "console": "off",
        "log_dir": "off",
        "handle_signals": False,
    }

    def test_a_tools_make_record_wrapper_across_a_reconfiguration(self):
        capture = CaptureSink()
        configure_logging(sinks=[capture], **self.SETTINGS)
        toolkits = logging.Logger.makeRecord

        def make_record(self, *args, **kwargs):
            record = toolkits(self, *args, **kwargs)
            record.traced = "t-1"
            return record

        logging.Logger.makeRecord = make_record
        try:
            service = configure_logging(sinks=[capture], **self.SETTINGS)
            app = logging.getLogger("wrapped")
            app.addHandler(logging.NullHandler())
            try:
                app.warning("traced", extra={"message": "m"})
            finally:
                app.handlers.clear()
            service.shutdown()
            assert logging.Logger.makeRecord is make_record
        finally:
            logging.Logger.makeRecord = toolkits
        [event] = [e for e in capture.events if e.logger == "wrapped"]
        assert (event.fields["traced"], event.fields["message"]) == ("t-1", "m")

    def test_calls_while_reconfiguring_reach_the_next_sinks(self, capfd):
        """Calls made while the old sinks drain reach the next set-up's sinks.

        Through `structlog.get_logger()`, the toolkit's loggers and stdlib:
        none goes to stdout or stderr, none to a network sink already closed.
        """

        class LogsWhileClosing(Sink):
            name = "closing"

            def emit(self, event):
                pass

            def close(self, timeout=None):
                structlog.get_logger("during").info("structlog's")
                get_logger("during").info("the toolkit's")
                logging.getLogger("during").warning("stdlib's")

        class Collect(QueuedSink):
            """A network sink in memory: what its thread delivers."""

            name = "collect"

            def __init__(self):
                super().__init__()
                self.received = []

            def deliver(self, batch):
                self.received.extend(event.event for event in batch)
                return len(batch)

        # The old network sink closes first, then the other one logs.
        old, new = Collect(), Collect()
        configure_logging(sinks=[old, LogsWhileClosing()], **self.SETTINGS)
        configure_logging(sinks=[new], **self.SETTINGS).flush()

        assert (old.received, old.dropped) == ([], 0)
        assert new.received == ["structlog's", "the toolkit's", "stdlib's"]
        captured = capfd.readouterr()
        assert "structlog's" not in captured.out + captured.err

    def test_a_sink_that_cannot_attach_leaves_logging_as_before(self, monkeypatch):
        # No JSON formatter of another test keeps the toolkit's makeRecord.
        monkeypatch.setattr(_stdlib, "_make_record_keepers", weakref.WeakSet())

        class Refuses(Sink):
            name = "refuses"

            def emit(self, event):
                pass

            def attach(self, service):
                raise RuntimeError("no")

        root = logging.getLogger()
        configure_logging(**self.SETTINGS)
        with pytest.raises(RuntimeError):
            configure_logging(sinks=[Refuses()], **self.SETTINGS)

        from runtime_logging import get_service

        assert get_service() is None
        assert root.handlers == []
        assert logging.Logger.makeRecord.__module__ == "logging"

    def test_logger_levels_are_put_back(self):
        urllib3 = logging.getLogger("urllib3")
        configure_logging(logger_levels={"urllib3": "debug"}, **self.SETTINGS)
        assert urllib3.level == logging.DEBUG
        configure_logging(**self.SETTINGS)
        assert urllib3.level == logging.NOTSET
        configure_logging(logger_levels={"urllib3": "error"}, **self.SETTINGS)
        urllib3_error = urllib3.level
        configure_logging(**self.SETTINGS).shutdown()
        assert (urllib3_error, urllib3.level) == (logging.ERROR, logging.NOTSET)

    def test_warnings_captured_by_the_application_stay_captured(self):
        logging.captureWarnings(True)
        try:
            configure_logging(**self.SETTINGS).shutdown()
            assert warnings.showwarning is logging._showwarning
        finally:
            logging.captureWarnings(False)
        configure_logging(**self.SETTINGS).shutdown()
        assert warnings.showwarning is not logging._showwarning

    def test_a_root_another_configuration_took_over_is_left_alone(self):
        root = logging.getLogger()
        earlier = logging.NullHandler()
        root.addHandler(earlier)
        service = configure_logging(**self.SETTINGS)
        taken_over = logging.StreamHandler(io.StringIO())
        logging.config.dictConfig(
            {
                "version": 1,
                "disable_existing_loggers": False,
                "handlers": {"out": {"()": lambda: taken_over}},
                "root": {"handlers": ["out"], "level": "INFO"},
            }
        )
        service.shutdown()

        assert (root.handlers, root.level) == ([taken_over], logging.INFO)

    def test_a_patch_of_the_root_logger_class_is_called(self, monkeypatch):
        seen = []
        stdlib_call_handlers = logging.RootLogger.callHandlers

        def call_handlers(self, record):
            seen.append(record.getMessage())
            stdlib_call_handlers(self, record)

        capture = CaptureSink()
        configure_logging(sinks=[capture], **self.SETTINGS)
        monkeypatch.setattr(logging.RootLogger, "callHandlers", call_handlers)
        logging.warning("through the root")  # noqa: LOG015 - the root's own call

        assert seen == ["through the root"]
        assert [e.event for e in capture.events] == ["through the root"]

    def test_a_patched_log_record_is_used(self, monkeypatch):
        def get_message(self):
            return str(self.msg).format(*self.args)

        capture = CaptureSink()
        configure_logging(sinks=[capture], **self.SETTINGS)
        monkeypatch.setattr(logging.LogRecord, "getMessage", get_message)
        logging.getLogger("braces").warning("hello {}", "world")

        assert [e.event for e in capture.events] == ["hello world"]

    def test_a_file_that_cannot_be_written_leaves_the_set_up_in_place(self, tmp_path):
        """Refused at configuration, while the running set-up goes on."""
        capture = CaptureSink()
        service = configure_logging(sinks=[capture], **self.SETTINGS)
        taken = tmp_path / "taken"
        taken.write_text("a file, not a directory")
        with pytest.raises(ConfigurationError, match="log_dir"):
            configure_logging(**{**self.SETTINGS, "log_dir": str(taken)})
        logging.getLogger("lib").warning("still routed")
        get_logger("app").warning("still logged")

        from runtime_logging import get_service

        assert get_service() is service
        assert [e.event for e in capture.events] == ["still routed", "still logged"]

    def test_warnings_capture_after_the_root_was_configured_in_between(self):
        configure_logging(**self.SETTINGS)
        logging.basicConfig(force=True, level=logging.INFO)
        try:
            configure_logging(**self.SETTINGS).shutdown()
            assert warnings.showwarning is not logging._showwarning
        finally:
            for handler in logging.getLogger().handlers:
                handler.close()

    def test_capture_stdlib_switched_while_threads_log(self):
        """Each record reaches the application's handler or the pipeline."""
        counted = []

        class Count(logging.Handler):
            def emit(self, record):
                counted.append(record)

        root = logging.getLogger()
        root.addHandler(Count())
        capture = CaptureSink()
        records_each = 10_000

        def log():
            app = logging.getLogger("switching")
            for _ in range(records_each):
                app.warning("x")

        threads = [threading.Thread(target=log) for _ in range(2)]
        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)  # threads switch at any point
        try:
            for thread in threads:
                thread.start()
            capture_stdlib = True
            while any(thread.is_alive() for thread in threads):
                configure_logging(
                    sinks=[capture], capture_stdlib=capture_stdlib, **self.SETTINGS
                )
                capture_stdlib = not capture_stdlib
        finally:
            sys.setswitchinterval(interval)
        for thread in threads:
            thread.join()

        routed = [e for e in capture.events if e.logger == "switching"]
        assert len(counted) + len(routed) == 2 * records_each

    def test_sinks_built_before_one_that_fails_are_closed(self, tmp_path):
        """The file opened before a metrics port that is taken is closed again."""
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        opened = len(os.listdir("/proc/self/fd"))
        try:
            for _ in range(3):
                with pytest.raises(ConfigurationError, match="metrics_address"):
                    configure_logging(
                        **{
                            **self.SETTINGS,
                            "log_dir": str(tmp_path),
                            "metrics": True,
                            "metrics_address": address,
                        }
                    )
            assert len(os.listdir("/proc/self/fd")) == opened
        finally:
            taken.close()


class TestStdlibAcrossForksAndSignals:
    def test_a_child_forked_while_reconfiguring_logs_as_itself(self, tmp_path):
        """Its lines carry its own pid, and it does not wait on the parent's locks."""
        output = run_script(
            """
            import json, logging, os, sys
            from runtime_logging import configure_logging
            from runtime_logging.sinks import Sink
            log_dir = sys.argv[1]

            class ForksWhileClosing(Sink):
                name = "forks"
                def emit(self, event):
                    pass
                def close(self, timeout=None):
                    pid = os.fork()
                    if pid == 0:
                        logging.getLogger("child").warning("from the child")
                        os._exit(0)
                    os.waitpid(pid, 0)
                    print(pid)

            settings = dict(env={}, console="off", log_dir=log_dir,
                            handle_signals=False)
            configure_logging(sinks=[ForksWhileClosing()], **settings)
            configure_logging(**settings).shutdown()
            """,
            tmp_path,
            timeout=60,
        )
        child = int(output.split()[-1])
        lines = [
            json.loads(line) for line in (tmp_path / "app.log").read_text().splitlines()
        ]
        assert [(line["event"], line["pid"]) for line in lines] == [
            ("from the child", child)
        ]

    def test_sigterm_after_a_reconfiguration_off_the_main_thread(self):
        """The set-up made in a thread is drained when SIGTERM ends the process."""
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                textwrap.dedent(
                    """
                    import os, signal, threading
                    from runtime_logging import configure_logging
                    from runtime_logging.sinks import Sink

                    class Says(Sink):
                        def __init__(self, name):
                            super().__init__()
                            self.name = name
                        def emit(self, event):
                            pass
                        def close(self, timeout=None):
                            print("closed", self.name, flush=True)

                    settings = dict(env={}, console="off", log_dir="off",
                                    handle_signals=True)
                    configure_logging(sinks=[Says("first")], **settings)
                    thread = threading.Thread(target=lambda: configure_logging(
                        sinks=[Says("second")], **settings))
                    thread.start()
                    thread.join()
                    os.kill(os.getpid(), signal.SIGTERM)
                    """
                ),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.stdout.splitlines() == ["closed first", "closed second"]
        assert done.returncode == -signal.SIGTERM


class TestReconfigurationOrder:
    def test_a_threads_lines_stay_in_order_across_a_reconfiguration(self, tmp_path):
        """Held lines go to the new file before the ones logged after the switch."""

        class SlowToClose(Sink):
            name = "slow"

            def emit(self, event):
                pass

            def close(self, timeout=None):
                time.sleep(0.2)

        settings = {"env": {}, "console": "off", "handle_signals": False}
        configure_logging(
            log_dir=str(tmp_path / "a"), sinks=[SlowToClose()], **settings
        )
        stop = threading.Event()

        def log():
            log = get_logger("ordered")
            number = 0
            while not stop.is_set():
                log.info("line", seq=number)
                logging.getLogger("ordered.stdlib").info("line", extra={"seq": number})
                number += 1
                time.sleep(0.0005)

        thread = threading.Thread(target=log)
        thread.start()
        time.sleep(0.05)
        configure_logging(log_dir=str(tmp_path / "b"), level="info", **settings)
        time.sleep(0.05)
        stop.set()
        thread.join()
        configure_logging(log_dir=str(tmp_path / "b"), **settings).shutdown()

        for logger in ("ordered", "ordered.stdlib"):
            numbers = [
                json.loads(line)["seq"]
                for part in ("a", "b")
                for line in (tmp_path / part / "app.log").read_text().splitlines()
                if json.loads(line)["logger"] == logger
            ]
            assert numbers == list(range(len(numbers))), logger
            assert len(numbers) > 100

    def test_the_applications_sigterm_handler_after_a_reconfiguration_in_a_thread(
        self,
    ):
        output = run_script(
            """
            import os, signal, threading
            from runtime_logging import configure_logging
            called = []
            signal.signal(signal.SIGTERM, lambda number, frame: called.append(number))
            settings = dict(env={}, console="off", log_dir="off", handle_signals=True)
            configure_logging(**settings)
            thread = threading.Thread(target=lambda: configure_logging(**settings))
            thread.start()
            thread.join()
            os.kill(os.getpid(), signal.SIGTERM)
            print(called)
            """
        )
        assert output.split() == [f"[{signal.SIGTERM.value}]"]
