"""A WSGI service that logs through runtime_logging, one request id a request.

Run it under gunicorn with the settings beside it::

    gunicorn -c examples/gunicorn_conf.py --pythonpath examples wsgi_app:application

Every line a request causes, its access line included, carries the request's
``request_id``; the response returns it in ``X-Request-ID``. A caller's own
``X-Request-ID`` is kept when it is a short token, so ids follow a request
across services.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from runtime_logging import bound_context, get_logger
from runtime_logging.context import request_id_from

REQUEST_ID_HEADER = "X-Request-ID"
#: Where the request id is kept in the WSGI environ, for the access log.
REQUEST_ID_KEY = "runtime_logging.request_id"

StartResponse = Callable[..., Any]
log = get_logger("app")


def hello(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
    """The service itself: one greeting, one failure."""
    path = environ.get("PATH_INFO", "/")
    if path == "/fail":
        try:
            1 / 0  # noqa: B018 - the failure the example logs
        except ZeroDivisionError:
            log.exception("Greeting failed", path=path)
        start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
        return [b"failed\n"]
    log.info("Greeting sent", path=path)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello\n"]


class RequestIds:
    """WSGI middleware: bind a request id for the request and return it."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        """Wrap *app*."""
        self.app = app

    def __call__(
        self, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        """Handle one request with its id bound to every line it logs."""
        request_id = request_id_from(environ.get("HTTP_X_REQUEST_ID"))
        environ[REQUEST_ID_KEY] = request_id

        def start(status: str, headers: list[Any], exc_info: Any = None) -> Any:
            return start_response(
                status, [*headers, (REQUEST_ID_HEADER, request_id)], exc_info
            )

        # A body produced lazily after the call returns is outside the block;
        # this app returns lists, so everything it logs is inside.
        with bound_context(request_id=request_id):
            return self.app(environ, start)


application = RequestIds(hello)
