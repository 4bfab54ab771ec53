"""The console sink: readable lines, colours only where wanted."""

from __future__ import annotations

import io
import sys

import pytest

from runtime_logging import configure_logging, sinks
from runtime_logging._diagnostics import Diagnostics
from runtime_logging.sinks.console import ConsoleSink, render_pretty, use_colors


class _Terminal(io.StringIO):
    def isatty(self):
        return True


class TestColours:
    def test_terminal_gets_colours(self, monkeypatch):
        """On a terminal, colours are on by default."""
        monkeypatch.delenv("NO_COLOR", raising=False)

        assert use_colors("auto", _Terminal()) is True
        assert use_colors("auto", io.StringIO()) is False

    def test_no_color_wins(self, monkeypatch):
        """NO_COLOR turns colours off even when forced on."""
        monkeypatch.setenv("NO_COLOR", "1")

        assert use_colors("always", _Terminal()) is False

    def test_never(self, monkeypatch):
        """color=never keeps a terminal plain."""
        monkeypatch.delenv("NO_COLOR", raising=False)

        assert use_colors("never", _Terminal()) is False


class TestPretty:
    def test_fields_quoted_when_needed(self):
        """Values with spaces, quotes or '=' are quoted; others are bare."""
        fields = {
            "timestamp": "2026-12-04T10:00:00.123456Z",
            "level": "info",
            "logger": "app",
            "event": "done",
            "service": "s",
            "plain": "word",
            "spaced": 'two "words"',
            "number": 3,
            "empty": "",
        }

        text = render_pretty(fields)

        assert text == (
            "2026-12-04 10:00:00.123 INFO     [app] done plain=word "
            'spaced="two \\"words\\"" number=3 empty=""\n'
        )

    def test_exception_chain_indented(self, tmp_path):
        """A chained exception prints both tracebacks, each line indented."""
        stream = io.StringIO()
        service = configure_logging(
            env={},
            console="off",
            log_dir="off",
            handle_signals=False,
            sinks=[ConsoleSink(stream, color="never")],
        )
        try:
            try:
                raise KeyError("inner")
            except KeyError as error:
                raise ValueError("outer") from error
        except ValueError:
            service.get_logger("x").exception("failed")

        lines = stream.getvalue().splitlines()
        assert lines[0].endswith("[x] failed")
        assert all(line.startswith("  | ") for line in lines[1:])
        assert "  | KeyError: 'inner'" in lines
        assert "  | ValueError: outer" in lines

    @pytest.mark.parametrize("style", ["json", "pretty"])
    def test_broken_stream_is_counted(self, style):
        """A closed stream drops the record, counts it and turns degraded."""
        stream = io.StringIO()
        sink = ConsoleSink(stream, style=style)
        service = configure_logging(
            env={}, console="off", log_dir="off", handle_signals=False, sinks=[sink]
        )
        stream.close()

        service.get_logger("x").info("lost")

        assert (sink.dropped, sink.health().state) == (1, "degraded")

    @pytest.mark.parametrize("style", ["json", "pretty"])
    def test_no_stderr_drops_and_says_so_once(self, style, monkeypatch, capfd):
        """With sys.stderr None (pythonw, a daemon), lines are dropped, told once."""
        monkeypatch.setattr(sinks, "diagnostics", Diagnostics())
        service = configure_logging(
            env={}, console=style, log_dir="off", handle_signals=False
        )
        monkeypatch.setattr(sys, "stderr", None)

        service.get_logger("x").warning("one")
        service.get_logger("x").warning("two")

        health = service.health()["console"]
        assert (health.delivered, health.dropped, health.state) == (0, 2, "degraded")
        assert capfd.readouterr().err.count("sys.stderr is None") == 1


BIDI_AND_SEPARATORS = [
    *map(chr, range(0x202A, 0x202F)),
    *map(chr, range(0x2066, 0x206A)),
    "\u200e",
    "\u200f",
    "\u061c",
    "\u2028",
    "\u2029",
    "\x85",
]


def _pretty(event="m", **fields):
    base = {"timestamp": "2026-12-04T10:00:00.123456Z", "level": "info"}
    return render_pretty({**base, "logger": "app", "event": event, **fields})


class TestEscaping:
    """One record is one line, and what it shows reads back unambiguously."""

    @pytest.mark.parametrize("char", BIDI_AND_SEPARATORS)
    def test_bidi_controls_and_separators(self, char):
        """Escaped as \\uXXXX (or \\xNN), in the message and in a field alike."""
        code = ord(char)
        escaped = f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

        text = _pretty(f"a{char}b", f=f"c{char}d")

        assert char not in text
        assert text.splitlines() == [text.rstrip("\n")]
        assert f"a{escaped}b" in text
        assert f'f="c{escaped}d"' in text

    @pytest.mark.parametrize(
        ("value", "shown"),
        [
            ("evil\nline", '"evil\\nline"'),
            ("tab\there", '"tab\\there"'),
            ("esc\x1b[2J", '"esc\\x1b[2J"'),
            ("bell\x07", '"bell\\x07"'),
            ("back\\slash", '"back\\\\slash"'),
            ('say "hi"', '"say \\"hi\\""'),
        ],
    )
    def test_field_escaped_once_like_the_message(self, value, shown):
        """A control character gets one backslash in a field, as in the message."""
        text = _pretty(value, f=value)

        assert text.rstrip("\n").endswith(f" f={shown}")
        if "\\" not in value and '"' not in value:
            assert shown[1:-1] in text.split(" f=")[0]

    def test_escaped_text_is_distinct_from_the_real_character(self):
        """A literal backslash-n in a field does not read as a newline."""
        literal = _pretty(f="a\\nb")
        newline = _pretty(f="a\nb")

        assert literal != newline


class _Unreadable:
    def __hash__(self):
        return 1

    def __repr__(self):
        raise RuntimeError("repr")

    __str__ = __repr__


class _BadStr(str):
    __slots__ = ()

    def __str__(self):
        raise RuntimeError("str")


class TestUnrepresentable:
    """A value that can't be shown as it is keeps its line, as the JSON has it."""

    @pytest.mark.parametrize(
        ("value", "shown", "written"),
        [
            (
                {_Unreadable(): 1},
                "{'<unrepresentable _Unreadable>': 1}",
                '{"<unrepresentable _Unreadable>":1}',
            ),
            (
                {(1, _Unreadable()): 2},
                "{'<unrepresentable tuple>': 2}",
                '{"<unrepresentable tuple>":2}',
            ),
            (_BadStr("s"), "s", '"s"'),
            (10**5000, hex(10**5000), f'"{hex(10**5000)}"'),
        ],
        ids=["dict key", "tuple key", "str subclass", "int past 4300 digits"],
    )
    def test_shown_with_the_json_lines_marker(self, value, shown, written):
        """The pretty line is kept, not dropped, and shows what the file writes."""
        pretty, json_lines = io.StringIO(), io.StringIO()
        sink = ConsoleSink(pretty, style="pretty", color="never")
        service = configure_logging(
            env={},
            console="off",
            log_dir="off",
            handle_signals=False,
            sinks=[sink, ConsoleSink(json_lines, style="json")],
        )

        service.get_logger("x").info("kept", v=value, after="next")

        assert (sink.delivered, sink.dropped) == (1, 0)
        assert pretty.getvalue().endswith(f"[x] kept v={shown} after=next\n")
        assert f'"v":{written},' in json_lines.getvalue()


class TestLocals:
    def test_locals_are_redacted(self, make_log_file):
        """With include_locals, frame variables appear, secrets redacted."""
        log_file = make_log_file(include_locals=True)

        def connect():
            password = "hunter2"  # noqa: F841 - read from the frame
            header = "Bearer abcdef123456"  # noqa: F841
            count = 3
            raise ConnectionError(f"refused after {count} tries")

        try:
            connect()
        except ConnectionError:
            log_file.service.get_logger("x").exception("failed")

        raw = log_file.raw()
        [line] = log_file.lines()
        frame = line["exception"]["frames"][-1]
        assert frame["locals"]["count"] == "3"
        assert b"hunter2" not in raw
        assert b"abcdef123456" not in raw
