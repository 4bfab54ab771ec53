"""A local Sentry ingest endpoint for the tests, and listeners that misbehave.

`SentryServer` listens on 127.0.0.1 (an ephemeral port) and takes what the
real sentry-sdk HTTP transport sends to ``http://public@127.0.0.1:<port>/1``:
envelopes, plain, gzip or brotli. It keeps every raw body (decoded) and every
item, so tests can assert on events, breadcrumbs, transactions and logs, and
search the bytes for secrets.

`HungListener` accepts connections and never answers; `closed_port()` gives
a port nobody listens on.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import brotli


def decode_body(body: bytes, encoding: str) -> bytes:
    """The body as sent before compression."""
    encoding = encoding.strip().lower()
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "br":
        return brotli.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding in {"", "identity"}:
        return body
    raise ValueError(f"unknown Content-Encoding {encoding!r}")


def parse_envelope(data: bytes) -> tuple[dict, list[tuple[dict, bytes]]]:
    """The envelope's headers and its items as (item headers, payload bytes)."""
    newline = data.find(b"\n")
    if newline < 0:
        return json.loads(data), []
    headers = json.loads(data[:newline])
    items = []
    rest = data[newline + 1 :]
    while rest.strip():
        newline = rest.find(b"\n")
        item_headers = json.loads(rest[:newline] if newline >= 0 else rest)
        rest = rest[newline + 1 :] if newline >= 0 else b""
        length = item_headers.get("length")
        if length is None:
            newline = rest.find(b"\n")
            payload = rest[:newline] if newline >= 0 else rest
            rest = rest[newline + 1 :] if newline >= 0 else b""
        else:
            payload = rest[:length]
            rest = rest[length:]
            if rest.startswith(b"\n"):
                rest = rest[1:]
        items.append((item_headers, payload))
    return headers, items


class SentryServer:
    """Receives envelopes on 127.0.0.1 and keeps them for assertions."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.encodings: list[str] = []
        self.envelopes: list[tuple[dict, list[tuple[dict, bytes]]]] = []
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._lock = threading.RLock()  # wait_for's predicate reads the lists
        self._changed = threading.Condition(self._lock)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                encoding = self.headers.get("Content-Encoding", "")
                body = decode_body(raw, encoding)
                server._keep(self.path, dict(self.headers), encoding, body)
                reply = b'{"id":"0"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def do_GET(self):
                reply = b"ok"
                self.send_response(200)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format, *args):  # noqa: A002 - stdlib signature
                del format, args

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self.port = self._http.server_address[1]
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._thread.start()

    @property
    def dsn(self) -> str:
        """The DSN that points sentry-sdk here."""
        return f"http://public@127.0.0.1:{self.port}/1"

    def _keep(self, path, headers, encoding, body):
        envelope = parse_envelope(body)
        with self._changed:
            self.requests.append((path, headers))
            self.encodings.append(encoding)
            self.bodies.append(body)
            self.envelopes.append(envelope)
            self._changed.notify_all()

    def items(self, kind: str) -> list[dict]:
        """The decoded payloads of every item of type *kind*."""
        with self._lock:
            envelopes = list(self.envelopes)
        return [
            json.loads(payload)
            for _, items in envelopes
            for headers, payload in items
            if headers.get("type") == kind
        ]

    @property
    def events(self) -> list[dict]:
        """Error and message events."""
        return self.items("event")

    @property
    def transactions(self) -> list[dict]:
        """Transactions."""
        return self.items("transaction")

    @property
    def logs(self) -> list[dict]:
        """Structured log entries, one dict per log, across every batch."""
        return [entry for batch in self.items("log") for entry in batch["items"]]

    @property
    def raw(self) -> bytes:
        """Every body received, decoded, joined: what a search for leaks reads."""
        with self._lock:
            return b"\n".join(self.bodies)

    def wait_for(self, predicate, timeout: float = 10.0) -> bool:
        """Wait until *predicate(self)* holds; whether it did within *timeout*."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(min(remaining, 0.05))
        return True

    def close(self) -> None:
        """Stop listening."""
        self._http.shutdown()
        self._http.server_close()


class HungListener:
    """A TCP listener on 127.0.0.1 that accepts and never answers."""

    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(64)
        self.port = self._socket.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._closed = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def dsn(self) -> str:
        """A DSN whose requests hang."""
        return f"http://public@127.0.0.1:{self.port}/1"

    def _accept(self):
        while not self._closed:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            self.accepted.append(connection)

    def close(self) -> None:
        """Stop accepting and drop every held connection."""
        self._closed = True
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)
        self._socket.close()
        for connection in self.accepted:
            connection.close()


def closed_port() -> int:
    """A port on 127.0.0.1 that refuses connections."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
