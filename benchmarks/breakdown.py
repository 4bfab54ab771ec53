"""Where the time of one logging call goes: each step alone, in CPU time.

The same event as `run.py`, with runtime_logging set up as it is there
(production defaults: redaction, counters from events, built-in rotation),
taken apart: the syscalls and the encoder every contender pays, then each
step of the pipeline on its own, then the stdlib's own record machinery. The
figures are the best of the rounds, in ns of the calling thread's CPU time,
so they are floors: what a step costs at least.

    python benchmarks/breakdown.py [--calls 100000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import contextvars
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import orjson
from _contenders import RUNTIME_SETTINGS
from _event import FIELDS, MESSAGE

import runtime_logging
from runtime_logging._pipeline import LogEvent
from runtime_logging._stdlib import PipelineHandler, record_fields
from runtime_logging.redaction import RedactionPolicy


def best_ns(call: Callable[[], object], calls: int, rounds: int) -> float:
    """The cheapest round's CPU time per call, less the loop's own cost."""

    def per_call(function: Callable[[], object]) -> float:
        cheapest = float("inf")
        for _ in range(rounds):
            start = time.thread_time_ns()
            for _ in range(calls):
                function()
            cheapest = min(cheapest, (time.thread_time_ns() - start) / calls)
        return cheapest

    return max(0.0, per_call(call) - per_call(lambda: None))


class _Grab:
    """A sink that keeps the last event, to time the real sinks on it."""

    name = "grab"
    min_level = 0
    event: LogEvent | None = None

    def emit(self, event: LogEvent) -> None:
        self.event = event


Rows = list[tuple[str, float]]


def _lock_and_unlock(lock: threading.RLock) -> None:
    lock.acquire()
    lock.release()


def _syscalls_and_encoder(directory: Path, calls: int, rounds: int) -> Rows:
    """What every contender pays: the floor's own parts."""
    line = {"timestamp": time.time(), "event": MESSAGE, **FIELDS}
    encoded = orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE)
    fd = os.open(directory / "raw.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    lock = threading.RLock()
    try:
        return [
            (
                "os.write of one line",
                best_ns(lambda: os.write(fd, encoded), calls, rounds),
            ),
            (
                "os.lseek to the end (the shared size)",
                best_ns(lambda: os.lseek(fd, 0, 2), calls, rounds),
            ),
            (
                "orjson.dumps of a seven-field line",
                best_ns(lambda: orjson.dumps(line), calls, rounds),
            ),
            (
                "lock acquire + release",
                best_ns(partial(_lock_and_unlock, lock), calls, rounds),
            ),
        ]
    finally:
        os.close(fd)


def _hand_fused(directory: Path, calls: int, rounds: int) -> Rows:
    """The default pipeline's work in one function: a floor for Python.

    What a call must do at least, written inline with nothing to configure:
    the context, redaction of the message and fields, the standard fields,
    one JSON line, a locked size check and write, a locked count by level.
    No sinks, no event object, no rotation or health checks, no hooks.
    """
    policy = RedactionPolicy()
    context: contextvars.ContextVar[dict[str, object] | None] = contextvars.ContextVar(
        "context", default=None
    )
    standard = {
        "service": "vscode_runtime",
        "environment": "production",
        "release": "vscode-runtime@1.0.0",
        "host": "vm",
        "pid": os.getpid(),
    }
    fd = os.open(directory / "fused.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    file_lock, count_lock = threading.RLock(), threading.RLock()
    counts: dict[tuple[str, str], int] = {}
    second = time.strftime("%Y-%m-%dT%H:%M:%S.%%06dZ", time.gmtime())

    def info(event: str, **kw: object) -> None:
        bound = context.get()
        fields = {**bound, **kw} if bound else kw
        message = policy.redact_message(event)
        policy.redact_fields(fields)
        now = time.time_ns()
        line = {
            "timestamp": second % (now // 1000 % 1_000_000),
            "level": "info",
            "logger": "bench",
            "event": message,
            **standard,
        }
        line.update(fields)
        encoded = orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE)
        with file_lock:
            if os.lseek(fd, 0, os.SEEK_END) < 1 << 40:
                os.write(fd, encoded)
        with count_lock:
            key = ("events", "info")
            counts[key] = counts.get(key, 0) + 1

    try:
        return [
            (
                "the same work hand-fused (a floor for Python)",
                best_ns(lambda: info(MESSAGE, **FIELDS), calls, rounds),
            )
        ]
    finally:
        os.close(fd)


def _pipeline_steps(
    service: runtime_logging.LoggingService, calls: int, rounds: int
) -> Rows:
    """The structlog API's call, whole and step by step."""
    pipeline = service.pipeline
    policy = pipeline._policy  # a step timed alone
    assert policy is not None
    log = service.get_logger("bench")
    grab = _Grab()
    sinks, pipeline.sinks = pipeline.sinks, (grab,)
    log.info(MESSAGE, **FIELDS)
    event = grab.event
    assert event is not None
    rows = [
        (
            "whole call, no sink (front end + chain)",
            best_ns(lambda: log.info(MESSAGE, **FIELDS), calls, rounds),
        ),
        (
            "redaction of the five fields",
            best_ns(lambda: policy.redact_fields(dict(FIELDS)), calls, rounds),
        ),
        (
            "redaction of the message (cached)",
            best_ns(lambda: policy.redact_message(MESSAGE), calls, rounds),
        ),
        (
            "event + JSON line",
            best_ns(
                lambda: (
                    LogEvent(event.fields, 20, "bench", 0, None, None, True).json_line
                ),
                calls,
                rounds,
            ),
        ),
    ]
    pipeline.sinks = sinks
    rows += [
        (
            f"{sink.name} sink, line rendered",
            best_ns(partial(sink.emit, event), calls, rounds),
        )
        for sink in sinks
    ]
    rows.append(
        ("whole call", best_ns(lambda: log.info(MESSAGE, **FIELDS), calls, rounds))
    )
    return rows


def _stdlib_steps(calls: int, rounds: int) -> Rows:
    """The stdlib API's call: its own machinery, then the handler."""
    lib = logging.getLogger("lib")
    handler = next(
        h for h in logging.getLogger().handlers if isinstance(h, PipelineHandler)
    )

    def make() -> logging.LogRecord:
        return lib.makeRecord("lib", 20, __file__, 1, MESSAGE, (), None, extra=FIELDS)

    record = make()
    return [
        ("stdlib makeRecord", best_ns(make, calls, rounds)),
        (
            "fields of a stdlib record",
            best_ns(lambda: record_fields(record), calls, rounds),
        ),
        (
            "handler, a made record, every sink",
            best_ns(lambda: handler.handle(record), calls, rounds),
        ),
        (
            "whole stdlib call",
            best_ns(lambda: lib.info(MESSAGE, extra=FIELDS), calls, rounds),
        ),
    ]


def _stdlib_machinery(calls: int, rounds: int) -> Rows:
    """A stdlib call with nothing configured but a NullHandler."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    root.handlers[:] = [logging.NullHandler()]
    root.setLevel(logging.INFO)
    lib = logging.getLogger("lib")
    try:
        return [
            (
                "stdlib call to a NullHandler (its machinery)",
                best_ns(lambda: lib.info(MESSAGE, extra=FIELDS), calls, rounds),
            )
        ]
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def measure(calls: int, rounds: int) -> Rows:
    """Each step's floor, in the order the report prints them."""
    directory = Path(tempfile.mkdtemp(prefix="breakdown-"))
    rows = _syscalls_and_encoder(directory, calls, rounds)
    rows += _hand_fused(directory, calls, rounds)
    service = runtime_logging.configure_logging(
        env={}, log_dir=str(directory), **RUNTIME_SETTINGS
    )
    try:
        rows += _pipeline_steps(service, calls, rounds)
        rows += _stdlib_steps(calls, rounds)
    finally:
        service.shutdown()
    rows += _stdlib_machinery(calls, rounds)
    shutil.rmtree(directory)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=7)
    options = parser.parse_args()
    rows = measure(options.calls, options.rounds)
    print("step (best round, calling thread's CPU time)            ns/call")
    for label, ns in rows:
        print(f"{label:55} {ns:8.0f}")


if __name__ == "__main__":
    main()
