"""runtime_logging: structured logging and the error pipeline around it.

Call `configure_logging()` once at start-up; from then on every log call, from
structlog loggers and from stdlib `logging`, becomes one structured event
that passes one chain and reaches every configured sink.
"""

from __future__ import annotations

from runtime_logging._logger import Logger, get_logger
from runtime_logging._pipeline import HOOK_POINTS, LogEvent
from runtime_logging._service import LoggingService, configure_logging, get_service
from runtime_logging.config import Settings, load_settings
from runtime_logging.context import (
    ContextExecutor,
    bind_context,
    bound_context,
    clear_context,
    get_context,
    unbind_context,
    with_context,
)
from runtime_logging.errors import (
    ConfigurationError,
    MissingExtraError,
    RuntimeLoggingError,
)
from runtime_logging.redaction import RedactionPolicy
from runtime_logging.schema import SCHEMA_VERSION

__version__ = "0.1.0"

__all__ = [
    "HOOK_POINTS",
    "SCHEMA_VERSION",
    "ConfigurationError",
    "ContextExecutor",
    "LogEvent",
    "Logger",
    "LoggingService",
    "MissingExtraError",
    "RedactionPolicy",
    "RuntimeLoggingError",
    "Settings",
    "bind_context",
    "bound_context",
    "clear_context",
    "configure_logging",
    "get_context",
    "get_logger",
    "get_service",
    "load_settings",
    "unbind_context",
    "with_context",
]
