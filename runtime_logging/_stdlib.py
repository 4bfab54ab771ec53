"""Records of stdlib `logging` into the same pipeline, in the same schema."""

from __future__ import annotations

import logging
import sys
import time
import weakref
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


def own_logger(name: object) -> bool:
    """Whether *name* is the toolkit's own logger or one below it."""
    return isinstance(name, str) and (
        name == "runtime_logging" or name.startswith("runtime_logging.")
    )


class PipelineHandler(logging.Handler):
    """Hands each stdlib record to the active pipeline without changing it."""

    def __init__(self, pipeline: _pipeline.Pipeline) -> None:
        """Route records to *pipeline*; its own level filters apply."""
        super().__init__(logging.NOTSET)
        self.pipeline = pipeline
        #: How many it has as made: an instance's own ``handle`` is one more.
        self.attributes = len(vars(self)) + 1

    def handle(self, record: logging.LogRecord) -> bool:
        """Route *record*; the pipeline is thread-safe, so no handler lock."""
        if _pipeline.internal_thread.active or own_logger(record.name):
            return False
        if self.filters:
            kept = self.filter(record)
            if not kept:
                return False
            if isinstance(kept, logging.LogRecord):
                record = kept  # a filter's record to use instead (3.12 on)
        self.pipeline.log_record(record, record_fields(record))
        return True

    def emit(self, record: logging.LogRecord) -> None:
        """Route *record* (for callers that call ``emit`` directly)."""
        self.handle(record)


# What `logging.Logger` had before the toolkit put its own in; put back by
# `restore_logger_methods` (another tool's patch included).
_saved_make_record = logging.Logger.makeRecord
_saved_log = logging.Logger._log  # noqa: SLF001 - replaced, and put back
#: Owners (JSON formatters) for whom ``makeRecord`` stays the toolkit's.
_make_record_keepers: weakref.WeakSet[object] = weakref.WeakSet()


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
    """Make a record as before, but never raise for ``extra``.

    An ``extra`` key that collides with a record attribute is kept aside
    instead of raising ``KeyError`` into the caller; an ``extra`` that is no
    mapping is kept whole, as the field ``extra``.
    """
    record = _saved_make_record(
        self, name, level, fn, lno, msg, args, exc_info, func, None, sinfo
    )
    if extra:
        attributes = record.__dict__
        if not isinstance(extra, Mapping):
            attributes[_COLLIDED] = {"extra": extra}
            return record
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


def _extra_fields(extra: object) -> dict[Any, Any]:
    """What `record_fields` reads back from a record made with *extra*."""
    if not extra:
        return {}
    if type(extra) is dict and RECORD_ATTRIBUTES.isdisjoint(extra):
        return extra.copy()
    if not isinstance(extra, Mapping):
        return {"extra": extra}
    # The names a record holds itself come last, as from a record.
    fields = {
        key: value for key, value in extra.items() if key not in RECORD_ATTRIBUTES
    }
    fields.update(
        [(key, value) for key, value in extra.items() if key in RECORD_ATTRIBUTES]
    )
    return fields


_STDLIB_FILE = logging.addLevelName.__code__.co_filename
#: Attributes of a logger nobody has added to, besides the ``manager`` that
#: ``getLogger()`` gives all but the root: an instance's own ``handle`` or
#: ``makeRecord`` is one more.
_LOGGER_ATTRIBUTES = len(vars(logging.Logger("probe")))  # noqa: LOG001 - a probe
_PIPELINE_HANDLE = PipelineHandler.handle


def _stdlib_methods() -> tuple[object, ...]:
    """The methods the stdlib calls between a logger's call and the handler."""
    return (
        logging.Logger.handle,
        logging.Logger.callHandlers,
        logging.Logger.filter,
        PipelineHandler.filter,
    )


_Logger = logging.Logger
_LogRecord = logging.LogRecord
_record_factory = logging.getLogRecordFactory
_RECORD_INIT = _LogRecord.__init__
_GET_MESSAGE = _LogRecord.getMessage


#: `_stdlib_methods` as they were when the direct route was put in.
_expected_methods = _stdlib_methods()


def _is_stdlib(method: object) -> bool:
    code = getattr(method, "__code__", None)
    return code is not None and code.co_filename == _STDLIB_FILE


def _sole_handler(logger: logging.Logger, level: int) -> PipelineHandler | None:
    """The pipeline's handler when it is all that would see *logger*'s record.

    None when anything else could: another handler on the way up, a filter
    of the logger or the handler, a handler level above *level*, a logger
    class, record factory or logger method other than the stdlib's (or an
    instance's own), or a method changed since the route was put in.
    """
    handle, call_handlers, logger_filter, handler_filter = _expected_methods
    attributes = logger.__dict__
    kind = type(logger)
    if (
        logger.filters
        or (kind is not _Logger and kind is not logging.RootLogger)
        or len(attributes) - ("manager" in attributes) != _LOGGER_ATTRIBUTES
        or kind.handle is not handle
        or kind.callHandlers is not call_handlers
        or kind.filter is not logger_filter
        or kind.makeRecord is not _make_record
        or PipelineHandler.filter is not handler_filter
        or PipelineHandler.handle is not _PIPELINE_HANDLE
        or _record_factory() is not _LogRecord
        or _LogRecord.__init__ is not _RECORD_INIT
        or _LogRecord.getMessage is not _GET_MESSAGE
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
    if (
        found is None
        or found.filters
        or level < found.level
        or len(found.__dict__) != found.attributes
    ):
        return None
    return found


def _caller_level(stacklevel: int) -> int:
    """*stacklevel* for the stdlib's `_log` called from `_log` below.

    This function's frame is one more between the caller and the stdlib's
    own frames, which the stdlib skips by their file (3.11 on: each frame
    of another file counts one level; 3.10: the count starts one frame
    further out and walks on from the first level).
    """
    if sys.version_info >= (3, 11):
        return stacklevel + 1 if stacklevel > 0 else stacklevel
    return max(stacklevel, 1) + 1  # pragma: no cover - 3.10


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
        _saved_log(
            self,
            level,
            msg,
            args,
            exc_info,
            extra,
            stack_info,
            _caller_level(stacklevel),
        )
        return
    if _pipeline.internal_thread.active or own_logger(self.name):
        return
    if exc_info:
        if isinstance(exc_info, BaseException):
            exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
        elif not isinstance(exc_info, tuple):
            exc_info = sys.exc_info()
    if args and len(args) == 1 and isinstance(args[0], Mapping) and args[0]:
        args = args[0]  # as LogRecord does: "%(key)s" formatting
    pipeline = handler.pipeline
    event = pipeline.stdlib_event(
        self.name,
        level,
        time.time_ns(),
        msg,
        args,
        exc_info,
        None,
        _extra_fields(extra),
    )
    if event is not None:
        pipeline.emit_event(event)


#: Whether the toolkit's ``makeRecord`` and ``_log`` are in ``logging.Logger``,
#: on top or under another tool's wrapper that calls them.
_installed = {"makeRecord": False, "_log": False}


def install_make_record(keeper: object | None = None) -> None:
    """Make ``extra=`` with a reserved name safe for every logger.

    A *keeper* (a JSON formatter) keeps it so while it lives, whatever a
    set-up's end puts back. Another tool's wrapper put on top since is left
    there: it calls the toolkit's.
    """
    global _saved_make_record  # noqa: PLW0603 - what was there before
    if keeper is not None:
        _make_record_keepers.add(keeper)
    # The stdlib's own there means that the toolkit's is in no wrapper.
    if not _installed["makeRecord"] or _is_stdlib(logging.Logger.makeRecord):
        _saved_make_record = logging.Logger.makeRecord
        logging.Logger.makeRecord = _make_record  # type: ignore[method-assign]
        _installed["makeRecord"] = True


def install_direct_route() -> None:
    """Let a record only the pipeline would see skip the `LogRecord` (see `_log`).

    Not when another tool changed the methods a record passes: then every
    record takes the stdlib's way, as that tool expects.
    """
    global _saved_log, _expected_methods
    install_make_record()
    if _installed["_log"] and not _is_stdlib(logging.Logger._log):  # noqa: SLF001
        return
    current_log = logging.Logger._log  # noqa: SLF001 - replaced, and put back
    methods = _stdlib_methods()
    stdlib_ones = (
        current_log,
        _saved_make_record,
        logging.LogRecord.__init__,
        logging.LogRecord.getMessage,
        *methods,
    )
    if (
        logging.Logger.makeRecord is not _make_record
        or not all(map(_is_stdlib, stdlib_ones))
        or PipelineHandler.handle is not _PIPELINE_HANDLE
    ):
        return
    _saved_log, _expected_methods = current_log, methods
    logging.Logger._log = _log  # type: ignore[method-assign]  # noqa: SLF001
    _installed["_log"] = True


def restore_logger_methods() -> None:
    """Put back the ``_log`` and ``makeRecord`` the toolkit replaced.

    ``makeRecord`` stays while a JSON formatter needs it. One that another
    tool's wrapper calls stays too: taking it out from under the wrapper is
    not possible.
    """
    if logging.Logger._log is _log:  # noqa: SLF001
        logging.Logger._log = _saved_log  # type: ignore[method-assign]  # noqa: SLF001
        _installed["_log"] = False
    if logging.Logger.makeRecord is _make_record and not _make_record_keepers:
        logging.Logger.makeRecord = _saved_make_record  # type: ignore[method-assign]
        _installed["makeRecord"] = False
