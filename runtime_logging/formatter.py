"""A stdlib `logging.Formatter` that writes the toolkit's JSON line.

For set-ups that are configuration files rather than code: `logging.config`
``dictConfig``, Django's ``LOGGING``, uvicorn's ``--log-config``, gunicorn's
``logconfig_dict``. Name ``runtime_logging.formatter.JsonFormatter`` and each
record becomes the line `configure_logging()` writes for it, byte for byte:
the same standard fields, bound context, exception object and redaction,
produced by the same code.
"""

from __future__ import annotations

import logging
import os
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pythonjsonlogger.json import JsonFormatter as _BaseJsonFormatter

from runtime_logging import _stdlib
from runtime_logging._pipeline import Pipeline
from runtime_logging.config import load_settings
from runtime_logging.errors import ConfigurationError
from runtime_logging.redaction import RedactionPolicy

# Forked workers (gunicorn, multiprocessing) must write their own pid.
_pipelines: weakref.WeakSet[Pipeline] = weakref.WeakSet()


def _refresh_after_fork() -> None:
    for pipeline in list(_pipelines):
        pipeline.refresh_process_fields()


os.register_at_fork(after_in_child=_refresh_after_fork)


class JsonFormatter(_BaseJsonFormatter):
    """Format each record as the toolkit's JSON line, without the newline.

    Settings (``service``, ``environment``, ``release``, ``redact_keys``,
    ``include_locals``, ...) come as keywords, as with `configure_logging()`,
    from ``config_file`` and from ``RUNTIME_LOGGING_*`` variables (*env*,
    `os.environ` when None). Rate limiting is the pipeline's, not a
    formatter's: a formatter can't drop a record.

    Raises:
        ConfigurationError: a format string was given, or a setting is bad.
    """

    def __init__(
        self,
        fmt: str | None = None,
        datefmt: str | None = None,
        style: str = "%",
        validate: bool = True,
        *,
        config_file: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        **settings: Any,
    ) -> None:
        """Build the chain for these settings; see the class docstring."""
        if fmt is not None:
            raise ConfigurationError(
                f"The formatter's `format` is {fmt!r}, but the JSON line's keys "
                "are fixed by the schema (SCHEMA.md); remove `format` from the "
                "formatter's configuration."
            )
        super().__init__(None, datefmt, style, validate)
        resolved = load_settings(config_file, env, **settings)
        redact = RedactionPolicy(resolved.redact_keys, resolved.redact_keys_allow)
        self.pipeline = Pipeline(resolved, (), redact=redact)
        _pipelines.add(self.pipeline)
        # An `extra=` key the stdlib reserves raises in makeRecord, before any
        # formatter runs; this keeps the call alive as configure_logging() does.
        _stdlib.install_make_record(keeper=self)

    def format(self, record: logging.LogRecord) -> str:
        """The JSON line for *record*; the record itself is not changed."""
        event = self.pipeline.record_event(record, _stdlib.record_fields(record))
        if event is None:
            return ""
        return event.json_line[:-1].decode("utf-8")
