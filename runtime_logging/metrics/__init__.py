"""Metrics derived from the events: counters, gauges and histograms for Prometheus.

Turned on by the ``metrics`` setting (extra ``metrics``: prometheus-client,
imported only then). See the README's metrics section for the families, the
rules format and the multiprocess mode.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runtime_logging.metrics._errors import (
    DEFAULT_INFRASTRUCTURE,
    ERROR_TYPES,
    SEVERITIES,
    ErrorClassifier,
    ErrorWindow,
)
from runtime_logging.metrics._rules import REFERENCE_RULES, RuleSet, load_rules

if TYPE_CHECKING:
    from runtime_logging._service import LoggingService
    from runtime_logging.metrics._http import MetricsApp
    from runtime_logging.metrics._sink import MetricsSink


def wsgi_app(service: LoggingService | None = None) -> MetricsApp:
    """A WSGI app for ``/metrics`` and ``/health``, to mount in your own server.

    It answers for *service*, or for the active set-up at each request.
    """
    from runtime_logging._service import get_service
    from runtime_logging.metrics._http import MetricsApp
    from runtime_logging.metrics._sink import MetricsSink

    def find() -> tuple[MetricsSink | None, dict[str, Any]]:
        current = service or get_service()
        if current is None:
            return None, {}
        for sink in current.sinks:
            if isinstance(sink, MetricsSink):
                return sink, {}
        return None, current.health()

    return MetricsApp(find)


def mark_process_dead(pid: int, directory: str | Path | None = None) -> None:
    """Fold the files of the dead worker *pid* into the metrics directory's archive.

    Call it from the pre-fork server's worker-exit hook (gunicorn:
    ``child_exit``). *directory* defaults to the active set-up's
    ``metrics_dir``, then ``PROMETHEUS_MULTIPROC_DIR``.
    """
    from runtime_logging._service import get_service
    from runtime_logging.metrics._store import merge_dead_process

    if directory is None:
        service = get_service()
        directory = service.settings.metrics_dir if service else None
    directory = directory or os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return
    merge_dead_process(pid, Path(directory))


def __getattr__(name: str) -> Any:
    if name == "MetricsSink":
        from runtime_logging.metrics._sink import MetricsSink

        return MetricsSink
    raise AttributeError(name)


__all__ = [
    "DEFAULT_INFRASTRUCTURE",
    "ERROR_TYPES",
    "REFERENCE_RULES",
    "SEVERITIES",
    "ErrorClassifier",
    "ErrorWindow",
    "MetricsSink",
    "RuleSet",
    "load_rules",
    "mark_process_dead",
    "wsgi_app",
]
