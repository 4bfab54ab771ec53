"""The benchmark's output check: a figure from lost or wrong lines is refused."""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import orjson
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))

from _event import CONTEXT, FIELDS, MESSAGE, CheckError, check_lines


def _line(**changes):
    record = {"event": MESSAGE, **CONTEXT, **FIELDS}
    record.update(changes)
    return orjson.dumps({k: v for k, v in record.items() if v is not None}) + b"\n"


def _write(path, *lines):
    path.write_bytes(b"".join(lines))
    return [path]


def test_the_right_lines_pass_and_gzipped_backups_count(tmp_path):
    backup = tmp_path / "app.log.1.gz"
    backup.write_bytes(gzip.compress(_line()))
    current = _write(tmp_path / "app.log", _line(), _line())
    seen = []
    check_lines("ok", [backup, *current], 3, "event", on_line=seen.append)
    assert len(seen) == 3


@pytest.mark.parametrize(
    ("lines", "expected", "complaint"),
    [
        ([_line()], 2, "1 lines written, 2 logged"),
        ([_line(), _line(), _line()], 2, "more than the 2 lines"),
        ([_line(), b'{"event": "Installation'], 2, "no newline"),
        ([_line(), b"{not json}\n"], 2, "not JSON"),
        ([b"[1, 2]\n"], 1, "not an object"),
        ([_line(event="other")], 1, "lacks the message"),
        ([_line(moduleCount=13)], 1, "moduleCount=13"),
        ([_line(service=None)], 1, "service=None"),
    ],
)
def test_a_wrong_output_is_refused(tmp_path, lines, expected, complaint):
    paths = _write(tmp_path / "app.log", *lines)
    with pytest.raises(CheckError, match=complaint):
        check_lines("contender", paths, expected, "event")


def test_fields_out_of_order_are_refused(tmp_path):
    record = {"event": MESSAGE, **CONTEXT, **dict(reversed(FIELDS.items()))}
    paths = _write(tmp_path / "app.log", orjson.dumps(record) + b"\n")
    with pytest.raises(CheckError, match="in order"):
        check_lines("contender", paths, 1, "event")
