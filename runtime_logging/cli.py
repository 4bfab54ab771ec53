"""The ``runtime-logging`` command: demo, emit, check, pretty, stats.

Every command takes every setting as a flag named like the setting
(``log_dir`` is ``--log-dir``), with the same values as the keyword of
`configure_logging()` and the ``RUNTIME_LOGGING_*`` variable.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gzip
import io
import json
import math
import os
import sys
import time
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any, NoReturn, TextIO

from runtime_logging import _service
from runtime_logging.config import (
    LEVELS,
    SETTING_NAMES,
    load_settings,
    parse_duration,
    parse_size,
    setting_help,
)
from runtime_logging.errors import ConfigurationError
from runtime_logging.sinks.console import escape, render_pretty

PROG = "runtime-logging"
#: The first bytes of a gzip stream: how a gzipped file is known, whatever its name.
GZIP_MAGIC = b"\x1f\x8b"


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line, like the command's own."""

    def error(self, message: str) -> NoReturn:
        """Print *message* on one line with where help is; exit with status 2."""
        text = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {text} (see `{self.prog} --help`)\n")


def _add_settings(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("settings (also RUNTIME_LOGGING_<NAME>)")
    group.add_argument("--config", metavar="FILE", help="a TOML file of settings")
    for name in SETTING_NAMES:
        group.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            metavar="VALUE",
            default=None,
            help=setting_help(name),
        )


def _settings_from(args: argparse.Namespace) -> dict[str, Any]:
    return {
        name: getattr(args, name)
        for name in SETTING_NAMES
        if getattr(args, name) is not None
    }


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Structured logging: demo, load, checks and reading logs.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="run the installer workload on real HTTP")
    demo.add_argument("--installations", type=int, default=12, metavar="N")
    _add_settings(demo)

    emit = commands.add_parser(
        "emit", help="send N numbered events through the pipeline"
    )
    emit.add_argument("--count", type=int, required=True, metavar="N")
    emit.add_argument(
        "--rate",
        type=float,
        default=0.0,
        metavar="R",
        help="events a second (0: as fast as possible)",
    )
    emit.add_argument(
        "--size", default="0", metavar="BYTES", help="pad each line to about this size"
    )
    emit.add_argument(
        "--event-level",
        dest="event_level",
        default="info",
        metavar="L",
        help="level of the events",
    )
    emit.add_argument(
        "--processes", type=int, default=1, metavar="P", help="forked writers"
    )
    _add_settings(emit)

    check = commands.add_parser(
        "check", help="validate settings and print them, secrets masked"
    )
    _add_settings(check)

    pretty = commands.add_parser("pretty", help="render JSON log lines for a person")
    pretty.add_argument(
        "files",
        nargs="*",
        metavar="FILE",
        help="plain or gzipped files; '-' or none: stdin",
    )
    pretty.add_argument("--min-level", dest="min_level", default="debug", metavar="L")
    pretty.add_argument(
        "--since",
        default=None,
        metavar="WHEN",
        help="an RFC 3339 instant or a duration back from now ('10m')",
    )
    pretty.add_argument("--color", default="never", choices=("always", "never"))

    stats = commands.add_parser(
        "stats", help="error counts and rates from JSON logs, as the metrics count"
    )
    stats.add_argument(
        "files", nargs="+", metavar="FILE", help="plain, rotated or .gz files"
    )
    stats.add_argument("--json", action="store_true", help="print JSON")
    stats.add_argument(
        "--window",
        default="1m",
        metavar="DURATION",
        help="length of each time window in the breakdown",
    )
    stats.add_argument(
        "--at",
        default=None,
        metavar="INSTANT",
        help="end of the error-rate window (default: the last event)",
    )
    _add_settings(stats)
    return parser


def _count(value: int, flag: str, minimum: int = 0) -> int:
    if value < minimum:
        raise ConfigurationError(f"`{flag}` is {value!r}; expected {minimum} or more.")
    return int(value)


def _emit(args: argparse.Namespace) -> int:
    count = _count(args.count, "--count")
    processes = _count(args.processes, "--processes", minimum=1)
    size = parse_size("--size", args.size)
    if args.event_level not in LEVELS:
        raise ConfigurationError(
            f"`--event-level` is {args.event_level!r}; "
            f"expected one of {', '.join(LEVELS)}."
        )
    if not (math.isfinite(args.rate) and args.rate >= 0):
        raise ConfigurationError(
            f"`--rate` is {args.rate!r}; expected a number of events a second, "
            "0 or more (0: as fast as possible)."
        )
    service = _service.configure_logging(args.config, **_settings_from(args))
    level = LEVELS[args.event_level]
    log = service.get_logger("emit")
    children = []
    for _ in range(processes - 1):
        pid = os.fork()
        if pid == 0:
            _emit_loop(log, level, count, args.rate, size)
            service.shutdown()
            lost = _report_sinks(service, f"process {os.getpid()}: ", quiet=True)
            sys.stdout.flush()
            os._exit(1 if lost else 0)
        children.append(pid)
    _emit_loop(log, level, count, args.rate, size)
    failed = sum(os.waitpid(pid, 0)[1] != 0 for pid in children)
    service.shutdown()
    print(f"emitted {count * processes} events from {processes} process(es)")
    lost = _report_sinks(service, f"process {os.getpid()}: " if children else "")
    if failed:
        print(f"{failed} forked writer(s) lost events or failed")
    return 1 if failed or lost else 0


def _report_sinks(
    service: _service.LoggingService, who: str, *, quiet: bool = False
) -> bool:
    """Print each sink's counts (*quiet*: its problems only); whether any lost."""
    lost = False
    for name, health in service.health().items():
        bad = bool(health.dropped or health.failures)
        lost = lost or bad
        if bad or not quiet:
            detail = f" ({health.detail})" if health.detail else ""
            print(
                f"{who}sink {name}: {health.delivered} delivered, "
                f"{health.dropped} dropped, {health.failures} failures{detail}"
            )
    return lost


def _emit_loop(log: Any, level: int, count: int, rate: float, size: int) -> None:
    # The fixed part of a line is about 230 bytes; the pad brings it to *size*.
    pad = "x" * max(0, size - 230)
    start = time.monotonic()
    for seq in range(count):
        if rate:
            delay = start + seq / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        if pad:
            log.log(level, "emit", seq=seq, pad=pad)
        else:
            log.log(level, "emit", seq=seq)


def _check(args: argparse.Namespace) -> int:
    settings = load_settings(args.config, **_settings_from(args))
    # What configure_logging() checks beyond the settings, so check passes
    # only what it takes.
    _service.check_extras(settings)
    if settings.sentry_dsn:
        from runtime_logging.sinks.sentry import check_dsn

        check_dsn(settings.sentry_dsn)
    if settings.metrics:
        from runtime_logging.metrics._rules import load_rules

        load_rules(settings.metrics_rules, settings.prefix)
    print(json.dumps(settings.masked(), indent=2, sort_keys=True))
    return 0


def read_lines(
    paths: Sequence[str], stdin: TextIO, problems: list[str] | None = None
) -> Iterator[str]:
    """The lines of *paths* (``-`` is *stdin*), or of *stdin* when none.

    Gzipped input is known by its first bytes, from a file or stdin. Input
    that ends early or is damaged gives the lines read before, and a note
    in *problems* (raised when None).
    """
    for path in paths or ["-"]:
        try:
            with _text(path, stdin) as handle:
                yield from handle
        except (EOFError, gzip.BadGzipFile, zlib.error) as error:
            if problems is None:
                raise
            name = "stdin" if path == "-" else path
            problems.append(
                f"{name}: {error}; the lines before were read, the rest is lost"
            )


@contextlib.contextmanager
def _text(path: str, stdin: TextIO) -> Iterator[IO[str]]:
    """*path* (or *stdin* for ``-``) as text, uncompressed when gzipped."""
    if path == "-":
        binary = getattr(stdin, "buffer", None)
        if binary is None:  # a text stream only: read as it is
            yield stdin
            return
    else:
        binary = open(path, "rb")  # noqa: SIM115 - closed below
    peek = getattr(binary, "peek", None)
    head = peek(2)[:2] if peek else b""
    source = gzip.GzipFile(fileobj=binary, mode="rb") if head == GZIP_MAGIC else binary
    text = io.TextIOWrapper(source, encoding="utf-8", errors="backslashreplace")
    try:
        yield text
    finally:
        if path == "-":
            text.detach()  # stdin stays open
        else:
            text.close()
            binary.close()


def parse_since(
    value: str | None, now: float | None = None, flag: str = "--since"
) -> str:
    """An RFC 3339 UTC instant for *value*: an instant, or a duration back from now.

    Raises:
        ConfigurationError: *value* is neither, or out of the calendar's range;
            the message names *flag*.
    """
    if value is None:
        return ""
    try:
        seconds: float | None = parse_duration(flag, value)
    except ConfigurationError:
        seconds = None
    try:
        if seconds is None:
            instant = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            if instant.tzinfo is None:
                instant = instant.replace(tzinfo=dt.timezone.utc)
        else:
            instant = dt.datetime.fromtimestamp(
                (now or time.time()) - seconds, dt.timezone.utc
            )
        return instant.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    except (ValueError, OverflowError, OSError):  # OverflowError: past year 1 or 9999
        raise ConfigurationError(
            f"`{flag}` is {value!r}; expected an instant from year 1 to 9999 "
            "such as '2026-12-04T10:00:00Z' or a duration such as '10m'."
        ) from None


def _pretty(args: argparse.Namespace) -> int:
    threshold = _level_number(_number_or_text(args.min_level))
    if threshold is None:
        raise ConfigurationError(
            f"`--min-level` is {args.min_level!r}; expected one of "
            f"{', '.join(LEVELS)} or a level number such as 30."
        )
    _check_files(args.files)
    since = parse_since(args.since)
    out = sys.stdout
    problems: list[str] = []
    for raw in read_lines(args.files, sys.stdin, problems):
        text = raw.rstrip("\n")
        if not text.strip():
            continue
        try:
            fields = json.loads(text)
        except (ValueError, RecursionError):  # nested deeper than Python reads
            _write(out, f"(not JSON) {escape(text)}\n")
            continue
        if not (isinstance(fields, dict) and "level" in fields and "event" in fields):
            _write(out, f"(not a record) {escape(text)}\n")
            continue
        level = _level_number(fields["level"])
        if level is not None and level < threshold:
            continue
        if since and str(fields.get("timestamp", "")) < since:
            continue
        try:
            shown = render_pretty(fields, colors=args.color == "always")
        except Exception:  # whatever odd JSON a line holds, the line is shown
            shown = f"(not a record) {escape(text)}\n"
        _write(out, shown)
    return _warn(problems)


def _write(out: TextIO, text: str) -> None:
    r"""Write *text*; what *out*'s encoding can't hold is escaped, as on stderr.

    Valid JSON can hold a lone surrogate (``"\ud800"``), which no encoding
    writes as it is.
    """
    try:
        out.write(text)
    except UnicodeEncodeError:
        encoding = out.encoding or "utf-8"
        out.write(text.encode(encoding, "backslashreplace").decode(encoding))


#: Other loggers' names for the schema's levels, as ``pretty`` reads them.
_LEVEL_SPELLINGS = {
    "trace": "debug",
    "notice": "info",
    "warn": "warning",
    "err": "error",
    "crit": "critical",
    "fatal": "critical",
    "panic": "critical",
}


def _number_or_text(text: str) -> int | str:
    """*text* as an int when it is one: how a flag spells a level number."""
    try:
        return int(text)
    except ValueError:
        return text


def _level_number(value: object) -> int | None:
    """The number of a line's *value* of ``level``; None when it names no level.

    Names are read in any case (``ERROR``, ``Warn``) and with other loggers'
    spellings (``fatal``); a number is a stdlib level number.
    """
    if isinstance(value, str):
        name = value.strip().lower()
        return LEVELS.get(_LEVEL_SPELLINGS.get(name, name))
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _check_files(paths: Sequence[str]) -> None:
    for path in paths:
        if path != "-" and not Path(path).is_file():
            raise ConfigurationError(f"`FILE` {path!r} is not a readable file.")


def _warn(problems: list[str]) -> int:
    """Print each problem met while reading on one line; 1 when there was one."""
    for problem in problems:
        print(f"{PROG}: warning: {problem}", file=sys.stderr)
    return 1 if problems else 0


def _demo(args: argparse.Namespace) -> int:
    from runtime_logging.demo import run_demo

    settings = {"log_dir": "logs", "rotation": "builtin", **_settings_from(args)}
    summary = run_demo(
        args.config,
        installations=_count(args.installations, "--installations", minimum=1),
        **settings,
    )
    print(summary.render())
    return 0


def _stats(args: argparse.Namespace) -> int:
    from runtime_logging.metrics._errors import timestamp_second
    from runtime_logging.metrics._rules import load_rules
    from runtime_logging.metrics._stats import ErrorStats, render_table

    _check_files(args.files)
    settings = load_settings(args.config, **_settings_from(args))
    rules = load_rules(settings.metrics_rules, settings.prefix)
    bucket = int(parse_duration("--window", args.window))
    if bucket < 1:
        raise ConfigurationError(
            f"`--window` is {args.window!r}; expected at least 1 second."
        )
    at = None
    if args.at is not None:
        at = timestamp_second(parse_since(args.at, flag="--at"))
    counter = ErrorStats(rules.classifier, int(settings.metrics_error_window), bucket)
    problems: list[str] = []
    counter.add_all(_json_objects(read_lines(args.files, sys.stdin, problems)))
    report = counter.report(at)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        sys.stdout.write(render_table(report))
    return _warn(problems)


def _json_objects(lines: Iterator[str]) -> Iterator[dict[str, Any] | None]:
    for raw in lines:
        if not raw.strip():
            continue
        try:
            fields = json.loads(raw)
        except (ValueError, RecursionError):  # nested deeper than Python reads
            yield None
            continue
        yield fields if isinstance(fields, dict) else None


_COMMANDS = {
    "demo": _demo,
    "emit": _emit,
    "check": _check,
    "pretty": _pretty,
    "stats": _stats,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except ConfigurationError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        if isinstance(error, BrokenPipeError):
            return 0
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
