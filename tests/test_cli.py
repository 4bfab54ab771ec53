"""The runtime-logging command: emit, check, pretty, and its errors."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import pytest

from runtime_logging.cli import main, parse_since


def _run(*args: str, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "runtime_logging", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        **kwargs,
    )


class TestEmit:
    def test_hundred_thousand_in_order(self, tmp_path):
        """emit --count 100000 writes exactly 100 000 lines, seq 0..99 999 in order."""
        result = _run(
            "emit", "--count", "100000", "--log-dir", str(tmp_path), "--console", "off"
        )

        assert result.returncode == 0, result.stderr
        lines = (tmp_path / "app.log").read_bytes().splitlines()
        seqs = [json.loads(line)["seq"] for line in lines]
        assert seqs == list(range(100_000))

    def test_size_and_level(self, tmp_path):
        """--size pads lines to about that size; --event-level sets their level."""
        main(
            [
                "emit",
                "--count",
                "5",
                "--size",
                "1KB",
                "--event-level",
                "warning",
                "--log-dir",
                str(tmp_path),
                "--console",
                "off",
                "--handle-signals",
                "off",
            ]
        )

        lines = (tmp_path / "app.log").read_bytes().splitlines()
        assert len(lines) == 5
        assert all(900 <= len(line) <= 1100 for line in lines)
        assert {json.loads(line)["level"] for line in lines} == {"warning"}


class TestCheck:
    def test_prints_effective_settings_masked(self, tmp_path, capsys):
        """check prints the settings with units applied and secrets masked."""
        config = tmp_path / "c.toml"
        config.write_text('loki_password = "hunter2"\n')

        status = main(["check", "--config", str(config), "--max-bytes", "1MB"])

        shown = json.loads(capsys.readouterr().out)
        assert status == 0
        assert shown["max_bytes"] == 1_000_000
        assert shown["loki_password"] == "********"

    @pytest.mark.parametrize(
        ("args", "expected"),
        [
            (["check", "--level", "loud"], "`level` is 'loud'"),
            (["check", "--max-bytes", "lots"], "`max_bytes` is 'lots'"),
            (["emit", "--count", "-1", "--log-dir", "off"], "`--count`"),
            (["pretty", "/nonexistent/file.log"], "not a readable file"),
        ],
    )
    def test_bad_input_one_line_nonzero(self, args, expected):
        """Bad input exits non-zero with one line that says what is wrong."""
        result = _run(*args)

        assert result.returncode == 2
        assert result.stderr.count("\n") == 1
        assert expected in result.stderr

    def test_help(self):
        """--help explains the settings flags."""
        result = _run("emit", "--help")

        assert result.returncode == 0
        assert "--log-dir" in result.stdout
        assert "--sentry-dsn" in result.stdout


LINES = [
    {
        "timestamp": "2026-12-04T10:00:00.000000Z",
        "level": "info",
        "logger": "a",
        "event": "early",
    },
    {
        "timestamp": "2026-12-04T11:00:00.000000Z",
        "level": "debug",
        "logger": "a",
        "event": "quiet",
    },
    {
        "timestamp": "2026-12-04T12:00:00.000000Z",
        "level": "error",
        "logger": "a",
        "event": "late",
    },
]


class TestPretty:
    def test_plain_and_gzipped_with_filters(self, tmp_path, capsys):
        """pretty reads plain and .gz files and filters by level and time."""
        plain = tmp_path / "app.log"
        rotated = tmp_path / "app.log.1.gz"
        plain.write_text("".join(json.dumps(line) + "\n" for line in LINES[1:]))
        with gzip.open(rotated, "wt") as handle:
            handle.write(json.dumps(LINES[0]) + "\n")

        main(
            [
                "pretty",
                str(rotated),
                str(plain),
                "--min-level",
                "info",
                "--since",
                "2026-12-04T09:30:00Z",
            ]
        )

        out = capsys.readouterr().out.splitlines()
        assert [line.split()[-1] for line in out] == ["early", "late"]

    def test_not_json_is_shown_escaped(self, tmp_path, capsys):
        """A line that is not JSON is shown, escaped, not dropped."""
        path = tmp_path / "app.log"
        path.write_text("garbage \x1b[2J\n")

        main(["pretty", str(path)])

        assert capsys.readouterr().out == "(not JSON) garbage \\x1b[2J\n"

    def test_since_duration(self):
        """--since 10m means ten minutes before now."""
        assert parse_since("10m", now=600.0) == "1970-01-01T00:00:00.000000Z"
