"""``/metrics`` and ``/health``: a WSGI app, served on its own or mounted."""

from __future__ import annotations

import json
import socket
import socketserver
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector, CollectorRegistry

from runtime_logging._pipeline import background_thread
from runtime_logging.errors import ConfigurationError
from runtime_logging.metrics._process import health_family
from runtime_logging.sinks import DOWN, HEALTH_VALUES, HEALTHY, SinkHealth

#: The text format every Prometheus reads (prometheus-client >= 0.20).
CONTENT_TYPE_PLAIN_0_0_4 = "text/plain; version=0.0.4; charset=utf-8"

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
Environ = dict[str, Any]


class _SinkCollector(Collector):
    def __init__(self, collect: Callable[[], list[Metric]]) -> None:
        self._collect = collect

    def collect(self) -> Iterable[Metric]:
        return self._collect()


def metrics_text(collect: Callable[[], list[Metric]]) -> bytes:
    """The Prometheus text exposition of the families *collect* returns."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SinkCollector(collect))
    return generate_latest(registry)


def health_document(report: dict[str, SinkHealth]) -> tuple[int, dict[str, Any]]:
    """The HTTP status and JSON body of ``/health`` for *report*."""
    states = [state.state for state in report.values()] or [HEALTHY]
    worst = min(states, key=HEALTH_VALUES.__getitem__)
    body = {
        "status": worst,
        "components": {
            name: {
                "status": state.state,
                "value": state.value,
                "detail": state.detail,
                "delivered": state.delivered,
                "dropped": state.dropped,
                "failures": state.failures,
                "queue_depth": state.queue_depth,
            }
            for name, state in report.items()
        },
    }
    return (503 if worst == DOWN else 200), body


class MetricsApp:
    """A WSGI app answering ``/metrics`` and ``/health``.

    *find* returns, at each request, the metrics sink (or None when metrics
    are off) and the health of every sink.
    """

    def __init__(self, find: Callable[[], tuple[Any, dict[str, SinkHealth]]]) -> None:
        """Answer from what *find* returns at each request."""
        self._find = find

    def __call__(
        self, environ: Environ, start_response: StartResponse
    ) -> Iterator[bytes]:
        """Serve one request."""
        path = environ.get("PATH_INFO", "") or "/"
        sink, report = self._find()
        if path.rstrip("/") == "/metrics" or path == "/metrics":
            if sink is None:
                return _respond(start_response, 503, "text/plain", b"metrics are off\n")
            body = metrics_text(sink.collect)
            return _respond(start_response, 200, CONTENT_TYPE_PLAIN_0_0_4, body)
        if path.rstrip("/") == "/health":
            if sink is not None:
                report = sink.timed_health()
            status, document = health_document(report)
            if _wants_prometheus(environ):
                prefix = sink.prefix if sink is not None else ""
                body = metrics_text(lambda: [health_family(prefix, report)])
                return _respond(start_response, status, CONTENT_TYPE_PLAIN_0_0_4, body)
            data = json.dumps(document, sort_keys=True).encode() + b"\n"
            return _respond(start_response, status, "application/json", data)
        return _respond(start_response, 404, "text/plain", b"try /metrics or /health\n")


def _wants_prometheus(environ: Environ) -> bool:
    # A Prometheus scrape asks for its formats; people and curl get JSON.
    accept = str(environ.get("HTTP_ACCEPT", ""))
    return "openmetrics-text" in accept or "version=0.0.4" in accept


_REASONS = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}


def _respond(
    start_response: StartResponse, status: int, kind: str, body: bytes
) -> Iterator[bytes]:
    start_response(
        f"{status} {_REASONS[status]}",
        [("Content-Type", kind), ("Content-Length", str(len(body)))],
    )
    return iter([body])


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Say nothing: a scrape every few seconds is not news."""


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class MetricsServer:
    """Serves a WSGI app on one address from a daemon thread."""

    def __init__(self, address: str, app: MetricsApp) -> None:
        """Bind *address* (``HOST:PORT``; port 0 picks a free one) and serve.

        Raises:
            ConfigurationError: the address can't be bound.
        """
        host, _, port = address.rpartition(":")
        host = host.strip("[]")
        server_class = _Server6 if ":" in host else _Server
        try:
            self._server = make_server(
                host, int(port), app, server_class, handler_class=_QuietHandler
            )
        except OSError as error:
            raise ConfigurationError(
                f"`metrics_address` is {address!r}, which can't be bound "
                f"({error.strerror}); choose a free port, or set it to 'off' and "
                "mount runtime_logging.metrics.wsgi_app() in your own server."
            ) from None
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._serve, name="runtime_logging-metrics", daemon=True
        )
        self._thread.start()

    def _serve(self) -> None:
        background_thread()
        self._server.serve_forever(poll_interval=0.2)

    @property
    def url(self) -> str:
        """The base URL, such as ``http://127.0.0.1:8080``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stop(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()

    def forget(self) -> None:
        """In a forked child: close the inherited socket, leave the parent serving."""
        self._server.socket.close()
