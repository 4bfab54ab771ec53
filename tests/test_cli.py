"""The runtime-logging command: emit, check, pretty, and its errors."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import pytest
from loki_server import closed_port

from runtime_logging.cli import main, parse_since


def quiet(log_dir: object) -> list[str]:
    """``emit`` flags for a run that writes only to *log_dir* and keeps signals."""
    return ["--log-dir", str(log_dir), "--console", "off", "--handle-signals", "off"]


def _run(*args: str, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "runtime_logging", *args],
        capture_output=True,
        timeout=120,
        check=False,
        **{"text": True, **kwargs},
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
                *quiet(tmp_path),
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
        config.write_text('loki_username = "u"\nloki_password = "hunter2"\n')

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
            (["emit", "--log-dir", "off"], "--count"),
            (["emit", "--count", "abc"], "'abc'"),
            (["emit", "--count", "1", "--rate", "fast"], "'fast'"),
            (["emit", "--count", "1", "--rate", "nan"], "`--rate` is nan"),
            (["emit", "--count", "1", "--size", "-5"], "`--size` is '-5'"),
            (["emit", "--count", "1", "--processes", "0"], "`--processes` is 0"),
            (["emit", "--count", "1", "--processes", "-2"], "`--processes` is -2"),
            (["emit", "--count", "1", "--event-level", "x"], "`--event-level`"),
            (["demo", "--installations", "0"], "expected 1 or more"),
            (["demo", "--installations", "-1"], "expected 1 or more"),
            (["stats", "x.log", "--window=-1m"], "`--window` is '-1m'"),
            (["pretty", "--since", "yesterday"], "`--since` is 'yesterday'"),
            (["pretty", "--since", "9" * 20 + "s"], "`--since` is '999"),
            (["pretty", "--since", "0001-01-01T00:00:00+14:00"], "`--since` is"),
            (["stats", "x.log", "--at", "9999-12-31T23:59:59-12:00"], "`--at` is"),
            (["stats", "x.log", "--at", "soon"], "`--at` is 'soon'"),
            (["pretty", "--color", "purple"], "'purple'"),
            (["pretty", "--min-level", "loud"], "`--min-level` is 'loud'"),
            (["nonsense"], "'nonsense'"),
            ([], "COMMAND"),
            (["check", "--no-such-flag"], "--no-such-flag"),
        ],
    )
    def test_bad_input_one_line_nonzero(self, args, expected, tmp_path):
        """Bad input exits 2 with one line that says what is wrong, and --help."""
        (tmp_path / "x.log").write_text("")
        result = _run(*args, cwd=tmp_path)

        assert result.returncode == 2
        assert result.stderr.count("\n") == 1, result.stderr
        assert expected in result.stderr
        assert "--help" in result.stderr or "`" in result.stderr
        assert "RUNTIME_LOGGING_--" not in result.stderr
        assert "usage:" not in result.stderr

    def test_cli_flags_are_not_named_as_settings(self, capsys):
        """A flag that is no setting is not offered as an environment variable."""
        status = main(["emit", "--count", "1", "--size", "lots", "--log-dir", "off"])

        err = capsys.readouterr().err
        assert status == 2
        assert "`--size` is 'lots'" in err
        assert "RUNTIME_LOGGING_" not in err

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

    def test_stdin_as_dash_plain_and_gzipped(self, tmp_path):
        """`-` (and no file) reads stdin; gzip is known by its bytes, not its name."""
        plain = json.dumps(LINES[0]).encode() + b"\n"
        packed = gzip.compress(json.dumps(LINES[2]).encode() + b"\n")
        (tmp_path / "noext").write_bytes(packed)

        outputs = [
            _run("pretty", "-", input=plain, text=False).stdout,
            _run("pretty", input=packed, text=False).stdout,
            _run("pretty", "-", input=packed, text=False).stdout,
            _run("pretty", str(tmp_path / "noext")).stdout.encode(),
        ]

        assert [out.split()[-1] for out in outputs] == [
            b"early",
            b"late",
            b"late",
            b"late",
        ]

    @pytest.mark.parametrize("command", ["pretty", "stats"])
    def test_truncated_gzip_warns_and_keeps_what_was_read(self, tmp_path, command):
        """A .gz cut short: its lines so far, one warning line, status 1."""
        body = "".join(
            json.dumps({**LINES[2], "event": f"e{i}", "pad": "x" * i}) + "\n"
            for i in range(300)
        )
        packed = gzip.compress(body.encode())
        cut = tmp_path / "cut.log.gz"
        cut.write_bytes(packed[: len(packed) // 2])
        whole = tmp_path / "whole.log"
        whole.write_text(json.dumps({**LINES[2], "event": "after"}) + "\n")

        result = _run(command, str(cut), str(whole))

        assert result.returncode == 1
        assert result.stderr.count("\n") == 1, result.stderr
        assert "cut.log.gz" in result.stderr
        assert "Traceback" not in result.stderr
        if command == "pretty":
            shown = [line.split()[4] for line in result.stdout.splitlines()]
            assert shown[:5] == ["e0", "e1", "e2", "e3", "e4"]
            assert shown[-1] == "after"
            assert 5 < len(shown) < 301

    @pytest.mark.parametrize(
        "line",
        ['{"not": "a log"}', "[1, 2]", '"text"', "42", "null", '{"level": "info"}'],
    )
    def test_json_that_is_no_record_is_shown(self, tmp_path, capsys, line):
        """JSON that is not a log record is shown as such, not dropped."""
        path = tmp_path / "app.log"
        path.write_text(line + "\n" + json.dumps(LINES[0]) + "\n")

        main(["pretty", str(path)])

        out = capsys.readouterr().out.splitlines()
        assert out[0] == f"(not a record) {line}"
        assert out[1].split()[-1] == "early"

    def test_since_duration(self):
        """--since 10m means ten minutes before now."""
        assert parse_since("10m", now=600.0) == "1970-01-01T00:00:00.000000Z"


class TestCheckSecrets:
    @pytest.mark.parametrize(
        "url",
        [
            "http://127.0.0.1:3100/?token=s3cr3t",
            "http://127.0.0.1:3100/loki?tenant=a&api_key=s3cr3t;x=1",
            "http://127.0.0.1:3100/?s3cr3t",
            "http://127.0.0.1:3100/#access_token=s3cr3t",
            "https://u:pw@127.0.0.1:3100/?sig=s3cr3t",
        ],
    )
    def test_query_secret_in_loki_url_is_masked(self, url, capsys):
        """check shows which query parameters the URL has, never their values."""
        status = main(["check", "--loki-url", url])

        out = capsys.readouterr().out
        assert status == 0
        assert "s3cr3t" not in out
        assert "127.0.0.1:3100" in out

    def test_query_secret_in_a_refused_url_is_masked(self, capsys):
        """The error for a URL with a bad port hides its query's values too."""
        status = main(["check", "--loki-url", "http://127.0.0.1:99999/?token=s3cr3t"])

        err = capsys.readouterr().err
        assert status == 2
        assert "`loki_url`" in err
        assert "s3cr3t" not in err
        assert "token=********" in err


class TestConfigFileEncoding:
    def test_check_not_utf8_one_line_exit_2(self, tmp_path):
        """check on a Latin-1 config file exits 2 with one line, no traceback."""
        config = tmp_path / "c.toml"
        config.write_bytes('release = "caf\u00e9-1.0"\n'.encode("latin-1"))

        result = _run("check", "--config", str(config))

        assert result.returncode == 2
        assert result.stderr.count("\n") == 1, result.stderr
        assert "`config_file`" in result.stderr
        assert "UTF-8" in result.stderr


class TestEmitReport:
    def test_drops_reported_per_sink_nonzero(self, capsys):
        """emit to a Loki that refuses connections says what was dropped, exits 1."""
        with closed_port() as port:
            status = main(
                [
                    "emit",
                    "--count",
                    "100",
                    *quiet("off"),
                    "--loki-url",
                    f"http://127.0.0.1:{port}",
                    "--shutdown-timeout",
                    "1",
                ]
            )

        out = capsys.readouterr().out
        assert status == 1
        assert "sink loki: 0 delivered, 100 dropped" in out

    def test_all_delivered_exit_0(self, tmp_path, capsys):
        """Every event written: each sink's count is shown and the status is 0."""
        status = main(
            [
                "emit",
                "--count",
                "10",
                *quiet(tmp_path),
            ]
        )

        out = capsys.readouterr().out
        assert status == 0
        assert "sink file: 10 delivered, 0 dropped" in out


_ODD_LINES = {
    "frames not a list": {**LINES[2], "exception": {"type": "X", "frames": 5}},
    "frame not an object": {**LINES[2], "exception": {"type": "X", "frames": ["s"]}},
    "level a list": {**LINES[2], "level": ["a"]},
    "error_type a list": {**LINES[2], "level": "error", "error_type": ["a"]},
}


class TestOddJson:
    @pytest.mark.parametrize("odd", ["frames not a list", "frame not an object"])
    def test_pretty_shows_what_it_cannot_render(self, tmp_path, capsys, odd):
        """A record pretty can't render is shown as it is; the next lines follow."""
        text = json.dumps(_ODD_LINES[odd])
        path = tmp_path / "app.log"
        path.write_text(text + "\n" + json.dumps({**LINES[2], "event": "after"}) + "\n")

        status = main(["pretty", str(path)])

        out = capsys.readouterr().out.splitlines()
        assert status == 0
        assert out[-1].split()[-1] == "after"
        assert out[0] == f"(not a record) {text}" or out[0].split()[3] == "late"

    def test_deeply_nested_line(self, tmp_path):
        """JSON nested deeper than Python reads: shown, counted, no traceback."""
        path = tmp_path / "app.log"
        path.write_text(
            "[" * 100_000 + "\n" + json.dumps({**LINES[2], "event": "after"}) + "\n"
        )

        pretty = _run("pretty", str(path))
        stats = _run("stats", "--json", str(path))

        assert "Traceback" not in pretty.stderr + stats.stderr
        assert pretty.stdout.splitlines()[0].startswith("(not JSON) [[[[")
        assert pretty.stdout.splitlines()[-1].split()[-1] == "after"
        report = json.loads(stats.stdout)
        assert (report["events"], report["unreadable_lines"]) == (1, 1)

    def test_lone_surrogate_escaped(self, tmp_path):
        """A lone surrogate in a valid JSON line is shown escaped; then the next."""
        path = tmp_path / "app.log"
        path.write_text(
            json.dumps({**LINES[2], "event": "a\ud800b", "f": "\udfff"})
            + "\n"
            + json.dumps({**LINES[2], "event": "after"})
            + "\n"
        )

        pretty = _run("pretty", str(path))

        assert (pretty.returncode, pretty.stderr) == (0, "")
        first, second = pretty.stdout.splitlines()
        assert " a\\ud800b " in first
        assert first.endswith(" f=\\udfff")
        assert second.split()[-1] == "after"

    @pytest.mark.parametrize("odd", list(_ODD_LINES), ids=list(_ODD_LINES))
    def test_stats_counts_what_it_cannot_read(self, tmp_path, capsys, odd):
        """A record stats can't count is an unreadable line; the others count."""
        path = tmp_path / "app.log"
        path.write_text(
            json.dumps(_ODD_LINES[odd]) + "\n" + json.dumps(LINES[2]) + "\n"
        )

        status = main(["stats", "--json", str(path)])

        report = json.loads(capsys.readouterr().out)
        assert status == 0
        assert report["events"] + report["unreadable_lines"] == 2
        assert report["levels"]["error"] >= 1


class TestPrettyLevels:
    LEVELS = ("ERROR", "WARN", "fatal", None, ["a"], "verbose", 40, "info", "Trace")

    def _events(self, tmp_path, capsys, min_level):
        path = tmp_path / "app.log"
        path.write_text(
            "".join(
                json.dumps({**LINES[0], "level": level, "event": f"ev{i}"}) + "\n"
                for i, level in enumerate(self.LEVELS)
            )
        )
        assert main(["pretty", str(path), "--min-level", min_level]) == 0
        return [line.split()[4] for line in capsys.readouterr().out.splitlines()]

    def test_debug_hides_nothing(self, tmp_path, capsys):
        """At --min-level debug every record is shown, whatever its level."""
        shown = self._events(tmp_path, capsys, "debug")

        assert shown == [f"ev{i}" for i in range(len(self.LEVELS))]

    def test_min_level_a_number(self, tmp_path, capsys):
        """--min-level 30 filters as warning does: a number as lines hold it."""
        by_number = self._events(tmp_path, capsys, "30")

        assert by_number == self._events(tmp_path, capsys, "warning")
        assert by_number == [f"ev{i}" for i in range(7)]

    def test_other_spellings_filtered_unknown_shown(self, tmp_path, capsys):
        """ERROR, fatal and 40 are errors; WARN, info and Trace are below; the
        levels that name none (null, a list, 'verbose') are always shown."""
        shown = self._events(tmp_path, capsys, "error")

        assert shown == ["ev0", "ev2", "ev3", "ev4", "ev5", "ev6"]


class TestCheckAsConfigure:
    def test_dsn_sentry_sdk_refuses(self):
        """check refuses a DSN as configure_logging() does (here: no key)."""
        result = _run("check", "--sentry-dsn", "http://127.0.0.1:9/1")

        assert result.returncode == 2
        assert result.stderr.count("\n") == 1, result.stderr
        assert "`sentry_dsn`" in result.stderr

    def test_bad_rules_file_with_metrics_on(self, tmp_path):
        """check reads the metrics rules as configure_logging() does."""
        rules = tmp_path / "rules.toml"
        rules.write_text('[[rules]]\nevent = "x"\nmetric = "bad name"\n')

        result = _run("check", "--metrics", "true", "--metrics-rules", str(rules))

        assert result.returncode == 2
        assert result.stderr.count("\n") == 1, result.stderr
        assert "`metrics_rules`" in result.stderr


class TestStatsWindow:
    def test_error_window_of_zero_one_line(self, tmp_path):
        """stats with metrics_error_window 0: one line, exit 2, no traceback."""
        path = tmp_path / "app.log"
        path.write_text(json.dumps(LINES[2]) + "\n")

        result = _run("stats", str(path), "--metrics-error-window", "0")

        assert result.returncode == 2
        assert result.stderr.count("\n") == 1, result.stderr
        assert "`metrics_error_window`" in result.stderr


class TestMinLevelSpellings:
    @pytest.mark.parametrize("flag", ["WARN", "Warning", "warn"])
    def test_min_level_read_as_lines_are(self, tmp_path, capsys, flag):
        """--min-level takes the spellings pretty reads in lines."""
        path = tmp_path / "app.log"
        path.write_text("".join(json.dumps(line) + "\n" for line in LINES))

        status = main(["pretty", str(path), "--min-level", flag])

        out = capsys.readouterr().out.splitlines()
        assert status == 0
        assert [line.split()[4] for line in out] == ["late"]


class TestCheckExtras:
    @pytest.mark.parametrize(
        ("flags", "module", "extra"),
        [
            (["--loki-url", "http://127.0.0.1:3100"], "urllib3", "loki"),
            (["--metrics", "true"], "prometheus_client", "metrics"),
            (["--sentry-dsn", "http://k@127.0.0.1:9/1"], "sentry_sdk", "sentry"),
        ],
    )
    def test_missing_extra_refused(self, monkeypatch, capsys, flags, module, extra):
        """check fails as configure_logging() does when a setting's extra is missing."""
        for name in [m for m in sys.modules if m.startswith(module + ".")]:
            monkeypatch.setitem(sys.modules, name, None)  # loaded by other tests
        monkeypatch.setitem(sys.modules, module, None)
        for name in ("runtime_logging.sinks.loki", "runtime_logging.metrics._sink"):
            monkeypatch.delitem(sys.modules, name, raising=False)

        status = main(["check", *flags])

        assert status == 2
        assert f"pip install 'runtime-logging[{extra}]'" in capsys.readouterr().err
