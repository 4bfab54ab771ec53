"""A local Loki push endpoint on 127.0.0.1, as strict as Loki's push API.

It checks what Loki's distributor checks for a JSON push
(``pkg/loghttp/push``, ``pkg/validation``):

- ``Content-Encoding`` empty, ``gzip`` or ``deflate`` (else 400); a
  ``Content-Type`` other than ``application/json`` means snappy protobuf to
  Loki, which this receiver does not decode: it answers 415, so a client
  that sends protobuf fails here instead of passing unchecked;
- the body ``{"streams": [{"stream": {name: value}, "values": [[ts, line],
  [ts, line, {metadata}]]}]}``, timestamps a JSON string of decimal digits
  (nanoseconds), lines strings, metadata an object of strings;
- label names ``[a-zA-Z_][a-zA-Z0-9_]*``, at least one label, at most 15,
  names up to 1024 and values up to 2048 bytes of UTF-8 (Go's ``len``);
- entries: a line up to ``max_line_bytes`` (262144, Loki's ``256KB``),
  structured metadata up to 64KB (its names and values, in bytes), a
  time within a week back and ten minutes ahead, and not before the stream's
  last accepted entry (Loki with ``unordered_writes: false``); the same time
  and line again is a duplicate, accepted and stored once.

Like Loki, valid entries of a push are stored even when others are refused,
and the answer is then 400 naming the refused ones; otherwise 204.

Tests script failures with `answer` (429 with ``Retry-After``, 5xx, 400),
`hang` (accept and never answer), and `go_down` / `come_back` (the port
refuses connections, then listens again).
"""

from __future__ import annotations

import collections
import contextlib
import gzip
import http.server
import json
import re
import socket
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
MAX_LINE_BYTES = 256 * 1024
MAX_LABELS = 15
MAX_LABEL_NAME = 1024
MAX_LABEL_VALUE = 2048
MAX_METADATA_BYTES = 64 * 1024
MAX_AGE_NS = 7 * 24 * 3600 * 10**9
GRACE_NS = 10 * 60 * 10**9

StreamKey = tuple[tuple[str, str], ...]


class PushError(Exception):
    """A push Loki would refuse as a whole."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Push:
    """One request as received."""

    status: int
    headers: dict[str, str]
    at: float
    entries: int = 0
    refused: list[str] = field(default_factory=list)
    streams: list[dict[str, str]] = field(default_factory=list)
    query: str = ""


class LokiReceiver:
    """The receiver; `url` is its base URL, `streams` what it stored."""

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self.max_line_bytes = max_line_bytes
        self.streams: dict[StreamKey, list[tuple[int, str, dict[str, str]]]] = {}
        self.pushes: list[Push] = []
        self._answers: collections.deque[tuple[int, dict[str, str], str]] = (
            collections.deque()
        )
        self._lock = threading.Lock()
        self._hang = threading.Event()
        self._stopped = threading.Event()
        self._connections: set[socket.socket] = set()
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self._listen()

    # Control.

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answer(
        self, status: int, times: int = 1, retry_after: str = "", text: str = ""
    ) -> None:
        """Answer the next *times* pushes with *status* and *text*, storing nothing."""
        headers = {"Retry-After": retry_after} if retry_after else {}
        with self._lock:
            self._answers.extend([(status, headers, text)] * times)

    def hang(self) -> None:
        """Read each push and never answer it (until `stop`)."""
        self._hang.set()

    def go_down(self) -> None:
        """Close the port: connections are refused."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        for connection in list(self._connections):
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self._connections.clear()

    def come_back(self) -> None:
        """Listen on the same port again."""
        self._listen(self.port)

    def stop(self) -> None:
        self._stopped.set()
        self.go_down()

    # What was received.

    def lines(self, **labels: str) -> list[str]:
        """Stored lines of the streams whose labels include *labels*, in order."""
        with self._lock:
            return [
                line
                for key, entries in self.streams.items()
                if set(labels.items()) <= set(key)
                for _, line, _ in entries
            ]

    def records(self, **labels: str) -> list[dict]:
        return [json.loads(line) for line in self.lines(**labels)]

    @property
    def stream_labels(self) -> list[dict[str, str]]:
        with self._lock:
            return [dict(key) for key in self.streams]

    def entries(self) -> int:
        with self._lock:
            return sum(len(entries) for entries in self.streams.values())

    def wait_for(self, count: int, timeout: float = 10.0) -> int:
        """Wait until *count* entries are stored; the count at the end."""
        deadline = time.monotonic() + timeout
        while self.entries() < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.entries()

    # Serving.

    def _listen(self, port: int = 0) -> None:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                receiver._connections.add(self.connection)

            def do_POST(self) -> None:
                receiver._handle(self)

            def log_message(self, *args: object) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    def _handle(self, request: http.server.BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length)
        headers = dict(request.headers.items())
        if self._hang.is_set():
            self._stopped.wait()
            return
        with self._lock:
            scripted = self._answers.popleft() if self._answers else None
        if scripted is not None:
            status, extra, text = scripted
            self.pushes.append(Push(status, headers, time.monotonic()))
            self._reply(request, status, text or f"scripted {status}", extra)
            return
        path, _, query = request.path.partition("?")
        if path != "/loki/api/v1/push":
            self._reply(request, 404, "404 page not found")
            return
        try:
            streams = self._parse(request, body)
        except PushError as error:
            self.pushes.append(Push(error.status, headers, time.monotonic()))
            self._reply(request, error.status, str(error))
            return
        stored, refused = self._store(streams)
        status = 400 if refused else 204
        labels = [dict(key) for key, _ in streams]
        self.pushes.append(
            Push(status, headers, time.monotonic(), stored, refused, labels, query)
        )
        self._reply(request, status, "\n".join(refused))

    @staticmethod
    def _reply(
        request: http.server.BaseHTTPRequestHandler,
        status: int,
        text: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        payload = text.encode()
        request.send_response(status)
        for name, value in (headers or {}).items():
            request.send_header(name, value)
        if status != 204:
            request.send_header("Content-Type", "text/plain; charset=utf-8")
            request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        if status != 204:
            request.wfile.write(payload)

    def _parse(
        self, request: http.server.BaseHTTPRequestHandler, body: bytes
    ) -> list[tuple[StreamKey, list[tuple[int, str, dict[str, str]]]]]:
        encoding = request.headers.get("Content-Encoding", "")
        try:
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body, -zlib.MAX_WBITS)
            elif encoding not in {"", "snappy"}:
                raise PushError(400, f"Content-Encoding {encoding!r} not supported")
        except (OSError, EOFError, zlib.error) as error:
            raise PushError(400, f"bad {encoding} body: {error}") from None
        media = request.headers.get("Content-Type", "").split(";")[0].strip()
        if media != "application/json":
            raise PushError(415, "snappy protobuf pushes are not decoded here")
        try:
            document = json.loads(body)
        except ValueError as error:
            raise PushError(400, f"error decoding JSON: {error}") from None
        if not isinstance(document, dict) or not isinstance(
            document.get("streams"), list
        ):
            raise PushError(400, "the body is not {'streams': [...]}")
        return [self._parse_stream(stream) for stream in document["streams"]]

    def _parse_stream(
        self, stream: object
    ) -> tuple[StreamKey, list[tuple[int, str, dict[str, str]]]]:
        if not isinstance(stream, dict):
            raise PushError(400, f"a stream is {stream!r}, not an object")
        labels = stream.get("stream")
        if not isinstance(labels, dict) or not all(
            isinstance(v, str) for v in labels.values()
        ):
            raise PushError(400, f"error parsing labels {labels!r}")
        for name, value in labels.items():
            if not LABEL_NAME.fullmatch(name):
                raise PushError(400, f"error parsing labels: invalid name {name!r}")
            if len(name) > MAX_LABEL_NAME or _size(value) > MAX_LABEL_VALUE:
                raise PushError(400, f"label {name!r} or its value is too long")
        if not labels:
            raise PushError(400, "error at least one label pair is required per stream")
        if len(labels) > MAX_LABELS:
            raise PushError(400, f"{len(labels)} labels, more than {MAX_LABELS}")
        values = stream.get("values")
        if not isinstance(values, list):
            raise PushError(400, f"values {values!r} is not a list")
        return tuple(sorted(labels.items())), [self._parse_entry(v) for v in values]

    @staticmethod
    def _parse_entry(value: object) -> tuple[int, str, dict[str, str]]:
        if not isinstance(value, list) or len(value) not in {2, 3}:
            raise PushError(400, f"an entry is {value!r}, not [ts, line(, metadata)]")
        ts, line, *rest = value
        if not isinstance(ts, str) or not ts.isdigit():
            raise PushError(400, f"timestamp {ts!r} is not a string of nanoseconds")
        if not isinstance(line, str):
            raise PushError(400, f"line {line!r} is not a string")
        metadata = rest[0] if rest else {}
        if not isinstance(metadata, dict) or not all(
            isinstance(v, str) for v in metadata.values()
        ):
            raise PushError(400, f"structured metadata {metadata!r} is not strings")
        return int(ts), line, metadata

    def _store(
        self, streams: list[tuple[StreamKey, list[tuple[int, str, dict[str, str]]]]]
    ) -> tuple[int, list[str]]:
        now = time.time_ns()
        stored = 0
        refused = []
        with self._lock:
            for key, entries in streams:
                kept = self.streams.setdefault(key, [])
                for ts, line, metadata in entries:
                    size = len(line.encode())
                    last = kept[-1] if kept else None
                    metadata_size = sum(map(_size, [*metadata, *metadata.values()]))
                    if metadata_size > MAX_METADATA_BYTES:
                        refused.append(
                            f"stream '{dict(key)}' has structured metadata too "
                            f"large: '{metadata_size}' bytes, limit: "
                            f"'{MAX_METADATA_BYTES}' bytes"
                        )
                    elif size > self.max_line_bytes:
                        refused.append(
                            f"Max entry size '{self.max_line_bytes}' bytes exceeded "
                            f"for stream '{dict(key)}' while adding an entry with "
                            f"length '{size}' bytes"
                        )
                    elif ts < now - MAX_AGE_NS:
                        refused.append(f"entry for stream {dict(key)} too old: {ts}")
                    elif ts > now + GRACE_NS:
                        refused.append(f"entry for stream {dict(key)} too new: {ts}")
                    elif last is not None and ts < last[0]:
                        refused.append(
                            f"entry with timestamp {ts} ignored, reason: 'entry out "
                            f"of order' for stream: {dict(key)}"
                        )
                    elif last is not None and (ts, line) == last[:2]:
                        stored += 1  # a duplicate: accepted, kept once
                    else:
                        kept.append((ts, line, metadata))
                        stored += 1
                if not kept:
                    del self.streams[key]
        return stored, refused


def _size(text: str) -> int:
    """Bytes of *text* as Loki counts them (a lone surrogate: U+FFFD's 3)."""
    return len(text.encode("utf-8", "surrogatepass"))


class HungListener:
    """A TCP listener on 127.0.0.1 that accepts connections and never answers."""

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self._held.append(connection)

    def close(self) -> None:
        # shutdown() wakes the thread blocked in accept(); close() alone doesn't.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._thread.join(5)
        self._listener.close()
        for connection in self._held:
            connection.close()


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections while the block runs.

    Its socket is bound and does not listen: connections are refused, and
    no other test can take the port meanwhile (a port merely closed can be).
    """
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    try:
        yield holder.getsockname()[1]
    finally:
        holder.close()
