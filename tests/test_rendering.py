"""The JSON line and the console line for hostile and odd input (C1-C6)."""

from __future__ import annotations

import collections.abc
import dataclasses
import datetime as dt
import decimal
import enum
import io
import logging
import sys
import types
import uuid

import pytest
from conftest import strict_loads

if sys.version_info >= (3, 11):
    from builtins import ExceptionGroup
else:  # the backport that gives 3.10 exception groups
    from exceptiongroup import ExceptionGroup

from runtime_logging import configure_logging
from runtime_logging._encoding import dumps_line
from runtime_logging.schema import STANDARD_KEYS
from runtime_logging.sinks import Sink
from runtime_logging.sinks._queue import QueuedSink
from runtime_logging.sinks.console import ConsoleSink


class Color(enum.Enum):
    RED = "red"


class BadRepr:
    def __repr__(self):
        raise RuntimeError("no repr for you")


class Unreadable(collections.abc.Mapping):
    """A mapping that fails whatever is done with it but its length."""

    def __getitem__(self, key):
        raise KeyError(key)

    def __iter__(self):
        raise RuntimeError("no iteration")

    def __len__(self):
        return 1


class UnreadableDict(dict):
    def items(self):
        raise RuntimeError("no items")


class Unprintable:
    def __str__(self):
        raise RuntimeError("no str")

    __repr__ = __str__


class TestValuesTheEncoderCantTake:
    """C1 and its neighbours: every value still gives exactly one valid line."""

    def test_c1_reported_values(self, log_file, capfd):
        """Object, aware datetime, Decimal, bytes, UUID and int keys: one line."""
        key = uuid.UUID("12345678-1234-5678-1234-567812345678")
        when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
        log = log_file.service.get_logger("c1")

        log.info(
            "odd",
            obj=object(),
            when=when,
            amount=decimal.Decimal("1.10"),
            raw=b"\xff\x00",
            mapping={key: 1, 7: "seven"},
        )

        [line] = log_file.lines()
        assert line["obj"].startswith("<object object at")
        assert line["when"] == "2026-01-02T03:04:05+00:00"
        assert line["amount"] == "1.10"
        assert isinstance(line["raw"], str)
        assert line["mapping"] == {str(key): 1, "7": "seven"}
        assert capfd.readouterr().err == ""

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ({3, 1, 2}, [1, 2, 3]),
            (frozenset({"a"}), ["a"]),
            (Color.RED, "red"),
            (BadRepr(), "<unrepresentable BadRepr>"),
            ({(1, 2): "tuple key"}, {"(1, 2)": "tuple key"}),
            (dt.date(2026, 1, 2), "2026-01-02"),
            (decimal.Decimal("NaN"), "NaN"),
        ],
    )
    def test_neighbours(self, log_file, value, expected):
        """Sets, enums, broken reprs, tuple keys, dates: one line each, readable."""
        log_file.service.get_logger("c1").info("odd", value=value)

        [line] = log_file.lines()
        assert line["value"] == expected

    def test_values_that_cant_be_read(self, log_file, capfd):
        """A mapping or object that raises when read: its marker, the line kept."""
        log = log_file.service.get_logger("c1")

        log.info("mapping", value=Unreadable())
        log.info("dict", value=UnreadableDict(a=1))
        log.info("nested", value={"a": [Unreadable(), Unprintable()]})
        log.info(Unprintable())
        logging.getLogger("lib.c1").info("extra", extra={"value": Unreadable()})
        logging.getLogger("lib.c1").info(Unprintable())
        logging.getLogger("lib.c1").info("%s", Unprintable())

        lines = log_file.lines()
        assert [line["event"] for line in lines] == [
            "mapping",
            "dict",
            "nested",
            "<unrepresentable Unprintable>",
            "extra",
            "<unrepresentable Unprintable>",
            "%s",
        ]
        assert lines[0]["value"] == "<unrepresentable Unreadable>"
        assert lines[1]["value"] == "<unrepresentable UnreadableDict>"
        assert lines[2]["value"] == {
            "a": ["<unrepresentable Unreadable>", "<unrepresentable Unprintable>"]
        }
        assert lines[4]["value"] == "<unrepresentable Unreadable>"
        assert lines[6]["format_error"] == (
            "RuntimeError('no str') with args <unrepresentable tuple>"
        )
        assert capfd.readouterr().err == ""

    def test_fields_that_cant_be_read_at_all(self, log_file, capfd):
        """A step that fails on the fields still writes the line, and says why."""
        log = log_file.service.get_logger("c1")

        log.info("Installation started", Unreadable())  # the Dart-style mapping

        [line] = log_file.lines()
        assert line["event"] == "Installation started"
        assert line["fields_error"] == "RuntimeError('no iteration')"
        told = capfd.readouterr().err
        assert "fields were lost: RuntimeError('no iteration')" in told

    def test_cycles_and_deep_nesting(self, log_file):
        """A cycle and 10 000-deep nesting still give one valid line each."""
        cycle: dict = {"name": "loop"}
        cycle["self"] = cycle
        deep: list = []
        for _ in range(10_000):
            deep = [deep]
        log = log_file.service.get_logger("c1")

        log.info("cycle", value=cycle)
        log.info("deep", value=deep)

        cyclic, nested = log_file.lines()
        assert cyclic["value"] == {"name": "loop", "self": "<cycle>"}
        assert "<max depth>" in str(nested["value"])


class TestFieldNamesThatClash:
    """C2: reserved names never raise and never replace a standard key."""

    NAMES = (
        "name",
        "message",
        "msg",
        "args",
        "filename",
        "levelname",
        "level",
        "timestamp",
    )

    def test_structlog_api(self, log_file):
        """Through the structlog API, clashing names are kept under the prefix."""
        log_file.service.get_logger("c2").info(
            "clash", **{n: f"v-{n}" for n in self.NAMES}
        )

        [line] = log_file.lines()
        assert line["level"] == "info"
        assert line["timestamp"].endswith("Z")
        assert line["field_level"] == "v-level"
        assert line["field_timestamp"] == "v-timestamp"
        for name in ("name", "message", "msg", "args", "filename", "levelname"):
            assert line[name] == f"v-{name}"

    def test_stdlib_extra(self, log_file):
        """Through stdlib `extra=`, the call doesn't raise and values survive."""
        extra = {n: f"v-{n}" for n in self.NAMES}

        logging.getLogger("lib").warning("clash %s", "x", extra=extra)

        [line] = log_file.lines()
        assert (line["level"], line["logger"], line["event"]) == (
            "warning",
            "lib",
            "clash x",
        )
        assert line["field_level"] == "v-level"
        assert line["field_timestamp"] == "v-timestamp"
        for name in ("name", "message", "msg", "args", "filename", "levelname"):
            assert line[name] == f"v-{name}"

    def test_fields_a_filter_adds_are_kept(self, log_file):
        """What a filter sets on a record after `extra=` is a field like it."""

        def add_request(record):
            record.request_id = "r-1"
            record.user = "changed"
            return True

        logger = logging.getLogger("lib.filtered")
        logger.addFilter(add_request)
        try:
            logger.info("filtered", extra={"user": "u-1", "count": 2})
        finally:
            logger.removeFilter(add_request)

        [line] = log_file.lines()
        assert (line["user"], line["count"], line["request_id"]) == (
            "changed",
            2,
            "r-1",
        )

    def test_records_of_another_layout_keep_their_fields(self, log_file):
        """A record class that sets its own attributes first loses none of them."""

        class Record(logging.LogRecord):
            def __init__(self, *args, **kwargs):
                self.tenant = "t-1"
                super().__init__(*args, **kwargs)

        previous = logging.getLogRecordFactory()
        logging.setLogRecordFactory(Record)
        try:
            logging.getLogger("lib").info("own layout", extra={"count": 3})
        finally:
            logging.setLogRecordFactory(previous)

        [line] = log_file.lines()
        assert (line["tenant"], line["count"]) == ("t-1", 3)

    def test_plain_line_has_exactly_the_documented_keys(self, log_file):
        """A plain line from either API has only the standard keys (no taskName)."""
        log_file.service.get_logger("c2").info("plain")
        logging.getLogger("lib").info("plain")

        first, second = log_file.lines()
        assert list(first) == list(STANDARD_KEYS)
        assert list(second) == list(STANDARD_KEYS)


class TestNonJsonFloatsAndStrings:
    """C3: NaN, infinities and lone surrogates give strict JSON, N calls N lines."""

    def test_file_and_stream(self, tmp_path):
        """The file and a JSON console stream both get strict lines."""
        stream = io.StringIO()
        service = configure_logging(
            env={},
            console="off",
            log_dir=str(tmp_path),
            handle_signals=False,
            sinks=[ConsoleSink(stream, style="json")],
        )
        log = service.get_logger("c3")

        for _ in range(10):
            log.info("floats", nan=float("nan"), inf=float("inf"), ninf=float("-inf"))
            log.info("text \ud800x", value="\ud800x", nested={"k\udfff": ["\ud800"]})
        service.shutdown()

        file_lines = (tmp_path / "app.log").read_bytes().splitlines()
        stream_lines = stream.getvalue().encode("utf-8").splitlines()
        for lines in (file_lines, stream_lines):
            assert len(lines) == 20
            parsed = [strict_loads(line) for line in lines]
            assert parsed[0]["nan"] == "NaN"
            assert parsed[0]["inf"] == "Infinity"
            assert parsed[0]["ninf"] == "-Infinity"
            assert parsed[1]["value"] == "\\ud800x"
            assert parsed[1]["event"] == "text \\ud800x"
            assert parsed[1]["nested"] == {"k\\udfff": ["\\ud800"]}


@dataclasses.dataclass
class Reading:
    value: float
    label: str = "r"


class Ratio(float):
    """A float subclass, as numeric libraries make them."""


class Sentinel(enum.Enum):
    MISSING = float("nan")


class TestValuesOrjsonGetsWrong:
    """Integers past 64 bits and NaN anywhere: one exact, strict line each."""

    @pytest.mark.parametrize(
        "value",
        [
            2**64,
            -(2**70),
            2**64 - 1,
            -(2**63),
            10**40,
            [2**65, {"deep": -(2**100)}],
            {"n": 2**64},
            (1, 2**64),
        ],
    )
    def test_big_integers_are_exact_numbers(self, log_file, value):
        """Python's own JSON parser reads back the very same integers."""
        log_file.service.get_logger("c1").info("big", value=value, other=1)

        [line] = log_file.lines()
        expected = list(value) if isinstance(value, tuple) else value
        assert line["value"] == expected
        assert line["other"] == 1

    def test_integer_too_long_for_decimal_text(self, log_file):
        """Past Python's int-to-text digit limit: its exact hex, as a string."""
        huge = 1 << 20_000

        log_file.service.get_logger("c1").info("huge", value=huge, other=1)

        [line] = log_file.lines()
        assert int(line["value"], 16) == huge
        assert line["other"] == 1

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (Reading(float("nan")), {"value": "NaN", "label": "r"}),
            (Reading(float("-inf"), "x"), {"value": "-Infinity", "label": "x"}),
            ({float("nan")}, ["NaN"]),
            (frozenset({float("inf")}), ["Infinity"]),
            (Sentinel.MISSING, "NaN"),
            (Ratio("nan"), "NaN"),
            (Ratio("inf"), "Infinity"),
            (Ratio("1.5"), 1.5),
            (types.MappingProxyType({"a": float("inf")}), {"a": "Infinity"}),
            (types.MappingProxyType({"a": 1}), {"a": 1}),
            ([Ratio("-inf"), {"k": (Reading(float("nan")),)}], None),
        ],
    )
    def test_non_finite_floats_anywhere(self, log_file, value, expected):
        """Inside dataclasses, sets, enums, float subclasses: never null or 'nan'."""
        log_file.service.get_logger("c3").info("nan", value=value, none=None)

        [line] = log_file.lines()
        if expected is None:
            expected = ["-Infinity", {"k": [{"value": "NaN", "label": "r"}]}]
        assert line["value"] == expected
        assert line["none"] is None

    def test_plain_events_keep_null(self):
        """None stays null; the deeper check is only a second look."""
        line = dumps_line({"a": None, "b": [None, 1.5], "c": Reading(2.0)})

        assert strict_loads(line) == {
            "a": None,
            "b": [None, 1.5],
            "c": {"value": 2.0, "label": "r"},
        }


class TestExceptions:
    """C4: every way of logging an exception gives a structured exception."""

    def test_three_ways(self, log_file):
        """exception(), a stdlib logger and error(exc_info=True) all structure it."""
        log = log_file.service.get_logger("c4")
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            log.exception("failed")
            logging.getLogger("lib").exception("failed")
            log.error("x", exc_info=True)

        lines = log_file.lines()
        assert len(lines) == 3
        for line in lines:
            assert line["exception"]["type"] == "ZeroDivisionError"
            assert line["exception"]["frames"][-1]["function"] == "test_three_ways"
            assert "exc_info" not in line

    def test_chains_and_groups(self, log_file):
        """Causes, contexts and exception groups are followed."""
        log = log_file.service.get_logger("c4")

        def fail():
            try:
                raise KeyError("inner")
            except KeyError as error:
                raise ValueError("outer") from error

        try:
            fail()
        except ValueError as error:
            log.error("chained", exc_info=error)
        try:
            try:
                raise OSError("first")
            except OSError:
                raise RuntimeError("second")  # noqa: B904
        except RuntimeError:
            log.exception("context")
        group = ExceptionGroup("many", [TypeError("a"), ValueError("b")])
        log.error("group", exc_info=group)

        chained, context, grouped = (line["exception"] for line in log_file.lines())
        assert chained["cause"]["type"] == "KeyError"
        assert context["context"]["message"] == "first"
        assert [e["type"] for e in grouped["exceptions"]] == ["TypeError", "ValueError"]

    def test_no_exception_no_key(self, log_file):
        """exc_info=True outside an except block adds nothing."""
        log_file.service.get_logger("c4").error("calm", exc_info=True)

        [line] = log_file.lines()
        assert "exception" not in line


class _TracebackSink(Sink):
    """A Sentry-like sink: formats the original exception itself."""

    name = "traceback"

    def __init__(self):
        super().__init__()
        self.rendered: list[str] = []

    def emit(self, event):
        import traceback

        text = event.event
        if event.exc_info:
            text += "\n" + "".join(traceback.format_exception(*event.exc_info))
        self.rendered.append(text)


class _ListQueuedSink(QueuedSink):
    name = "queued"

    def __init__(self):
        super().__init__(batch_interval=0.01)
        self.lines: list[bytes] = []

    def deliver(self, batch):
        self.lines.extend(event.json_line for event in batch)
        return len(batch)


class TestSinksDontChangeTheRecord:
    """C5: sinks see one rendering each and leave the stdlib record as it was."""

    @pytest.mark.parametrize("reverse", [False, True])
    def test_three_sinks_both_orders(self, tmp_path, reverse):
        """File, Sentry-like, queued: one traceback and message, the record kept."""
        traceback_sink, queued = _TracebackSink(), _ListQueuedSink()
        extra = [traceback_sink, queued]
        service = configure_logging(
            env={},
            console="off",
            log_dir=str(tmp_path),
            handle_signals=False,
            sinks=extra[::-1] if reverse else extra,
        )
        seen = []

        class Keep(logging.Filter):
            def filter(self, record):
                seen.append(record)
                return True

        logger = logging.getLogger("c5")
        logger.addFilter(Keep())
        try:
            try:
                raise ValueError("boom")
            except ValueError:
                logger.error("failed %s of %d", "step", 3, exc_info=True)
            [record] = seen
            before = (record.msg, record.args, record.exc_info)
            service.flush()

            assert (record.msg, record.args, record.exc_info) == before
            file_line = (tmp_path / "app.log").read_bytes()
            assert file_line.count(b"failed step of 3") == 1
            assert file_line.count(b'"type":"ValueError"') == 1
            assert traceback_sink.rendered[0].count("ValueError: boom") == 1
            assert traceback_sink.rendered[0].count("failed step of 3") == 1
            assert queued.lines == [file_line]
        finally:
            logger.filters.clear()


ATTACK = "ok\n2026-01-01T00:00:00.000000Z CRITICAL [root] forged\r\nmore\x1b[2J"


class TestLogInjection:
    """C6: attacker text can't forge a line in the file or on the console."""

    def test_file_and_console(self, tmp_path):
        """One physical line per call; exact round trip; console escapes CR LF ESC."""
        stream = io.StringIO()
        service = configure_logging(
            env={},
            console="off",
            log_dir=str(tmp_path),
            handle_signals=False,
            sinks=[ConsoleSink(stream, style="pretty", color="always")],
        )
        log = service.get_logger("c6")

        log.info("user said %s", ATTACK)
        log.bind(comment=ATTACK).info("bound")
        try:
            raise RuntimeError(ATTACK)
        except RuntimeError:
            log.exception("raised")
        service.flush()

        raw = (tmp_path / "app.log").read_bytes()
        lines = raw.splitlines()
        assert len(lines) == 3
        first, second, third = (strict_loads(line) for line in lines)
        assert first["event"] == "user said " + ATTACK
        assert second["comment"] == ATTACK
        assert third["exception"]["message"] == ATTACK
        console = stream.getvalue().split("\n")
        records = [line for line in console if line and not line.startswith("  | ")]
        assert len(records) == 3
        assert all(not line.startswith("2026-01-01T00:00:00") for line in console)
        assert "\x1b[2J" not in stream.getvalue()
        assert "\r" not in stream.getvalue()
        assert "\\x1b[2J" in records[0]
        assert "\\n2026-01-01T00:00:00.000000Z CRITICAL" in records[1]
