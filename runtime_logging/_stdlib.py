"""Records of stdlib `logging` into the same pipeline, in the same schema."""

from __future__ import annotations

import logging
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


def install_make_record() -> None:
    """Make ``extra=`` with a reserved name safe for every logger."""
    logging.Logger.makeRecord = _make_record  # type: ignore[method-assign]


def restore_make_record() -> None:
    """Put the stdlib's own ``makeRecord`` back."""
    logging.Logger.makeRecord = _original_make_record  # type: ignore[method-assign]
