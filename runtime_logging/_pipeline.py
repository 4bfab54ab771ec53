"""The one chain every record passes, whichever API made it.

context -> standard fields -> exception -> redaction -> rate limit -> fan-out.

Users add processors after the first three steps (hook points ``context``,
``fields`` and ``exception``); nothing can be added after redaction, so no
sink ever sees a field that redaction did not see.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import (
    Callable,
    Iterable,
    Iterator,
    Mapping,
    MutableMapping,
    Sequence,
)
from pathlib import Path
from typing import Any, Protocol

from orjson import OPT_APPEND_NEWLINE as _APPEND_NEWLINE
from orjson import dumps as _dumps
from structlog import DropEvent

from runtime_logging._diagnostics import Diagnostics, diagnostics
from runtime_logging._encoding import dumps_line, safe_repr, safe_str
from runtime_logging._exceptions import (
    ExcInfo,
    logged_before,
    resolve_exc_info,
    structure_exception,
)
from runtime_logging._trace import current_trace_ids
from runtime_logging.config import LEVELS, Settings
from runtime_logging.context import _context as _context_var
from runtime_logging.redaction import RedactionPolicy
from runtime_logging.schema import FIELD_PREFIX, RESERVED_KEYS, STANDARD_KEYS

HOOK_POINTS = ("context", "fields", "exception")

#: Events a replaced set-up keeps for the next at most; past it, they go to
#: its own sinks (the file appends them; a closed network sink drops them).
MAX_HELD = 100_000
#: Logger names whose level is remembered; past it, the memory starts again.
_MAX_CACHED_LOGGERS = 10_000
#: The toolkit's files a logging call passes through, left out of ``stack``.
_OWN_FILES = frozenset({__file__, str(Path(__file__).with_name("_logger.py"))})

#: A structlog-style processor: ``(logger, method_name, event_dict) -> event_dict``.
Processor = Callable[[Any, str, MutableMapping[str, Any]], MutableMapping[str, Any]]


class _LevelNames(dict[int, str]):
    """Level numbers to the schema's words; a custom level takes the next lower."""

    def __missing__(self, number: int) -> str:
        lower = [n for n in self if n <= number]
        return self[max(lower)] if lower else "debug"


LEVEL_NAMES = _LevelNames({number: name for name, number in LEVELS.items()})


def level_name(number: int) -> str:
    """The schema's word for a numeric level; custom levels take the next lower."""
    return LEVEL_NAMES[number]


class LoggerLevels(dict[str, int]):
    """The level each logger name takes, worked out on its first call.

    Its own from ``logger_levels``, else its nearest parent's, else the
    global level. A dict, so that the check of every call is one lookup.
    """

    def __init__(self, default: int, levels: Mapping[str, int]) -> None:
        """*default* for names that *levels* and their parents don't name."""
        super().__init__()
        self.default = default
        self.levels = dict(levels)

    def __missing__(self, logger: str) -> int:
        threshold = self.default
        name = logger
        while name:
            own = self.levels.get(name)
            if own is not None:
                threshold = own
                break
            name = name.rpartition(".")[0]
        if len(self) >= _MAX_CACHED_LOGGERS:
            self.clear()  # names made on the fly: start again
        self[logger] = threshold
        return threshold


class LogEvent:
    """One event after the whole chain, as every sink receives it.

    ``fields`` is the ordered, redacted mapping that becomes the JSON line;
    ``exc_info`` is the original exception for sinks that need the object
    (Sentry); ``template`` is the message before its ``%`` arguments were
    applied, when it had any; ``json_line`` is rendered once and shared by
    every sink.
    """

    __slots__ = (
        "_line",
        "_plain",
        "exc_info",
        "fields",
        "level",
        "logger",
        "template",
        "time_ns",
    )

    def __init__(
        self,
        fields: dict[str, Any],
        level: int,
        logger: str,
        time_ns: int,
        exc_info: ExcInfo | None,
        template: str | None = None,
        plain: bool = False,
    ) -> None:
        """Hold the finished event; its JSON line is rendered on first use.

        *plain* says every value of *fields* is a plain JSON scalar, which
        makes the rendering one `orjson.dumps`.
        """
        self.fields = fields
        self.level = level
        self.logger = logger
        self.time_ns = time_ns
        self.exc_info = exc_info
        self.template = template
        self._plain = plain
        self._line: bytes | None = None

    @property
    def event(self) -> str:
        """The event name or message."""
        return str(self.fields.get("event", ""))

    @property
    def name(self) -> str:
        """What the event is, without the ids of one occurrence: the template."""
        return self.template if self.template is not None else self.event

    @property
    def json_line(self) -> bytes:
        """The event as one line of JSON, newline included."""
        line = self._line
        if line is None:
            if self._plain:
                # Every value a str, int, bool, None or finite float (most
                # events): one orjson.dumps is the whole work. It refuses a
                # key that is not a str, a lone surrogate, a big int.
                try:
                    line = _dumps(self.fields, option=_APPEND_NEWLINE)
                except TypeError:
                    line = dumps_line(self.fields)
            else:
                line = dumps_line(self.fields)
            self._line = line
        return line


class Sink(Protocol):
    """What the fan-out needs of a sink; see `runtime_logging.sinks.Sink`."""

    name: str
    min_level: int

    def emit(self, event: LogEvent) -> None:
        """Deliver or queue *event*; must not block on the network."""


class Step(Protocol):
    """A pipeline step that may replace or drop (None) an event."""

    def __call__(self, fields: dict[str, Any], level: int) -> dict[str, Any] | None:
        """Process *fields* of an event at *level*."""


class RateLimitStep(Protocol):
    """The rate limit step: like `Step`, and told the message's template."""

    def __call__(
        self, fields: dict[str, Any], level: int, template: str | None
    ) -> dict[str, Any] | None:
        """Pass on or drop (None) *fields* of an event at *level*."""


class _Clock:
    """RFC 3339 UTC timestamps with microseconds, cached per second."""

    def __init__(self) -> None:
        #: One tuple, replaced whole, so that threads never pair one second's
        #: text with another second: (start ns, end ns, "...:SS.%06dZ"). The
        #: pipeline formats with it inline while the second lasts.
        self.cached = (0, 0, "")

    def format(self, time_ns: int) -> str:
        start, end, text = self.cached
        if not start <= time_ns < end:
            second = time_ns // 1_000_000_000
            start, end = second * 1_000_000_000, (second + 1) * 1_000_000_000
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            text = prefix + ".%06dZ"
            self.cached = (start, end, text)
        return text % ((time_ns - start) // 1000)


class Pipeline:
    """The chain and the fan-out for one configuration."""

    def __init__(
        self,
        settings: Settings,
        sinks: Sequence[Sink],
        processors: Mapping[str, Iterable[Processor]] | None = None,
        redact: Step | None = None,
        rate_limit: RateLimitStep | None = None,
        diag: Diagnostics = diagnostics,
    ) -> None:
        """Build the chain for *settings* delivering to *sinks*."""
        hooks = dict(processors or {})
        for point in hooks:
            if point not in HOOK_POINTS:
                raise ValueError(point)
        self.settings = settings
        self.sinks = tuple(sinks)
        self.min_level = LEVELS[settings.level]
        self.logger_levels = {
            name: LEVELS[level] for name, level in settings.logger_levels.items()
        }
        #: The lowest level any logger takes: the loggers' cheap first check.
        self.lowest_level = min([self.min_level, *self.logger_levels.values()])
        #: The level each logger name takes: the second check.
        self.thresholds = LoggerLevels(self.min_level, self.logger_levels)
        self._hooks = {point: tuple(hooks.get(point, ())) for point in HOOK_POINTS}
        self._any_hooks = any(self._hooks.values())
        self._context_hooks = self._hooks["context"]
        self._field_hooks = self._hooks["fields"]
        self._redact = redact
        # The usual chain, without hooks and with the toolkit's own policy,
        # takes the fast path: redaction of the caller's fields only, in one
        # loop that also tells the encoder whether they are plain.
        self._policy = (
            redact
            if isinstance(redact, RedactionPolicy) and not self._any_hooks
            else None
        )
        # Otherwise the redaction step sees the whole event, hooks' fields too.
        self._redact_event = redact if self._policy is None else None
        self._rate_limit = rate_limit
        self._diag = diag
        self._clock = _Clock()
        #: Marks the exceptions this pipeline wrote (``exception.repeated``).
        self._mark = object()
        self._with_locals = settings.include_locals
        #: Where events go while this set-up is replaced (`hold`); else None.
        self._diverted: _Diversion | None = None
        self._template: dict[str, Any] = {}
        self.refresh_process_fields()

    def refresh_process_fields(self) -> None:
        """Re-read host and pid; a forked child calls this."""
        values = {
            "service": self.settings.service,
            "environment": self.settings.environment,
            "release": self.settings.release,
            "host": socket.gethostname(),
            "pid": os.getpid(),
        }
        self._template = {key: values.get(key) for key in STANDARD_KEYS}

    def enabled_for(self, logger: str, level: int) -> bool:
        """Whether a record of *logger* at *level* passes the level filters."""
        return level >= self.thresholds[logger]

    def log(
        self,
        logger: str,
        level: int,
        event: object,
        args: tuple[Any, ...],
        bound: Mapping[str, Any],
        kw: dict[str, Any],
    ) -> None:
        """Take one call of the structlog API, its level checked; never raises."""
        try:
            if type(event) is str:
                message = event
            else:
                if event is None:  # info(event="...") as structlog allows
                    event = kw.pop("event", None)
                message = "" if event is None else safe_str(event)
            template = None
            if args:
                template = message
                message = _apply_args(message, args, kw)
            context = _context_var.get()
            fields = {**context, **bound, **kw} if context or bound else kw
            exc_info = _pop_exc_info(fields) if "exc_info" in fields else None
            stack = None
            if "stack_info" in fields and fields.pop("stack_info"):
                stack = caller_stack()
            done = self._process(
                logger,
                level,
                time.time_ns(),
                message,
                fields,
                exc_info,
                template,
                stack,
            )
        except DropEvent:
            return
        except Exception as error:
            done = self._salvaged(logger, level, event, error)
        if done is not None:
            self._fan_out(done)

    def log_record(self, record: logging.LogRecord, fields: dict[str, Any]) -> None:
        """Take one stdlib record whose extra fields are *fields*; never raises."""
        event = self.record_event(record, fields)
        if event is not None:
            self._fan_out(event)

    def record_event(
        self, record: logging.LogRecord, fields: dict[str, Any]
    ) -> LogEvent | None:
        """The finished event for a stdlib record, undelivered; never raises.

        None when a processor dropped it, or when it was lost (and counted).
        """
        return self.stdlib_event(
            record.name,
            record.levelno,
            int(record.created * 1_000_000_000),
            record.msg,
            record.args,
            record.exc_info,
            record.stack_info,
            fields,
            record,
        )

    def stdlib_event(
        self,
        logger: str,
        level: int,
        time_ns: int,
        msg: object,
        args: Any,
        exc_info: Any,
        stack: str | None,
        fields: dict[str, Any],
        record: logging.LogRecord | None = None,
    ) -> LogEvent | None:
        """The finished event for a stdlib call, with or without its *record*.

        The message is *record*'s own ``getMessage()`` when there is one, else
        made as a `logging.LogRecord` makes it. Never raises; None as for
        `record_event`.
        """
        if type(logger) is not str:
            logger = safe_str(logger)  # `logging.Logger(5)`: a name that is no str
        try:
            try:
                if record is not None:
                    message = record.getMessage()
                else:
                    message = str(msg)
                    if args:
                        message = message % args
            except Exception as error:
                message = safe_str(msg)
                fields["format_error"] = (
                    f"{safe_repr(error)} with args {safe_repr(args)}"
                )
            context = _context_var.get()
            if context:
                fields = {**context, **fields}
            return self._process(
                logger,
                level,
                time_ns,
                message,
                fields,
                resolve_exc_info(exc_info) if exc_info else None,
                safe_str(msg) if args else None,
                stack or None,
            )
        except DropEvent:
            return None
        except Exception as error:
            return self._salvaged(logger, level, msg, error)

    def _salvaged(
        self, logger: str, level: int, message: object, error: Exception
    ) -> LogEvent | None:
        """The line of an event a step failed on: its message, and why, no fields.

        Whatever the fields hold, the line is written; None only when even
        that failed (told on stderr).
        """
        reason = safe_repr(error)
        self._diag.failure("pipeline", f"an event's fields were lost: {reason}")
        try:
            return self._process(
                logger,
                level,
                time.time_ns(),
                safe_str(message),
                {"fields_error": reason},
                None,
            )
        except Exception as second:
            self._diag.failure("pipeline", f"an event was lost: {safe_repr(second)}")
            return None

    def _process(
        self,
        logger: str,
        level: int,
        time_ns: int,
        message: str,
        fields: dict[str, Any],
        exc_info: ExcInfo | None,
        template: str | None = None,
        stack: str | None = None,
    ) -> LogEvent | None:
        if self._context_hooks:
            fields = self._run_hooks(
                "context", logger, level, {"event": message, **fields}
            )
            message = str(fields.pop("event", message))
        policy = self._policy
        plain = False
        if policy is not None:
            message = policy.redact_message(message)
            plain = policy.redact_fields(fields)

        event = self._template.copy()
        start, end, text = self._clock.cached
        event["timestamp"] = (
            text % ((time_ns - start) // 1000)
            if start <= time_ns < end
            else self._clock.format(time_ns)
        )
        event["level"] = LEVEL_NAMES[level]
        event["logger"] = logger
        event["event"] = message
        trace = current_trace_ids()
        if trace is not None:
            event["trace_id"], event["span_id"] = trace
        event.update(
            fields if RESERVED_KEYS.isdisjoint(fields) else _renamed_fields(fields)
        )
        if self._field_hooks:
            event = self._run_hooks("fields", logger, level, event)

        if exc_info is not None:
            event = self._add_exception(logger, level, event, exc_info[1])
            plain = False
        if stack is not None:
            event["stack"] = stack if policy is None else policy.redact_message(stack)

        if self._redact_event is not None:
            event = self._redact_event(event, level)  # type: ignore[assignment]
        if self._rate_limit is not None:
            limited = self._rate_limit(event, level, template)
            if limited is None:
                return None
            event = limited
        return LogEvent(event, level, logger, time_ns, exc_info, template, plain)

    def _add_exception(
        self, logger: str, level: int, event: dict[str, Any], error: BaseException
    ) -> dict[str, Any]:
        policy = self._policy
        shown = None if policy is None else policy.redact_local
        exception = _exception_data(error, self._with_locals, self._mark, shown)
        event["exception"] = (
            exception if policy is None else policy.redact_value(exception)
        )
        if self._hooks["exception"]:
            event = self._run_hooks("exception", logger, level, event)
        return event

    def _run_hooks(
        self, point: str, logger: str, level: int, event: dict[str, Any]
    ) -> dict[str, Any]:
        method = level_name(level)
        for processor in self._hooks[point]:
            try:
                event = dict(processor(logger, method, event))
            except DropEvent:
                raise
            except Exception as error:
                self._diag.failure(
                    "processor",
                    f"{getattr(processor, '__name__', processor)!s} at hook "
                    f"{point!r} raised {error!r}; the event went on without it",
                )
        return event

    def hold(self) -> None:
        """Keep events from the sinks (they are closing) until `pass_on`."""
        self._diverted = _Diversion()

    def stop_holding(self) -> None:
        """Deliver to the sinks again; what was held is another's to deliver."""
        self._diverted = None

    def pass_on(self, pipeline: Pipeline | None) -> None:
        """Deliver the held events to *pipeline*'s sinks, and later ones too.

        Called before calls go to *pipeline*: what a thread logged here comes
        before what it logs there. None: to this pipeline's own sinks.
        """
        diversion = self._diverted
        if diversion is None:
            return
        if pipeline is None:
            self._diverted = None
            pipeline = self
        diversion.pass_on(pipeline)

    def _fan_out(self, event: LogEvent) -> None:
        diversion = self._diverted
        if diversion is not None and diversion.take(event):
            return
        for sink in self.sinks:
            if event.level < sink.min_level:
                continue
            try:
                sink.emit(event)
            except Exception as error:
                self._sink_raised(sink, error)

    def _sink_raised(self, sink: Sink, error: Exception) -> None:
        """Count the event *sink* raised on as its drop; the sink turns degraded.

        An object given in ``sinks=`` without the `Sink` base is only told.
        """
        # Imported here, on a failure only: the sinks import this module.
        from runtime_logging.sinks import Sink as SinkBase  # noqa: PLC0415

        if isinstance(sink, SinkBase):
            # A subclass that skipped the base __init__ lacks the counters.
            with contextlib.suppress(Exception):
                sink.dropped += 1
                sink._failed("emit", safe_repr(error))  # noqa: SLF001 - as the sink
                return
        self._diag.failure(f"sink {sink.name}", f"emit raised {safe_repr(error)}")

    def emit_event(self, event: LogEvent) -> None:
        """Deliver an already processed *event* to every sink (summaries)."""
        self._fan_out(event)

    def emit_fields(self, fields: dict[str, Any], level: int) -> None:
        """Deliver *fields*, already redacted, stamped with the time now."""
        time_ns = time.time_ns()
        fields["timestamp"] = self._clock.format(time_ns)
        logger = str(fields.get("logger", ""))
        self._fan_out(LogEvent(fields, level, logger, time_ns, None))


class _Diversion:
    """The events of a replaced set-up: held, then passed to the next one's."""

    def __init__(self) -> None:
        # Re-entrant: a sink of the next set-up, or a signal handler, may log
        # while the held events are passed on.
        self._lock = threading.RLock()
        self._held: list[LogEvent] | None = []
        self._target: Pipeline | None = None

    def take(self, event: LogEvent) -> bool:
        """Hold or pass on *event*; False when it is for the own sinks."""
        with self._lock:
            held = self._held
            if held is not None:
                if len(held) >= MAX_HELD:
                    return False
                held.append(event)
                return True
            target = self._target
        if target is None:
            return False
        target.emit_event(event)
        return True

    def pass_on(self, pipeline: Pipeline) -> None:
        """Deliver the held events to *pipeline*, in order, then the later ones."""
        with self._lock:
            held = self._held or []
            for event in held:  # one a sink logs meanwhile is appended and sent
                pipeline.emit_event(event)
            self._held = None
            self._target = pipeline


def _exception_data(
    error: BaseException,
    with_locals: bool,
    mark: object,
    shown: Callable[[Any], Any] | None = None,
) -> dict[str, Any]:
    data = structure_exception(error, with_locals, shown)
    if logged_before(error, mark):
        data["repeated"] = True
    return data


def _renamed_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """*fields* with those named like a standard key kept under a prefix.

    The prefix is repeated while the name is taken by another field, so that
    ``level`` and ``field_level`` side by side are both kept.
    """
    renamed: dict[str, Any] = {}
    for key, value in fields.items():
        name = key
        if key in RESERVED_KEYS:
            name = FIELD_PREFIX + key
            while name in fields or name in renamed:
                name = FIELD_PREFIX + name
        renamed[name] = value
    return renamed


def free_key(name: str, fields: Mapping[str, Any]) -> str:
    """``field_<name>``, prefixed again while *fields* already has it."""
    key = FIELD_PREFIX + name
    while key in fields:
        key = FIELD_PREFIX + key
    return key


def _pop_exc_info(fields: dict[str, Any]) -> ExcInfo | None:
    """The exception ``exc_info`` asks for; a value that is none is kept.

    ``None``, a bool or an int, an exception or a triple mean what they mean
    in stdlib; any other value is kept as ``field_exc_info`` and, like
    stdlib, asks for the exception being handled.
    """
    value = fields.pop("exc_info")
    if not (
        value is None
        or isinstance(value, (int, BaseException))
        or (isinstance(value, tuple) and len(value) == 3)
    ):
        fields[free_key("exc_info", fields)] = value
    return resolve_exc_info(value)


def caller_stack() -> str:
    """The stack of the code that called the logger, as stdlib's stack_info."""
    frame = sys._getframe(1)  # noqa: SLF001 - as logging.Logger.findCaller does
    while frame.f_back is not None and frame.f_code.co_filename in _OWN_FILES:
        frame = frame.f_back
    return "Stack (most recent call last):\n" + "".join(
        traceback.format_stack(frame)
    ).rstrip("\n")


#: ``%(name)s``-style placeholders: a mapping argument that fills them formats.
_NAMED_PLACEHOLDER = re.compile(r"%\([^)]*\)")


def _apply_args(message: str, args: tuple[Any, ...], kw: dict[str, Any]) -> str:
    if len(args) == 1 and isinstance(args[0], Mapping):
        # The Dart-style call, logger.info("Installation started", {...}): the
        # mapping is fields. As in stdlib it also fills %(name)s placeholders;
        # a literal % ("100% done") leaves the message as written.
        mapping = args[0]
        for key, value in mapping.items():
            kw.setdefault(str(key), value)
        if "%" in message and _NAMED_PLACEHOLDER.search(message):
            try:
                return message % mapping
            except Exception:  # noqa: S110 - a placeholder it lacks: as written
                pass
        return message
    try:
        return message % args
    except Exception:
        return " ".join([message, *map(repr, args)])


class _DropGuard(threading.local):
    """Marks threads whose own logging must not re-enter the sinks."""

    active = False


#: Set in the toolkit's background threads: records they cause are not routed.
internal_thread = _DropGuard()

#: Signals a process is told by (SIGTERM, SIGHUP, Ctrl-C, a timer...). The
#: kernel hands one to any thread that does not block it; Python runs the
#: handler in the main thread only if that thread wakes, and a main thread
#: blocked in a wait that only a signal ends (a multiprocessing lock) would
#: never run it: a Pool worker ended by terminate() hung for good.
_PROCESS_SIGNALS = frozenset(
    getattr(signal, name)
    for name in (
        "SIGINT",
        "SIGTERM",
        "SIGHUP",
        "SIGQUIT",
        "SIGUSR1",
        "SIGUSR2",
        "SIGALRM",
        "SIGCHLD",
    )
    if hasattr(signal, name)
)


@contextlib.contextmanager
def application_code() -> Iterator[None]:
    """Process signals unblocked while a toolkit thread runs the application's code.

    A process it starts (a ``sentry_before_send`` hook's) inherits the
    thread's mask, and could not be ended by SIGTERM or Ctrl-C with it.
    """
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    saved = signal.pthread_sigmask(signal.SIG_UNBLOCK, _PROCESS_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, saved)


def background_thread() -> None:
    """Make the calling thread one of the toolkit's own.

    Its records are not routed, and process signals go to other threads:
    threads it starts (sentry-sdk's sender) inherit that.
    """
    internal_thread.active = True
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, _PROCESS_SIGNALS)
