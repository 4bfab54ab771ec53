"""`configure_logging()` and the `LoggingService` handle it returns."""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import logging
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import structlog

from runtime_logging import _logger, _stdlib
from runtime_logging._diagnostics import diagnostics
from runtime_logging._pipeline import HOOK_POINTS, Pipeline, Processor, Sink
from runtime_logging.config import LEVELS, Settings, load_settings
from runtime_logging.errors import ConfigurationError, MissingExtraError
from runtime_logging.redaction import RedactionPolicy
from runtime_logging.sinks import SinkHealth
from runtime_logging.sinks.console import ConsoleSink
from runtime_logging.sinks.file import FileSink

if TYPE_CHECKING:
    # Loaded when configured, not at start-up: see `_build_sinks`.
    from runtime_logging.metrics._sink import MetricsSink
    from runtime_logging.ratelimit import RateLimiter
    from runtime_logging.sinks.loki import LokiSink
    from runtime_logging.sinks.sentry import BeforeSend

_lock = threading.RLock()
_active_service: LoggingService | None = None


class LoggingService:
    """The running configuration: loggers, flushing, reopening, health, shutdown."""

    def __init__(
        self,
        settings: Settings,
        pipeline: Pipeline,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        """Wrap a configured *pipeline*; made by `configure_logging()`."""
        self.settings = settings
        self.pipeline = pipeline
        #: The ``rate_limit`` step (its ``suppressed`` counts), None when off.
        self.rate_limiter = rate_limiter
        #: What this set-up changed in stdlib logging (None: nothing).
        self._stdlib_state: _StdlibState | None = None
        self._saved_signals: dict[int, Any] = {}
        self._closed = False
        self._draining = False
        self._sigterm_waiting = False

    @property
    def _handler(self) -> _stdlib.PipelineHandler | None:
        """The root's handler of this set-up; None once it ended."""
        state = self._stdlib_state
        return None if state is None else state.handler

    @property
    def sinks(self) -> tuple[Sink, ...]:
        """The sinks events are delivered to, in order."""
        return self.pipeline.sinks

    def get_logger(self, name: str | None = None, **initial: Any) -> _logger.Logger:
        """A structlog logger called *name* with *initial* fields bound."""
        return _logger.get_logger(name, **initial)

    def sink(self, name: str) -> Sink:
        """The sink called *name* (``file``, ``console``, ``sentry``, ...)."""
        for candidate in self.sinks:
            if candidate.name == name:
                return candidate
        raise KeyError(name)

    def flush(self, timeout: float | None = None) -> None:
        """Deliver what every sink holds, waiting at most *timeout* in all."""
        deadline = time.monotonic() + (
            self.settings.shutdown_timeout if timeout is None else timeout
        )
        self._flush_summaries()
        for sink in self.sinks:
            with contextlib.suppress(Exception):
                _call(sink, "flush", max(0.0, deadline - time.monotonic()))

    def reopen(self) -> None:
        """Reopen every file (after an external rotation)."""
        for sink in self.sinks:
            with contextlib.suppress(Exception):
                _call(sink, "reopen")

    def health(self) -> dict[str, SinkHealth]:
        """Each sink's health, by sink name."""
        report = {}
        for sink in self.sinks:
            health = getattr(sink, "health", None)
            report[sink.name] = health() if health else SinkHealth(sink.name)
        return report

    def shutdown(self, timeout: float | None = None) -> None:
        """Drain and close every sink within *timeout*, then undo the set-up."""
        self._shutdown(timeout, replaced=False)

    def _shutdown(self, timeout: float | None, *, replaced: bool) -> None:
        global _active_service  # noqa: PLW0603 - the process has one logging set-up
        with _lock:
            if self._closed:
                return
            self._closed = True
            # The handlers stay until the sinks are drained: a SIGTERM that
            # comes meanwhile (Pool.terminate() right after its workers began
            # to exit) ends the process once the drain is over, not halfway.
            self._draining = True
            self._flush_summaries()
            active = _active_service is self
            if active:
                _active_service = None
            state, self._stdlib_state = self._stdlib_state, None
            if replaced:
                # Calls go on to this pipeline until the next is in place,
                # stdlib's records as well (the next set-up takes the root
                # logger over); it keeps their events for the next one's
                # sinks, as its own are closing.
                _handed_over.append(state)
                _routing.append(self)
                self.pipeline.hold()
            else:
                if active:
                    _logger.active.reset()
                    structlog.reset_defaults()
                _release_stdlib(state, restore_methods=active)
        deadline = time.monotonic() + (
            self.settings.shutdown_timeout if timeout is None else timeout
        )
        for sink in self.sinks:
            try:
                _call(sink, "close", max(0.0, deadline - time.monotonic()))
            except Exception as error:
                diagnostics.failure(f"sink {sink.name}", f"close raised {error!r}")
        self._draining = False
        with _lock:
            self._restore_signals()
        if self._sigterm_waiting:
            os.kill(os.getpid(), signal.SIGTERM)

    def _flush_summaries(self) -> None:
        if self.rate_limiter is not None:
            try:
                self.rate_limiter.flush()
            except Exception as error:
                diagnostics.failure("rate limit", f"flush raised {error!r}")

    # The parts of the process-wide set-up, each with its undo.

    def _install_stdlib(self, replaced: _StdlibState | None) -> None:
        """Route stdlib records here; take the root over from *replaced*."""
        _stdlib.install_direct_route()
        root = logging.getLogger()
        handler = _stdlib.PipelineHandler(self.pipeline)
        if replaced is not None and replaced.handler in root.handlers:
            # One item replaced: a record logged meanwhile finds one of the
            # two handlers, never none.
            state = replaced
            root.handlers[root.handlers.index(replaced.handler)] = handler
        else:
            # The first set-up, or the root was configured again in between.
            _release_stdlib(replaced, restore_methods=False)
            state = _StdlibState.now()
            if replaced is not None:
                state.warnings_captured = replaced.warnings_captured
            root.handlers = [handler]  # one step: no record finds no handler
        state.handler = handler
        self._stdlib_state = state
        root.setLevel(LEVELS[self.settings.level])
        state.set_levels(self.settings.logger_levels)
        logging.captureWarnings(True)

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for number, handler in (
            (signal.SIGHUP, self._on_sighup),
            (signal.SIGTERM, self._on_sigterm),
        ):
            previous = signal.getsignal(number)
            # A handler set outside Python can't be chained, and an ignored
            # SIGTERM must stay ignored: both are left as they are.
            if previous is None or (
                number == signal.SIGTERM and previous == signal.SIG_IGN
            ):
                continue
            self._saved_signals[number] = previous
            signal.signal(number, handler)

    def _restore_signals(self) -> None:
        for number, previous in list(self._saved_signals.items()):
            try:
                if signal.getsignal(number) in (self._on_sighup, self._on_sigterm):
                    signal.signal(number, previous)
            except (ValueError, TypeError):
                # Off the main thread: this set-up's handler stays, and still
                # chains to the one it replaced (`_acting`).
                continue
            del self._saved_signals[number]

    def _acting(self) -> LoggingService:
        """This set-up, or the one that replaced it while these handlers stayed.

        A set-up made off the main thread can't install its own, so the
        handlers of the one before act for it.
        """
        active = _active_service
        return active if self._closed and active is not None else self

    def _on_sighup(self, number: int, frame: FrameType | None) -> None:
        # A signal handler only sets flags: the next write reopens.
        for sink in self._acting().sinks:
            request = getattr(sink, "request_reopen", None)
            if request is not None:
                request()
        _chain(self._saved_signals.get(number), number, frame)

    def _on_sigterm(self, number: int, frame: FrameType | None) -> None:
        previous = self._saved_signals.get(number)
        service = self._acting()
        if service._draining:  # noqa: SLF001 - a set-up of the same class
            # Draining at exit: the application's handler runs now, else the
            # process ends with this SIGTERM once the drain is over.
            if callable(previous):
                previous(number, frame)
            else:
                service._sigterm_waiting = True  # noqa: SLF001
            return
        if callable(previous):
            # The application ends the process its own way and may log on the
            # way out: deliver what is queued now, and close at exit.
            service.flush()
            previous(number, frame)
            return
        service.shutdown()
        signal.signal(number, signal.SIG_DFL)
        os.kill(os.getpid(), number)


def _chain(previous: object, number: int, frame: FrameType | None) -> None:
    if callable(previous):
        previous(number, frame)


def _call(sink: Sink, method: str, *args: object) -> None:
    function = getattr(sink, method, None)
    if function is not None:
        function(*args)


def _build_sinks(
    settings: Settings,
    extra: Iterable[Sink],
    redact: RedactionPolicy,
    sentry_before_send: BeforeSend | None = None,
    file_sink: FileSink | None = None,
) -> list[Sink]:
    sinks: list[Sink] = []
    try:
        _add_sinks(sinks, settings, extra, redact, sentry_before_send, file_sink)
    except BaseException:
        opened = (
            sinks if file_sink is None or file_sink in sinks else [*sinks, file_sink]
        )
        _close_at_once(opened)
        raise
    return sinks


def _close_at_once(sinks: Iterable[Sink]) -> None:
    """Close *sinks* of a set-up that failed to come into place."""
    for sink in sinks:
        with contextlib.suppress(Exception):
            _call(sink, "close", 0.0)


def _add_sinks(
    sinks: list[Sink],
    settings: Settings,
    extra: Iterable[Sink],
    redact: RedactionPolicy,
    sentry_before_send: BeforeSend | None,
    file_sink: FileSink | None,
) -> None:
    """Build the sinks of *settings* into *sinks*, in the fan-out's order."""
    if settings.console != "off":
        sinks.append(ConsoleSink(style=settings.console, color=settings.color))
    if file_sink is not None:
        sinks.append(file_sink)
    elif settings.log_path is not None:
        sinks.append(_file_sink(settings, settings.log_path))
    if settings.loki_url:
        sinks.append(_loki_sink(settings))
    if settings.sentry_dsn:
        from runtime_logging.sinks.sentry import SentrySink  # noqa: PLC0415

        sinks.append(SentrySink(settings, redact, sentry_before_send))
    sinks.extend(extra)
    if settings.metrics:
        sinks.append(_metrics_sink(settings))


def check_extras(settings: Settings) -> None:
    """Raise `MissingExtraError` when a setting's extra is not installed."""
    if settings.loki_url:
        _loki_sink_class()
    if settings.metrics:
        _metrics_sink_class()
    if settings.sentry_dsn:
        from runtime_logging.sinks.sentry import require_sentry_sdk  # noqa: PLC0415

        require_sentry_sdk()


def _loki_sink_class() -> type[LokiSink]:
    try:
        from runtime_logging.sinks.loki import LokiSink  # noqa: PLC0415 - an extra
    except ModuleNotFoundError as error:
        if error.name != "urllib3":
            raise
        raise MissingExtraError("loki_url", "loki", "urllib3") from None
    return LokiSink


def _loki_sink(settings: Settings) -> Sink:
    return _loki_sink_class().from_settings(settings)


def _metrics_sink_class() -> type[MetricsSink]:
    try:
        from runtime_logging.metrics._sink import MetricsSink  # noqa: PLC0415
    except ImportError as error:
        if error.name and error.name.startswith("prometheus_client"):
            raise MissingExtraError("metrics", "metrics", "prometheus_client") from None
        raise
    return MetricsSink


def _metrics_sink(settings: Settings) -> Sink:
    return _metrics_sink_class()(settings)


def _file_sink(settings: Settings, path: Path) -> FileSink:
    try:
        return FileSink(
            path,
            rotation=settings.rotation,
            max_bytes=settings.max_bytes,
            rotate_interval=settings.rotate_interval,
            backup_count=settings.backup_count,
            compress=settings.compress,
            reopen_interval=settings.reopen_interval,
        )
    except OSError as error:
        raise ConfigurationError(
            f"`log_dir` is {str(settings.log_dir)!r}, where {path.name!r} can't be "
            f"opened for writing ({error.strerror}); create the directory with "
            "write access for this user, set `log_dir` (RUNTIME_LOGGING_LOG_DIR) "
            "to a writable directory, or to 'off' for no file."
        ) from None


def _check_sinks(sinks: Iterable[object]) -> list[Sink]:
    checked = []
    for sink in sinks:
        if not callable(getattr(sink, "emit", None)) or not isinstance(
            getattr(sink, "name", None), str
        ):
            raise ConfigurationError(
                f"`sinks` holds {sink!r}, which is not a sink; pass objects with a "
                "`name` and an `emit(event)` method, such as subclasses of "
                "runtime_logging.sinks.Sink."
            )
        if not hasattr(sink, "min_level"):
            sink.min_level = 0  # type: ignore[attr-defined]
        checked.append(sink)
    return checked  # type: ignore[return-value]


def _check_processors(
    processors: Mapping[str, Iterable[Processor]] | None,
) -> dict[str, list[Processor]]:
    checked: dict[str, list[Processor]] = {}
    for point, chain in (processors or {}).items():
        if point not in HOOK_POINTS:
            raise ConfigurationError(
                f"`processors` names the hook point {point!r}; use one of "
                + ", ".join(HOOK_POINTS)
                + " (nothing runs after redaction, so no sink sees unredacted data)."
            )
        checked[point] = list(chain)
        for processor in checked[point]:
            if not callable(processor):
                raise ConfigurationError(
                    f"`processors[{point!r}]` holds {processor!r}, which is not "
                    "callable; pass functions (logger, method_name, event_dict)."
                )
    return checked


def configure_logging(
    config_file: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    sinks: Iterable[Sink] = (),
    processors: Mapping[str, Iterable[Processor]] | None = None,
    sentry_before_send: BeforeSend | None = None,
    **settings: Any,
) -> LoggingService:
    """Set up logging for the process and return its `LoggingService`.

    Args:
        config_file: a TOML file of settings (``RUNTIME_LOGGING_CONFIG`` when None).
        env: the environment to read settings from, `os.environ` when None.
        sinks: more sinks to deliver to, after the configured ones.
        processors: structlog-style processors by hook point
            (``context``, ``fields``, ``exception``).
        sentry_before_send: the application's own sentry-sdk ``before_send``,
            called with each event after redaction and the tags.
        settings: any setting by name, e.g. ``level="debug"``, ``log_dir="logs"``.

    Returns:
        The handle to the new set-up; calling this again replaces it.

    Raises:
        ConfigurationError: a setting is unknown or has an unusable value.
    """
    global _active_service  # noqa: PLW0603 - the process has one logging set-up
    resolved = load_settings(config_file, env, **settings)
    hooks = _check_processors(processors)
    extra = _check_sinks(sinks)
    if resolved.sentry_dsn:
        from runtime_logging.sinks.sentry import check_dsn  # noqa: PLC0415

        check_dsn(resolved.sentry_dsn)
    if sentry_before_send is not None and not callable(sentry_before_send):
        raise ConfigurationError(
            f"`sentry_before_send` is {sentry_before_send!r}, which is not "
            "callable; pass a function (event, hint) -> event or None."
        )
    check_extras(resolved)
    with _lock:
        # The file first: a directory it can't write to is refused while the
        # set-up in place goes on.
        file_sink = None
        if resolved.log_path is not None:
            file_sink = _file_sink(resolved, resolved.log_path)
        if _active_service is not None:
            _active_service._shutdown(None, replaced=True)  # noqa: SLF001
        redact = RedactionPolicy(resolved.redact_keys, resolved.redact_keys_allow)
        try:
            service = _service(
                resolved, extra, redact, hooks, sentry_before_send, file_sink
            )
        except BaseException:
            # Nothing in place: calls and records go where they went before
            # any set-up, as after a shutdown.
            _logger.active.reset()
            structlog.reset_defaults()
            _release_stdlib(_handed_over.pop() if _handed_over else None)
            for replaced in _routing:
                # No next one: its own sinks take them (the file appends).
                replaced.pipeline.pass_on(None)
            _routing.clear()
            raise
        _take_over(service)
        structlog.configure(
            wrapper_class=_logger.Logger,
            logger_factory=_logger.logger_name,
            processors=[],
            cache_logger_on_first_use=False,
        )
        _set_up_stdlib(service, _handed_over.pop() if _handed_over else None)
        if resolved.handle_signals:
            service._install_signals()  # noqa: SLF001 - the service's own set-up step
        _logger.active.use(service.pipeline)
        _active_service = service
        _routing.clear()
    return service


def _service(
    settings: Settings,
    extra: Iterable[Sink],
    redact: RedactionPolicy,
    hooks: Mapping[str, Iterable[Processor]],
    sentry_before_send: BeforeSend | None,
    file_sink: FileSink | None,
) -> LoggingService:
    """The service of *settings*, its sinks built and attached to it.

    A sink that fails to build or attach is closed with those built before.
    """
    built = _build_sinks(settings, extra, redact, sentry_before_send, file_sink)
    try:
        limiter = None
        if settings.rate_limit > 0:
            from runtime_logging.ratelimit import RateLimiter  # noqa: PLC0415

            limiter = RateLimiter.from_settings(settings)
        pipeline = Pipeline(settings, built, hooks, redact=redact, rate_limit=limiter)
        if limiter is not None:
            limiter.emit = pipeline.emit_fields
        service = LoggingService(settings, pipeline, limiter)
        for sink in built:
            _call(sink, "attach", service)
    except BaseException:
        _close_at_once(built)
        raise
    return service


@dataclasses.dataclass
class _StdlibState:
    """What the set-ups changed in stdlib logging, and how it was before them."""

    root_handlers: list[logging.Handler]
    root_level: int
    warnings_captured: bool
    handler: _stdlib.PipelineHandler | None = None
    #: Loggers `logger_levels` named: the level before, and the one it set.
    levels: dict[str, tuple[int, int]] = dataclasses.field(default_factory=dict)

    @classmethod
    def now(cls) -> _StdlibState:
        """The state stdlib logging is in now, before a set-up."""
        root = logging.getLogger()
        return cls(list(root.handlers), root.level, _warnings_captured())

    def set_levels(self, levels: Mapping[str, str]) -> None:
        """Give these loggers their levels; those no longer named get theirs back."""
        for name in list(self.levels):
            if name not in levels:
                self._level_back(name)
        for name, word in levels.items():
            logger = logging.getLogger(name)
            before = self.levels.get(name, (logger.level, 0))[0]
            self.levels[name] = (before, LEVELS[word])
            logger.setLevel(LEVELS[word])

    def put_back(self) -> None:
        """The root's handlers and level, and the loggers' levels, as before.

        Only what is still as a set-up left it: a root that another
        configuration (``dictConfig``) took over since is left as it is.
        """
        root = logging.getLogger()
        if self.handler is not None and self.handler in root.handlers:
            # One step, handlers added since kept: no record finds no handler.
            others = [kept for kept in root.handlers if kept is not self.handler]
            root.handlers = [
                *self.root_handlers,
                *[kept for kept in others if kept not in self.root_handlers],
            ]
            root.setLevel(self.root_level)
        for name in list(self.levels):
            self._level_back(name)

    def _level_back(self, name: str) -> None:
        before, set_to = self.levels.pop(name)
        logger = logging.getLogger(name)
        if logger.level == set_to:
            logger.setLevel(before)


#: What a replaced set-up leaves for the next to take over (one at most).
_handed_over: list[_StdlibState | None] = []
#: The replaced set-up the calls go to until the next is in place.
_routing: list[LoggingService] = []


def _warnings_captured() -> bool:
    """Whether stdlib ``logging`` takes the ``warnings`` now."""
    return warnings.showwarning is getattr(logging, "_showwarning", None)


def _release_stdlib(
    state: _StdlibState | None, *, restore_methods: bool = True
) -> None:
    """Give stdlib logging back as it was before the set-ups."""
    if restore_methods:
        _stdlib.restore_logger_methods()
        if _warnings_captured() and not (state and state.warnings_captured):
            logging.captureWarnings(False)
    if state is not None:
        state.put_back()


def _take_over(service: LoggingService) -> None:
    """Let *service* go on from the set-ups it replaces, before calls come.

    Its sinks go on from theirs; what was logged while theirs drained goes
    to its sinks first, and calls still on their way there follow.
    """
    for replaced in _routing:
        for sink in service.sinks:
            for previous in replaced.sinks:
                _call(sink, "follow", previous)
        replaced.pipeline.pass_on(service.pipeline)


def _set_up_stdlib(service: LoggingService, replaced: _StdlibState | None) -> None:
    """Route stdlib records to *service* if asked, else give stdlib back."""
    if service.settings.capture_stdlib:
        service._install_stdlib(replaced)  # noqa: SLF001 - its own set-up step
    else:
        _release_stdlib(replaced)


def get_service() -> LoggingService | None:
    """The service set up by the last `configure_logging()`, or None."""
    return _active_service


def _at_exit() -> None:
    service = _active_service
    if service is not None:
        service.shutdown()


def _after_fork_in_child() -> None:
    global _lock  # noqa: PLW0603 - a lock held at fork time is held forever
    _lock = threading.RLock()
    # Forked while a set-up was being replaced: the calls go to the old one.
    service = _active_service or (_routing[-1] if _routing else None)
    if service is None:
        return
    # No next set-up comes in this process; the parent delivers what it held.
    service.pipeline.stop_holding()
    service.pipeline.refresh_process_fields()
    for sink in service.sinks:
        with contextlib.suppress(Exception):
            _call(sink, "after_fork")
    # multiprocessing ends its children with os._exit() after running its own
    # finalizers, so atexit never drains them: register with those instead.
    util = sys.modules.get("multiprocessing.util")
    if util is not None:
        util.register_after_fork(_at_exit, _drain_with_multiprocessing)


def _drain_with_multiprocessing(at_exit: object) -> None:
    util = sys.modules["multiprocessing.util"]
    # The lowest priority: after the process's own finalizers, which may log.
    util.Finalize(None, at_exit, exitpriority=-100)


atexit.register(_at_exit)
os.register_at_fork(after_in_child=_after_fork_in_child)
