"""The structlog front end.

A bound logger whose calls go straight into the active pipeline.

The logger holds its name and its bound context, nothing of the
configuration, so a logger made before `configure_logging()` (or before it
was called again) logs through whatever is configured when it is called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    from runtime_logging._pipeline import Pipeline


class _Active:
    """The pipeline calls go to, and the lowest level it takes."""

    __slots__ = ("min_level", "pipeline")

    def __init__(self) -> None:
        self.pipeline: Pipeline | None = None
        self.min_level = 100


active = _Active()


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

    def debug(self, event: object = None, *args: Any, **kw: Any) -> None:
        """Log at DEBUG."""
        if active.min_level <= 10:
            active.pipeline.log(self._logger, 10, event, args, self._context, kw)  # type: ignore[union-attr]

    def info(self, event: object = None, *args: Any, **kw: Any) -> None:
        """Log at INFO."""
        if active.min_level <= 20:
            active.pipeline.log(self._logger, 20, event, args, self._context, kw)  # type: ignore[union-attr]

    def warning(self, event: object = None, *args: Any, **kw: Any) -> None:
        """Log at WARNING."""
        if active.min_level <= 30:
            active.pipeline.log(self._logger, 30, event, args, self._context, kw)  # type: ignore[union-attr]

    warn = warning

    def error(self, event: object = None, *args: Any, **kw: Any) -> None:
        """Log at ERROR."""
        if active.min_level <= 40:
            active.pipeline.log(self._logger, 40, event, args, self._context, kw)  # type: ignore[union-attr]

    def exception(self, event: object = None, *args: Any, **kw: Any) -> None:
        """Log at ERROR with the exception being handled."""
        if active.min_level <= 40:
            kw.setdefault("exc_info", True)
            active.pipeline.log(self._logger, 40, event, args, self._context, kw)  # type: ignore[union-attr]

    def critical(self, event: object = None, *args: Any, **kw: Any) -> None:
        """Log at CRITICAL."""
        if active.min_level <= 50:
            active.pipeline.log(self._logger, 50, event, args, self._context, kw)  # type: ignore[union-attr]

    fatal = critical

    def log(self, level: int, event: object = None, *args: Any, **kw: Any) -> None:
        """Log at the numeric *level*."""
        if active.min_level <= level:
            active.pipeline.log(self._logger, level, event, args, self._context, kw)  # type: ignore[union-attr]

    def is_enabled_for(self, level: int) -> bool:
        """Whether a call at *level* would be logged."""
        pipeline = active.pipeline
        return pipeline is not None and pipeline.enabled_for(self._logger, level)


def logger_name(*args: Any) -> str:
    """The structlog logger factory: ``structlog.get_logger("x")`` names it ``x``."""
    return str(args[0]) if args and args[0] is not None else "root"


def get_logger(name: str | None = None, **initial: Any) -> Logger:
    """A logger called *name* (``root`` when None) with *initial* fields bound."""
    return Logger(logger_name(name), (), dict(initial))
