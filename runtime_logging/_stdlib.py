"""Records of stdlib `logging` into the same pipeline, in the same schema."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping
from typing import Any

from runtime_logging import _pipeline

#: The attributes a LogRecord is made with, in the order it sets them.
_MADE_WITH = tuple(vars(logging.LogRecord("", 0, "", 0, "", (), None)))

#: The attributes every LogRecord has; whatever else it carries came from ``extra=``.
RECORD_ATTRIBUTES = frozenset(_MADE_WITH) | {
    "message",
    "asctime",
    "taskName",
    "_runtime_logging_extra",
}

_COLLIDED = "_runtime_logging_extra"


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a caller passed with ``extra=``, under their own names."""
    attributes = record.__dict__
    keys = list(attributes)
    if keys[:1] == _FIRST and keys[_LAST_INDEX : _LAST_INDEX + 1] == _LAST:
        # A record made by `logging.LogRecord` holds its own attributes first,
        # in a known order, so only what follows needs a look.
        keys = keys[len(_MADE_WITH) :]
    fields = {k: attributes[k] for k in keys if k not in RECORD_ATTRIBUTES}
    collided = attributes.get(_COLLIDED)
    if collided:
        fields.update(collided)
    return fields


_FIRST = [_MADE_WITH[0]]
_LAST = [_MADE_WITH[-1]]
_LAST_INDEX = len(_MADE_WITH) - 1


class PipelineHandler(logging.Handler):
    """Hands each stdlib record to the active pipeline without changing it."""

    def __init__(self, pipeline: _pipeline.Pipeline) -> None:
        """Route records to *pipeline*; its own level filters apply."""
        super().__init__(logging.NOTSET)
        self.pipeline = pipeline

    def handle(self, record: logging.LogRecord) -> bool:
        """Route *record*; the pipeline is thread-safe, so no handler lock."""
        if _pipeline.internal_thread.active or record.name.startswith(
            "runtime_logging"
        ):
            return False
        if self.filters and not self.filter(record):
            return False
        self.pipeline.log_record(record, record_fields(record))
        return True

    def emit(self, record: logging.LogRecord) -> None:
        """Route *record* (for callers that call ``emit`` directly)."""
        self.handle(record)


_original_make_record = logging.Logger.makeRecord


def _make_record(
    self: logging.Logger,
    name: str,
    level: int,
    fn: str,
    lno: int,
    msg: object,
    args: Any,
    exc_info: Any,
    func: str | None = None,
    extra: Mapping[str, object] | None = None,
    sinfo: str | None = None,
) -> logging.LogRecord:
    """Make a record as the stdlib does, but never raise for ``extra``.

    An ``extra`` key that collides with a record attribute is kept aside
    instead of raising ``KeyError`` into the caller.
    """
    record = _original_make_record(
        self, name, level, fn, lno, msg, args, exc_info, func, None, sinfo
    )
    if extra:
        attributes = record.__dict__
        if RECORD_ATTRIBUTES.isdisjoint(extra) and attributes.keys().isdisjoint(extra):
            attributes.update(extra)
            return record
        collided = {}
        for key, value in extra.items():
            if key in RECORD_ATTRIBUTES or key in attributes:
                collided[key] = value
            else:
                attributes[key] = value
        if collided:
            attributes[_COLLIDED] = collided
    return record


_stdlib_log = logging.Logger._log  # noqa: SLF001 - replaced, and put back
_stdlib_handle = logging.Logger.handle
_stdlib_call_handlers = logging.Logger.callHandlers
_PLAIN_LOGGERS = (logging.Logger, logging.RootLogger)


def _sole_handler(logger: logging.Logger, level: int) -> PipelineHandler | None:
    """The pipeline's handler when it is all that would see *logger*'s record.

    None when anything else could: another handler on the way up, a filter
    of the logger or the handler, a handler level above *level*, a logger
    class, record factory or logger method other than the stdlib's.
    """
    if (
        logger.filters
        or type(logger) not in _PLAIN_LOGGERS
        or logging.Logger.makeRecord is not _make_record
        or logging.Logger.handle is not _stdlib_handle
        or logging.Logger.callHandlers is not _stdlib_call_handlers
        or logging.getLogRecordFactory() is not logging.LogRecord
    ):
        return None
    found = None
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if found is not None or type(handler) is not PipelineHandler:
                return None
            found = handler
        if not current.propagate:
            break
        current = current.parent
    if found is None or found.filters or level < found.level:
        return None
    return found


def _log(
    self: logging.Logger,
    level: int,
    msg: object,
    args: Any,
    exc_info: Any = None,
    extra: Mapping[str, object] | None = None,
    stack_info: bool = False,
    stacklevel: int = 1,
) -> None:
    """`logging.Logger._log`, straight into the pipeline when only it listens.

    A record that only the pipeline's handler would see becomes its event
    without a `LogRecord`: the line takes nothing from what the record adds
    (the caller's frame, thread and process names), so the stdlib's making
    of it is skipped. Any other record takes the stdlib's way.
    """
    handler = None if stack_info else _sole_handler(self, level)
    if handler is None:
        # One level more: this frame is not the caller the stdlib looks for.
        _stdlib_log(self, level, msg, args, exc_info, extra, stack_info, stacklevel + 1)
        return
    if _pipeline.internal_thread.active or self.name.startswith("runtime_logging"):
        return
    fields = dict(extra) if extra else {}
    if exc_info:
        if isinstance(exc_info, BaseException):
            exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
        elif not isinstance(exc_info, tuple):
            exc_info = sys.exc_info()
    if args and len(args) == 1 and isinstance(args[0], Mapping) and args[0]:
        args = args[0]  # as LogRecord does: "%(key)s" formatting
    pipeline = handler.pipeline
    event = pipeline.stdlib_event(
        self.name, level, time.time_ns(), msg, args, exc_info, None, fields
    )
    if event is not None:
        pipeline.emit_event(event)


def install_make_record() -> None:
    """Make ``extra=`` with a reserved name safe for every logger."""
    logging.Logger.makeRecord = _make_record  # type: ignore[method-assign]


def install_direct_route() -> None:
    """Let a record only the pipeline would see skip the `LogRecord` (see `_log`)."""
    install_make_record()
    logging.Logger._log = _log  # type: ignore[method-assign]  # noqa: SLF001


def restore_logger_methods() -> None:
    """Put the stdlib's own ``makeRecord`` and ``_log`` back."""
    logging.Logger.makeRecord = _original_make_record  # type: ignore[method-assign]
    logging.Logger._log = _stdlib_log  # type: ignore[method-assign]  # noqa: SLF001
