"""The console: a readable line per record for a person, or the JSON line.

Control characters are escaped, so one record is always one line and no
attacker-supplied text can forge a line or move the cursor; traceback lines
follow the record, indented behind ``  | `` so they can't pass for records.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any, TextIO

from runtime_logging._encoding import to_jsonable
from runtime_logging._pipeline import LogEvent
from runtime_logging.schema import STANDARD_KEYS
from runtime_logging.sinks import Sink

#: Control characters, line and paragraph separators, and the bidirectional
#: controls that make text display in another order than it is stored.
_CONTROL = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]"
)
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\x1b"}
_NEEDS_QUOTES = re.compile(r'[\s"=\\]')
_COLORS = {
    "debug": "\x1b[2m",
    "info": "\x1b[32m",
    "warning": "\x1b[33m",
    "error": "\x1b[31m",
    "critical": "\x1b[1;31m",
}
_RESET = "\x1b[0m"
_SKIPPED = frozenset(STANDARD_KEYS) | {"exception", "stack"}


def _escaped(match: re.Match[str]) -> str:
    char = match[0]
    code = ord(char)
    return _ESCAPES.get(char) or (
        f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    )


def escape(text: str) -> str:
    """*text* with every control character written as an escape."""
    if not _CONTROL.search(text):
        return text
    return _CONTROL.sub(_escaped, text)


def _value(value: Any) -> str:
    if not isinstance(value, str):
        return escape(repr(value))
    if value and not _NEEDS_QUOTES.search(value) and not _CONTROL.search(value):
        return value
    # Quoted: its own backslashes and quotes doubled first, so that an escape
    # made for a control character has one backslash, as in the message.
    return '"' + escape(value.replace("\\", "\\\\").replace('"', '\\"')) + '"'


def _field_as_written(key: object, value: Any) -> str:
    """One field; if it can't be shown as it is, as its JSON line writes it."""
    try:
        return f"{escape(str(key))}={_value(value)}"
    except Exception:
        ((written_key, written),) = to_jsonable({key: value}).items()
        return f"{escape(written_key)}={_value(written)}"


def exception_lines(data: dict[str, Any]) -> list[str]:
    """Traceback-like text for a structured ``exception`` object."""
    lines: list[str] = []
    for key, heading in (
        ("cause", "The above exception was the direct cause of:"),
        ("context", "During handling of the above, another exception:"),
    ):
        linked = data.get(key)
        if isinstance(linked, dict):
            lines += [*exception_lines(linked), heading]
    lines.append("Traceback (most recent call last):")
    for frame in data.get("frames", ()):
        lines.append(
            f'  File "{frame.get("file")}", line {frame.get("line")}, '
            f"in {frame.get('function')}"
        )
        if frame.get("code"):
            lines.append(f"    {frame['code']}")
    lines.append(f"{data.get('type')}: {data.get('message')}")
    for member in data.get("exceptions", ()):
        lines += ["  +-- member:", *("    " + line for line in exception_lines(member))]
    return lines


def render_pretty(fields: dict[str, Any], colors: bool = False) -> str:
    """The readable form of one event, with its newline."""
    level = str(fields.get("level", ""))
    stamp = str(fields.get("timestamp", ""))[:23].replace("T", " ")
    shown_level = f"{level.upper():<8}"
    if colors:
        shown_level = _COLORS.get(level, "") + shown_level + _RESET
    parts = [
        stamp,
        shown_level,
        f"[{escape(str(fields.get('logger', '')))}]",
        escape(str(fields.get("event", ""))),
    ]
    try:
        parts += [
            f"{escape(str(key))}={_value(value)}"
            for key, value in fields.items()
            if key not in _SKIPPED
        ]
    except Exception:  # a repr or str that raises, an int too long for decimal
        parts += [
            _field_as_written(key, value)
            for key, value in fields.items()
            if key not in _SKIPPED
        ]
    text = " ".join(parts)
    exception = fields.get("exception")
    if isinstance(exception, dict):
        text += "".join(f"\n  | {escape(line)}" for line in exception_lines(exception))
    stack = fields.get("stack")
    if stack:
        text += "".join(f"\n  | {escape(line)}" for line in str(stack).splitlines())
    return text + "\n"


def use_colors(setting: str, stream: TextIO) -> bool:
    """Colours on a terminal unless ``NO_COLOR`` is set; or as *setting* forces."""
    if os.environ.get("NO_COLOR"):
        return False
    if setting == "always":
        return True
    if setting == "never":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class ConsoleSink(Sink):
    """Writes each event to a text stream, readable (``pretty``) or as JSON."""

    name = "console"

    def __init__(
        self,
        stream: TextIO | None = None,
        style: str = "pretty",
        color: str = "auto",
        min_level: int = 0,
    ) -> None:
        """Write to *stream* (stderr when None) in *style*, ``pretty`` or ``json``."""
        super().__init__(min_level)
        self._stream = stream
        self._json = style == "json"
        self._color_setting = color
        self._told_no_stderr = False

    @property
    def stream(self) -> TextIO | None:
        """The stream written to: stderr as it is now, unless one was given.

        None where the process has no stderr (``pythonw``, some daemons).
        """
        return self._stream or sys.stderr

    def emit(self, event: LogEvent) -> None:
        """Write *event* as one record."""
        stream = self.stream
        if stream is None:
            self._lost_without_stderr()
            return
        try:
            if self._json:
                text = event.json_line.decode("utf-8")
            else:
                colors = use_colors(self._color_setting, stream)
                text = render_pretty(event.fields, colors)
            stream.write(text)
            stream.flush()
        except (OSError, ValueError) as error:
            self.dropped += 1
            self._failed("write", error)
        else:
            self.delivered += 1

    def _lost_without_stderr(self) -> None:
        """Count a record dropped for want of stderr; tell it the first time."""
        self.dropped += 1
        self._failed(
            "write",
            "sys.stderr is None (the process has no console); its lines are "
            "dropped: set console = 'off' and keep a log_dir",
            report=not self._told_no_stderr,
        )
        self._told_no_stderr = True
