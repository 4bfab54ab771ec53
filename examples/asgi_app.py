r"""An ASGI service whose logging is one uvicorn ``--log-config`` file.

No call to ``configure_logging()``: the config file names
``runtime_logging.formatter.JsonFormatter``, so uvicorn's own lines, its
access lines and the app's stdlib records all come out in the toolkit's
schema, with the request's ``request_id`` from the context::

    uvicorn asgi_app:app --app-dir examples --host 127.0.0.1 --port 8000 \
      --workers 2 --log-config examples/uvicorn_logging.json
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from runtime_logging import bound_context
from runtime_logging.context import request_id_from

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("app")


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    """The service itself: one greeting, one failure."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    path = scope["path"]
    status, body = 200, b"hello\n"
    if path == "/fail":
        try:
            1 / 0  # noqa: B018 - the failure the example logs
        except ZeroDivisionError:
            log.exception("Greeting failed", extra={"path": path})
        status, body = 500, b"failed\n"
    else:
        log.info("Greeting sent", extra={"path": path})
    headers = [(b"content-type", b"text/plain")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            log.info("Service started")
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


class RequestIds:
    """ASGI middleware: bind a request id for the request and return it."""

    def __init__(self, app: App) -> None:
        """Wrap *app*."""
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one request with its id bound to every line it logs."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"")
        request_id = request_id_from(incoming.decode("latin-1"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", [])]
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        # uvicorn writes its access line inside send(), so in this context too.
        with bound_context(request_id=request_id):
            await self.app(scope, receive, send_with_id)


app = RequestIds(hello)
