"""The set-ups a user would pick, each logging the same event to a file.

Each contender's ``setup(directory)`` configures its tool to write into
*directory* and returns a `Trial`: ``run(n)`` logs the event *n* times the
way a user's code would, ``close()`` flushes and undoes the set-up, and
``paths()`` names what was written, for the check.
"""

from __future__ import annotations

import dataclasses
import logging
import logging.handlers
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson
from _event import CONTEXT, COUNTED_MESSAGE, FIELDS, MESSAGE, flat

ID = FIELDS["installationId"]
COUNT = FIELDS["moduleCount"]
TRIGGER = FIELDS["trigger"]
DURATION = FIELDS["durationSeconds"]
CACHED = FIELDS["cached"]


@dataclasses.dataclass
class Trial:
    """One configured contender, ready to log."""

    run: Callable[[int], None]
    close: Callable[[], None]
    paths: Callable[[], list[Path]]


@dataclasses.dataclass(frozen=True)
class Contender:
    """A named set-up, the key its message is written under, and how to read it."""

    name: str
    label: str
    setup: Callable[[Path], Trial]
    message_key: str = "event"
    extract: Callable[[Mapping[str, Any]], Mapping[str, Any]] = flat
    #: Lines one call writes: 0 for a filtered-out call.
    lines_per_call: int = 1
    message: str = MESSAGE


def _files(directory: Path) -> Callable[[], list[Path]]:
    def paths() -> list[Path]:
        # The log file and its backups, not locks or other tools' state.
        return sorted(
            p for p in directory.glob("*.log*") if not p.name.endswith(".lock")
        )

    return paths


# --- the floor ---------------------------------------------------------------


def floor(directory: Path) -> Trial:
    fd = os.open(directory / "floor.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    dumps = orjson.dumps
    option = orjson.OPT_APPEND_NEWLINE
    write = os.write

    def run(n: int) -> None:
        for _ in range(n):
            line = {
                "timestamp": time.time(),
                "level": "info",
                "event": MESSAGE,
                "service": "vscode_runtime",
                "environment": "production",
                "installationId": ID,
                "moduleCount": COUNT,
                "trigger": TRIGGER,
                "durationSeconds": DURATION,
                "cached": CACHED,
            }
            write(fd, dumps(line, option=option))

    return Trial(run, lambda: os.close(fd), _files(directory))


# --- stdlib logging ----------------------------------------------------------


def _stdlib_trial(directory: Path, handler: logging.Handler, level: str) -> Trial:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    for old in saved[0]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    log = logging.getLogger("bench")

    def run(n: int) -> None:
        for _ in range(n):
            log.info(
                MESSAGE,
                extra={
                    "installationId": ID,
                    "moduleCount": COUNT,
                    "trigger": TRIGGER,
                    "durationSeconds": DURATION,
                    "cached": CACHED,
                },
            )

    def run_debug(n: int) -> None:
        for _ in range(n):
            log.debug(
                MESSAGE,
                extra={
                    "installationId": ID,
                    "moduleCount": COUNT,
                    "trigger": TRIGGER,
                    "durationSeconds": DURATION,
                    "cached": CACHED,
                },
            )

    def close() -> None:
        root.removeHandler(handler)
        handler.close()
        for old in saved[0]:
            root.addHandler(old)
        root.setLevel(saved[1])

    return Trial(run if level == "info" else run_debug, close, _files(directory))


def _json_formatter(kind: str) -> logging.Formatter:
    if kind == "orjson":
        from pythonjsonlogger.orjson import OrjsonFormatter as Formatter
    else:
        from pythonjsonlogger.json import JsonFormatter as Formatter
    return Formatter(  # type: ignore[no-any-return]
        "{asctime}{levelname}{name}{message}", style="{", static_fields=CONTEXT
    )


def stdlib_json(directory: Path) -> Trial:
    handler = logging.FileHandler(directory / "app.log")
    handler.setFormatter(_json_formatter("json"))
    return _stdlib_trial(directory, handler, "info")


def stdlib_rotating(directory: Path) -> Trial:
    handler = logging.handlers.RotatingFileHandler(
        directory / "app.log", maxBytes=100 * 1000**2, backupCount=7
    )
    handler.setFormatter(_json_formatter("json"))
    return _stdlib_trial(directory, handler, "info")


def stdlib_orjson(directory: Path) -> Trial:
    handler = logging.FileHandler(directory / "app.log")
    handler.setFormatter(_json_formatter("orjson"))
    return _stdlib_trial(directory, handler, "info")


def stdlib_null(directory: Path) -> Trial:
    """The stdlib's own record machinery, with a handler that does nothing."""
    return _stdlib_trial(directory, logging.NullHandler(), "info")


def stdlib_debug(directory: Path) -> Trial:
    handler = logging.FileHandler(directory / "app.log")
    handler.setFormatter(_json_formatter("json"))
    return _stdlib_trial(directory, handler, "debug")


# --- structlog ---------------------------------------------------------------


def _structlog_fast(directory: Path, level: str) -> Trial:
    import structlog

    stream = (directory / "app.log").open("wb")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.BytesLoggerFactory(stream),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(**CONTEXT)
    log = structlog.get_logger("bench").bind()

    def run(n: int) -> None:
        for _ in range(n):
            log.info(
                MESSAGE,
                installationId=ID,
                moduleCount=COUNT,
                trigger=TRIGGER,
                durationSeconds=DURATION,
                cached=CACHED,
            )

    def run_debug(n: int) -> None:
        for _ in range(n):
            log.debug(
                MESSAGE,
                installationId=ID,
                moduleCount=COUNT,
                trigger=TRIGGER,
                durationSeconds=DURATION,
                cached=CACHED,
            )

    def close() -> None:
        structlog.contextvars.clear_contextvars()
        structlog.reset_defaults()
        stream.close()

    return Trial(run if level == "info" else run_debug, close, _files(directory))


def structlog_fast(directory: Path) -> Trial:
    return _structlog_fast(directory, "info")


def structlog_debug(directory: Path) -> Trial:
    return _structlog_fast(directory, "debug")


def structlog_stdlib(directory: Path) -> Trial:
    """structlog rendering through stdlib, as its documentation sets it up."""
    import structlog

    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        structlog.processors.UnicodeDecoder(),
    ]
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.JSONRenderer(),
        ],
    )
    handler = logging.FileHandler(directory / "app.log")
    handler.setFormatter(formatter)
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    for old in saved[0]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    structlog.contextvars.bind_contextvars(**CONTEXT)
    log = structlog.get_logger("bench").bind()

    def run(n: int) -> None:
        for _ in range(n):
            log.info(
                MESSAGE,
                installationId=ID,
                moduleCount=COUNT,
                trigger=TRIGGER,
                durationSeconds=DURATION,
                cached=CACHED,
            )

    def close() -> None:
        structlog.contextvars.clear_contextvars()
        structlog.reset_defaults()
        root.removeHandler(handler)
        handler.close()
        for old in saved[0]:
            root.addHandler(old)
        root.setLevel(saved[1])

    return Trial(run, close, _files(directory))


# --- loguru ------------------------------------------------------------------


def loguru_serialize(directory: Path) -> Trial:
    from loguru import logger

    logger.remove()
    sink = logger.add(directory / "app.log", serialize=True, level="INFO")
    log = logger.bind(**CONTEXT)

    def run(n: int) -> None:
        for _ in range(n):
            log.info(
                MESSAGE,
                installationId=ID,
                moduleCount=COUNT,
                trigger=TRIGGER,
                durationSeconds=DURATION,
                cached=CACHED,
            )

    return Trial(run, lambda: logger.remove(sink), _files(directory))


def loguru_record(line: Mapping[str, Any]) -> Mapping[str, Any]:
    record = line["record"]
    return {"message": record["message"], **record["extra"]}


# --- runtime_logging ---------------------------------------------------------

#: The production set-up: the defaults, built-in size rotation and the
#: counters derived from events, with the file in *directory*, no console
#: (every contender writes one file and nothing else) and no /metrics
#: listener (a scrape is not part of an event's cost).
RUNTIME_SETTINGS: dict[str, Any] = {
    "console": "off",
    "rotation": "builtin",
    "metrics": True,
    "metrics_address": "off",
}


def _runtime(directory: Path, kind: str, message: str = MESSAGE) -> Trial:
    import runtime_logging

    service = runtime_logging.configure_logging(
        env={}, log_dir=str(directory), **RUNTIME_SETTINGS
    )
    log = service.get_logger("bench")
    lib = logging.getLogger("lib")

    def run(n: int) -> None:
        for _ in range(n):
            log.info(
                message,
                installationId=ID,
                moduleCount=COUNT,
                trigger=TRIGGER,
                durationSeconds=DURATION,
                cached=CACHED,
            )

    def run_debug(n: int) -> None:
        for _ in range(n):
            log.debug(
                message,
                installationId=ID,
                moduleCount=COUNT,
                trigger=TRIGGER,
                durationSeconds=DURATION,
                cached=CACHED,
            )

    def run_stdlib(n: int) -> None:
        for _ in range(n):
            lib.info(
                message,
                extra={
                    "installationId": ID,
                    "moduleCount": COUNT,
                    "trigger": TRIGGER,
                    "durationSeconds": DURATION,
                    "cached": CACHED,
                },
            )

    runs = {"info": run, "debug": run_debug, "stdlib": run_stdlib}
    return Trial(runs[kind], service.shutdown, _files(directory))


def runtime_default(directory: Path) -> Trial:
    return _runtime(directory, "info")


def runtime_counted(directory: Path) -> Trial:
    return _runtime(directory, "info", COUNTED_MESSAGE)


def runtime_stdlib(directory: Path) -> Trial:
    return _runtime(directory, "stdlib")


def runtime_debug(directory: Path) -> Trial:
    return _runtime(directory, "debug")


CONTENDERS = (
    Contender("floor", "floor: orjson.dumps + os.write", floor),
    Contender(
        "stdlib_json",
        "stdlib + python-json-logger + FileHandler",
        stdlib_json,
        "message",
    ),
    Contender(
        "stdlib_rotating",
        "stdlib + python-json-logger + RotatingFileHandler",
        stdlib_rotating,
        "message",
    ),
    Contender(
        "stdlib_orjson",
        "stdlib + python-json-logger orjson + FileHandler",
        stdlib_orjson,
        "message",
    ),
    Contender(
        "stdlib_null",
        "stdlib record machinery alone (NullHandler)",
        stdlib_null,
        "message",
        flat,
        0,
    ),
    Contender("structlog_fast", "structlog fast path", structlog_fast),
    Contender(
        "structlog_stdlib", "structlog via stdlib ProcessorFormatter", structlog_stdlib
    ),
    Contender(
        "loguru",
        "loguru serialize=True",
        loguru_serialize,
        "message",
        loguru_record,
    ),
    Contender("runtime", "runtime_logging default pipeline", runtime_default),
    Contender(
        "runtime_counted",
        "runtime_logging, an event 4 metric rules count",
        runtime_counted,
        message=COUNTED_MESSAGE,
    ),
    Contender("runtime_stdlib", "runtime_logging, a stdlib record", runtime_stdlib),
    Contender(
        "stdlib_debug", "filtered debug: stdlib", stdlib_debug, "message", flat, 0
    ),
    Contender(
        "structlog_debug",
        "filtered debug: structlog",
        structlog_debug,
        "event",
        flat,
        0,
    ),
    Contender(
        "runtime_debug",
        "filtered debug: runtime_logging",
        runtime_debug,
        "event",
        flat,
        0,
    ),
)
