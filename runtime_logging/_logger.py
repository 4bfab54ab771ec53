"""The structlog front end.

A bound logger whose calls go straight into the active pipeline.

The logger holds its name and its bound context, nothing of the
configuration, so a logger made before `configure_logging()` (or before it
was called again) logs through whatever is configured when it is called.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from runtime_logging._encoding import safe_str
from runtime_logging.config import LEVELS

if TYPE_CHECKING:
    from runtime_logging._pipeline import Pipeline

#: The level from which calls made while nothing is configured are shown.
UNCONFIGURED_LEVEL = 30


class _Target(Protocol):
    @property
    def thresholds(self) -> dict[str, int]: ...

    def log(
        self,
        logger: str,
        level: int,
        event: object,
        args: tuple[Any, ...],
        bound: Any,
        kw: dict[str, Any],
    ) -> None: ...

    def enabled_for(self, logger: str, level: int) -> bool: ...


class _AllAtWarning(dict[str, int]):
    def __missing__(self, logger: str) -> int:
        return UNCONFIGURED_LEVEL


class _Unconfigured:
    """Where calls go while nothing is configured: stderr, warnings and above.

    As stdlib's last resort handler does, so that a call made before
    `configure_logging()` or after ``shutdown()`` does not vanish silently.
    """

    thresholds: dict[str, int] = _AllAtWarning()

    def enabled_for(self, logger: str, level: int) -> bool:
        del logger
        return level >= UNCONFIGURED_LEVEL

    def log(
        self,
        logger: str,
        level: int,
        event: object,
        args: tuple[Any, ...],
        bound: Any,
        kw: dict[str, Any],
    ) -> None:
        # Imported here: the console and the pipeline import this module's users.
        from runtime_logging import _pipeline  # noqa: PLC0415
        from runtime_logging.redaction import RedactionPolicy  # noqa: PLC0415
        from runtime_logging.sinks.console import render_pretty  # noqa: PLC0415

        try:
            if event is None:
                event = kw.pop("event", None)
            message = "" if event is None else str(event)
            fields = {**bound, **kw}
            if args:
                message = _pipeline._apply_args(message, args, fields)  # noqa: SLF001
            policy = RedactionPolicy()
            policy.redact_fields(fields)
            line = {
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()),
                "level": _pipeline.level_name(level),
                "logger": logger,
                "event": policy.redact_message(message),
                **fields,
            }
            sys.stderr.write(render_pretty(line))
        except Exception:  # noqa: S110 - a log call never raises
            pass


_UNCONFIGURED = _Unconfigured()


class _Active:
    """The pipeline calls go to, and the lowest level any logger takes."""

    __slots__ = ("min_level", "pipeline")

    def __init__(self) -> None:
        self.pipeline: _Target = _UNCONFIGURED
        self.min_level = UNCONFIGURED_LEVEL

    def use(self, pipeline: Pipeline) -> None:
        """Send calls to *pipeline*."""
        self.pipeline = pipeline
        self.min_level = pipeline.lowest_level

    def reset(self) -> None:
        """Send calls to stderr, as before any configuration."""
        self.pipeline = _UNCONFIGURED
        self.min_level = UNCONFIGURED_LEVEL


active = _Active()


def _level_number(level: object, kw: dict[str, Any]) -> int:
    """*level* as a number: an int, or a level's name; otherwise WARNING.

    A value that is not a level is kept as a field, so the line says so.
    """
    if isinstance(level, int):
        return int(level)
    if isinstance(level, str) and level.lower() in LEVELS:
        return LEVELS[level.lower()]
    key = "field_level"
    while key in kw:
        key = "field_" + key
    kw[key] = level
    return UNCONFIGURED_LEVEL


class Logger(structlog.BoundLoggerBase):
    """A structlog bound logger: ``bind()``, ``info()``, ``exception()`` and the rest.

    A call takes an event name or message, optional ``%`` arguments or one
    mapping of fields, and fields as keywords::

        log.info("Installation started", installationId=iid, moduleCount=3)
        log.info("Installation started", {"installationId": iid})
    """

    _logger: str

    @property
    def name(self) -> str:
        """The logger's name, written as ``logger`` on every line."""
        return self._logger

    def debug(self, event: object = None, /, *args: Any, **kw: Any) -> None:
        """Log at DEBUG."""
        if active.min_level <= 10 and active.pipeline.thresholds[self._logger] <= 10:
            active.pipeline.log(self._logger, 10, event, args, self._context, kw)

    def info(self, event: object = None, /, *args: Any, **kw: Any) -> None:
        """Log at INFO."""
        if active.min_level <= 20 and active.pipeline.thresholds[self._logger] <= 20:
            active.pipeline.log(self._logger, 20, event, args, self._context, kw)

    def warning(self, event: object = None, /, *args: Any, **kw: Any) -> None:
        """Log at WARNING."""
        if active.min_level <= 30 and active.pipeline.thresholds[self._logger] <= 30:
            active.pipeline.log(self._logger, 30, event, args, self._context, kw)

    warn = warning

    def error(self, event: object = None, /, *args: Any, **kw: Any) -> None:
        """Log at ERROR."""
        if active.min_level <= 40 and active.pipeline.thresholds[self._logger] <= 40:
            active.pipeline.log(self._logger, 40, event, args, self._context, kw)

    def exception(self, event: object = None, /, *args: Any, **kw: Any) -> None:
        """Log at ERROR with the exception being handled."""
        if active.min_level <= 40 and active.pipeline.thresholds[self._logger] <= 40:
            kw.setdefault("exc_info", True)
            active.pipeline.log(self._logger, 40, event, args, self._context, kw)

    def critical(self, event: object = None, /, *args: Any, **kw: Any) -> None:
        """Log at CRITICAL."""
        if active.min_level <= 50 and active.pipeline.thresholds[self._logger] <= 50:
            active.pipeline.log(self._logger, 50, event, args, self._context, kw)

    fatal = critical

    def log(
        self, level: object = None, event: object = None, /, *args: Any, **kw: Any
    ) -> None:
        """Log at the numeric *level* (or a level's name)."""
        if type(level) is not int:
            if level is None and "level" in kw:
                level = kw.pop("level")
            level = _level_number(level, kw)
        if (
            active.min_level <= level
            and active.pipeline.thresholds[self._logger] <= level
        ):
            active.pipeline.log(self._logger, level, event, args, self._context, kw)

    def is_enabled_for(self, level: int) -> bool:
        """Whether a call at *level* would be logged."""
        return active.pipeline.enabled_for(self._logger, level)


def logger_name(*args: Any) -> str:
    """The structlog logger factory: ``structlog.get_logger("x")`` names it ``x``."""
    # Never raises: a name whose str() does is named as safe_str says.
    return safe_str(args[0]) if args and args[0] is not None else "root"


def get_logger(name: str | None = None, **initial: Any) -> Logger:
    """A logger called *name* (``root`` when None) with *initial* fields bound."""
    return Logger(logger_name(name), (), dict(initial))
