"""The one event every contender logs, and the check of what they wrote."""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

#: An event no metric rule names: counted by level only, as most are.
MESSAGE = "Module verified"
#: The reference service's event that four of its metric rules count.
COUNTED_MESSAGE = "Installation finished"
FIELDS: dict[str, Any] = {
    "installationId": "inst-4f2a9c81",
    "moduleCount": 12,
    "trigger": "manifest-update",
    "durationSeconds": 1.2345,
    "cached": True,
}
CONTEXT: dict[str, Any] = {"service": "vscode_runtime", "environment": "production"}


class CheckError(Exception):
    """A contender's output is not what it claims to have written."""


def flat(line: Mapping[str, Any]) -> Mapping[str, Any]:
    """A line whose fields sit at the top level, as most tools write them."""
    return line


def read_lines(paths: list[Path]) -> Iterator[bytes]:
    """Every line of *paths*, gzipped backups included, in order."""
    for path in paths:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as stream:
            yield from stream


def _check_record(
    name: str,
    number: int,
    raw: bytes,
    record: Mapping[str, Any],
    message_key: str,
    fields: Mapping[str, Any],
    message: str,
) -> None:
    if record.get(message_key) != message:
        raise CheckError(f"{name}: line {number} lacks the message: {raw[:200]!r}")
    for key, value in {**CONTEXT, **fields}.items():
        if key not in record or record[key] != value:
            raise CheckError(
                f"{name}: line {number} has {key}={record.get(key)!r}, "
                f"not {value!r}: {raw[:300]!r}"
            )
    keys = [key for key in record if key in fields]
    if keys != list(fields):
        raise CheckError(f"{name}: line {number} has the fields in order {keys}")


def check_lines(
    name: str,
    paths: list[Path],
    expected: int,
    message_key: str,
    extract: Callable[[Mapping[str, Any]], Mapping[str, Any]] = flat,
    fields: Mapping[str, Any] = FIELDS,
    on_line: Callable[[Mapping[str, Any]], None] | None = None,
    message: str = MESSAGE,
) -> None:
    """Check that *paths* hold exactly *expected* lines of the event.

    Every line must be one JSON object holding the message under
    *message_key*, the context fields, and the event's fields with their
    values, in the order they were passed; *on_line* sees each record.
    """
    count = 0
    for number, raw in enumerate(read_lines(paths), 1):
        if number > expected:
            raise CheckError(f"{name}: more than the {expected} lines logged")
        if not raw.endswith(b"\n"):
            raise CheckError(f"{name}: line {number} has no newline: {raw[:80]!r}")
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            raise CheckError(f"{name}: line {number} is not JSON ({error})") from None
        if not isinstance(line, dict):
            raise CheckError(f"{name}: line {number} is not an object")
        record = extract(line)
        _check_record(name, number, raw, record, message_key, fields, message)
        if on_line is not None:
            on_line(record)
        count = number
    if count != expected:
        raise CheckError(f"{name}: {count} lines written, {expected} logged")
