"""gunicorn settings: every line, access lines included, in the JSON schema.

The master configures logging once, when it reads this file, before it
logs its first line and before it forks; the toolkit's at-fork handler gives
each worker its own pid and file handle, so workers need no set-up of their
own. gunicorn keeps its signals: USR1
reopens the log file, TERM drains it at exit.

Settings come from ``RUNTIME_LOGGING_*`` variables as usual; ``APP_BIND``
and ``APP_WORKERS`` choose the address and the number of workers. With
``RUNTIME_LOGGING_METRICS=true``, the master serves ``/metrics`` and
``/health`` on ``RUNTIME_LOGGING_METRICS_ADDRESS``, its own port, for all
workers: they count into ``RUNTIME_LOGGING_METRICS_DIR``, and a worker that
exits is folded into the totals there.
"""

from __future__ import annotations

import os
from typing import Any

from gunicorn.glogging import Logger

from runtime_logging import configure_logging, get_logger, get_service
from runtime_logging.metrics import mark_process_dead

bind = os.environ.get("APP_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("APP_WORKERS", "2"))
# Any value turns gunicorn's access log on; the logger class below writes it.
accesslog = "-"
# No runtime control socket in the home directory: nothing here uses it.
control_socket_disable = True

access_log = get_logger("gunicorn.access")


class PipelineLogger(Logger):
    """gunicorn's logger, with both of its loggers routed into the pipeline."""

    def setup(self, cfg: Any) -> None:
        """Let gunicorn set up, then hand its records to the root logger."""
        super().setup(cfg)
        for stdlib_logger in (self.error_log, self.access_log):
            for handler in list(stdlib_logger.handlers):
                stdlib_logger.removeHandler(handler)
            stdlib_logger.propagate = True

    def access(
        self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any
    ) -> None:
        """One access line per request, with fields instead of a format string."""
        del req
        status = str(resp.status).split(None, 1)[0]
        access_log.info(
            "Request handled",
            method=environ.get("REQUEST_METHOD"),
            path=environ.get("RAW_URI") or environ.get("PATH_INFO"),
            status=int(status) if status.isdigit() else status,
            duration_seconds=request_time.total_seconds(),
            response_bytes=getattr(resp, "sent", None),
            remote_addr=environ.get("REMOTE_ADDR"),
            user_agent=environ.get("HTTP_USER_AGENT"),
            # Set by the RequestIds middleware of wsgi_app.py.
            request_id=environ.get("runtime_logging.request_id"),
        )

    def reopen_files(self) -> None:
        """USR1: reopen the toolkit's file too (after an external rotation)."""
        super().reopen_files()
        service = get_service()
        if service is not None:
            service.reopen()


logger_class = PipelineLogger
# gunicorn owns the signals (TERM, HUP, USR1); the toolkit installs none.
configure_logging(handle_signals=False)


def worker_exit(server: Any, worker: Any) -> None:
    """Drain what the worker holds before it goes."""
    del server, worker
    service = get_service()
    if service is not None:
        service.flush()


def child_exit(server: Any, worker: Any) -> None:
    """In the master: keep an exited worker's counts, drop its files."""
    del server
    service = get_service()
    if service is not None and service.settings.metrics:
        mark_process_dead(worker.pid)
