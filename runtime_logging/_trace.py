"""The active trace's ids, from OpenTelemetry or Sentry, when either is in use.

Neither is ever imported here: a module that is not in `sys.modules` is not
in use, so when neither is, the cost is two dictionary lookups per event.
"""

from __future__ import annotations

import sys
from types import ModuleType

_modules = sys.modules


def current_trace_ids() -> tuple[str, str] | None:
    """``(trace_id, span_id)`` of the active span, as hex, or None."""
    otel = _modules.get("opentelemetry.trace")
    if otel is not None:
        ids = _otel_ids(otel)
        if ids is not None:
            return ids
    sentry = _modules.get("sentry_sdk")
    if sentry is not None:
        return _sentry_ids(sentry)
    return None


def _otel_ids(otel: ModuleType) -> tuple[str, str] | None:
    try:
        context = otel.get_current_span().get_span_context()
        if not context.is_valid:
            return None
        return otel.format_trace_id(context.trace_id), otel.format_span_id(
            context.span_id
        )
    except Exception:
        # An API this old or this new is not worth an event: no ids.
        return None


def _sentry_ids(sentry: ModuleType) -> tuple[str, str] | None:
    try:
        span = sentry.get_current_span()
        trace_id = getattr(span, "trace_id", None)
        span_id = getattr(span, "span_id", None)
    except Exception:
        return None
    if isinstance(trace_id, str) and isinstance(span_id, str) and trace_id:
        return trace_id, span_id
    return None
