"""Grafana Loki: the JSON lines, pushed from a background thread.

Delivery contract:

- ``emit()`` keeps the event's JSON line (the file's line, byte for byte),
  its record time and its stream labels in a bounded buffer: at most
  ``max_buffer_entries`` events and ``max_buffer_bytes`` bytes, counting
  the batch in flight. When it is full the new event is dropped and counted
  (the oldest are kept); drops are told on stderr at a bounded rate.
- A background thread pushes batches of at most ``batch_bytes`` to
  ``<url>/loki/api/v1/push`` every ``batch_interval`` (sooner when a batch
  is full): JSON, gzip, one stream per label set, entries in time order
  within each stream, the record time in nanoseconds as the timestamp.
- 429 and 5xx answers, refused connections and timeouts are retried with
  exponential back-off and jitter (or after ``Retry-After`` when Loki sends
  it); the buffer keeps filling, bounded, meanwhile. Any other 4xx drops
  the batch, counted and reported. Every request has the connect and read
  timeouts of the settings.
- A line longer than ``max_line_bytes`` is replaced by a shorter valid JSON
  line: its standard keys, the start of its event, the exception's type and
  message, and ``"truncated": true`` with ``"original_bytes"``.
- Each event is counted once, as delivered (Loki answered 2xx) or dropped:
  ``delivered + dropped == emitted`` once the sink is closed. An entry whose
  push was unanswered when the drain time ran out counts as dropped, though
  Loki may have stored it.
"""

from __future__ import annotations

import base64
import email.utils
import gzip
import random
import re
import time
from collections.abc import Sequence

import orjson
import urllib3

from runtime_logging._pipeline import LogEvent
from runtime_logging.config import Settings
from runtime_logging.errors import ConfigurationError
from runtime_logging.schema import STANDARD_KEYS, TRACE_KEYS
from runtime_logging.sinks._queue import QueuedSink

PUSH_PATH = "/loki/api/v1/push"

#: Loki's default ``max_line_size`` (256KB, where Loki's KB is 1024 bytes).
LOKI_MAX_LINE_BYTES = 256 * 1024

#: The shortest ``loki_max_line_bytes``: room for the standard keys.
MIN_LINE_BYTES = 1024

#: The longest wait between two attempts of one push, ``Retry-After`` included.
MAX_RETRY_WAIT = 300.0

_EXCEPTION_MESSAGE_CHARS = 1000
_CONTROL = re.compile(rb"[\x00-\x1f]")


class _Entry(LogEvent):
    """What the buffer keeps of an event: its line, its time, its stream fields.

    The fields, the exception and its frames stay out of the buffer, so its
    bytes are what the lines weigh.
    """

    __slots__ = ()

    def __init__(self, event: LogEvent, keep: dict[str, str]) -> None:
        super().__init__(keep, event.level, event.logger, event.time_ns, None)
        # A copy: orjson's bytes keep the buffer they were written in (8 KB
        # behind a 1 KB line), and the buffer's cap counts what lines measure.
        self._line = bytes(memoryview(event.json_line))


class LokiSink(QueuedSink):
    """Pushes each event's JSON line to Loki; see the module for the contract."""

    name = "loki"

    def __init__(
        self,
        url: str,
        *,
        labels: Sequence[str] = ("service", "environment", "level"),
        metadata: Sequence[str] = (),
        tenant: str = "",
        username: str = "",
        password: str = "",
        token: str = "",
        batch_bytes: int = 1000**2,
        batch_interval: float = 1.0,
        max_buffer_bytes: int = 16 * 1000**2,
        max_buffer_entries: int = 100_000,
        max_line_bytes: int = LOKI_MAX_LINE_BYTES,
        connect_timeout: float = 2.0,
        read_timeout: float = 5.0,
        min_backoff: float = 0.5,
        max_backoff: float = 30.0,
        min_level: int = 0,
    ) -> None:
        """Push to the Loki at *url* (its base URL, or the push URL itself).

        Args:
            url: ``http://host:3100`` or ``https://host/loki/api/v1/push``.
            labels: the event fields that make a stream's labels.
            metadata: event fields also sent as structured metadata.
            tenant: the ``X-Scope-OrgID`` header, when not empty.
            username: basic authentication, with *password*.
            password: basic authentication, with *username*.
            token: bearer authentication.
            batch_bytes: the largest push, in bytes of lines.
            batch_interval: seconds between pushes when batches are not full.
            max_buffer_bytes: the buffer's cap in bytes.
            max_buffer_entries: the buffer's cap in events.
            max_line_bytes: longer lines are truncated.
            connect_timeout: seconds to connect, per request.
            read_timeout: seconds to wait for each read of the answer.
            min_backoff: the first wait before a retry.
            max_backoff: the longest wait between retries (unless Loki asks
                for longer with ``Retry-After``).
            min_level: the lowest level pushed.
        """
        super().__init__(
            max_entries=max_buffer_entries,
            max_bytes=max_buffer_bytes,
            batch_entries=max_buffer_entries,
            batch_interval=batch_interval,
            batch_bytes=batch_bytes,
            min_level=min_level,
        )
        base = url.rstrip("/")
        self.url = base if base.endswith(PUSH_PATH) else base + PUSH_PATH
        self.labels = tuple(labels)
        self.metadata = tuple(metadata)
        self.max_line_bytes = max_line_bytes
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.truncated = 0
        self._keep = self.labels + self.metadata
        self._headers = _headers(tenant, username, password, token)
        self._last_time: dict[tuple[tuple[str, str], ...], int] = {}
        self._pool = _pool()

    @classmethod
    def from_settings(cls, settings: Settings) -> LokiSink:
        """The sink the ``loki_*`` settings describe."""
        if settings.loki_token and (settings.loki_username or settings.loki_password):
            raise ConfigurationError(
                "`loki_token` and `loki_username`/`loki_password` are both set; "
                "Loki takes one kind of authentication: unset one of them."
            )
        if bool(settings.loki_username) != bool(settings.loki_password):
            raise ConfigurationError(
                "`loki_username` and `loki_password` go together; set both "
                "for basic authentication, or neither."
            )
        if settings.loki_max_line_bytes < MIN_LINE_BYTES:
            raise ConfigurationError(
                f"`loki_max_line_bytes` is {settings.loki_max_line_bytes!r}; a "
                f"line needs at least {MIN_LINE_BYTES} bytes for its standard "
                "keys: set it between that and Loki's `max_line_size`."
            )
        if settings.loki_batch_bytes < 1:
            raise ConfigurationError(
                f"`loki_batch_bytes` is {settings.loki_batch_bytes!r}; set a push "
                "size of at least 1 byte, such as '1MB'."
            )
        overlap = set(settings.loki_labels) & set(settings.loki_metadata)
        if overlap:
            raise ConfigurationError(
                f"`loki_metadata` repeats the labels {sorted(overlap)!r}; a field "
                "is a label or structured metadata, not both: remove it from one."
            )
        return cls(
            settings.loki_url,
            labels=settings.loki_labels,
            metadata=settings.loki_metadata,
            tenant=settings.loki_tenant,
            username=settings.loki_username,
            password=settings.loki_password,
            token=settings.loki_token,
            batch_bytes=settings.loki_batch_bytes,
            batch_interval=settings.loki_batch_interval,
            max_buffer_bytes=settings.loki_max_buffer_bytes,
            max_buffer_entries=settings.loki_max_buffer_entries,
            max_line_bytes=settings.loki_max_line_bytes,
            connect_timeout=settings.loki_connect_timeout,
            read_timeout=settings.loki_read_timeout,
        )

    # The caller's side.

    def keep(self, event: LogEvent) -> LogEvent:
        """The line, the time and the stream's fields of an admitted *event*."""
        fields = event.fields
        stream = {
            name: _text(fields[name])
            for name in self._keep
            if fields.get(name) is not None
        }
        return _Entry(event, stream)

    # The background side.

    def deliver(self, batch: Sequence[LogEvent]) -> int:
        """Push *batch* as one request, retrying while Loki is unavailable."""
        body = gzip.compress(self._encode(batch), compresslevel=1)
        return len(batch) if self._push(body, len(batch)) else 0

    def _encode(self, batch: Sequence[LogEvent]) -> bytes:
        streams: dict[tuple[tuple[str, str], ...], list[LogEvent]] = {}
        labels = self.labels
        for event in batch:
            fields = event.fields
            key = tuple((name, fields[name]) for name in labels if fields.get(name))
            streams.setdefault(key, []).append(event)

        pushed = []
        for key, events in streams.items():
            events.sort(key=_record_time)
            # Loki refuses an entry older than the last one of its stream; a
            # record made just before the previous push's last one (another
            # thread, a clock step back) takes that entry's time instead.
            last = self._last_time.get(key, 0)
            values = []
            for event in events:
                last = max(last, event.time_ns)
                values.append(self._value(event, last))
            self._last_time[key] = last
            pushed.append(
                b'{"stream":%b,"values":[%b]}'
                % (orjson.dumps(dict(key)), b",".join(values))
            )
        return b'{"streams":[%b]}' % b",".join(pushed)

    def _value(self, event: LogEvent, time_ns: int) -> bytes:
        """The entry ``["<ns>","<line>"(,{metadata})]``, as JSON."""
        line = event.json_line.rstrip(b"\n")
        if len(line) > self.max_line_bytes:
            line = truncate_line(line, self.max_line_bytes)
            self.truncated += 1
        text = _json_string(line)
        if self.metadata:
            fields = event.fields
            found = {name: fields[name] for name in self.metadata if name in fields}
            if found:
                return b'["%d",%b,%b]' % (time_ns, text, orjson.dumps(found))
        return b'["%d",%b]' % (time_ns, text)

    def _push(self, body: bytes, count: int) -> bool:
        attempt = 0
        while True:
            status, wait, detail = self._post(body)
            if status is not None and 200 <= status < 300:
                self._recovered()
                return True
            if status is not None and status != 429 and status < 500:
                self._failed("push", f"{detail}; {count} events dropped")
                return False
            self._failed("push", f"{detail}; will retry")
            if wait is None:
                ceiling = min(self.max_backoff, self.min_backoff * 2**attempt)
                wait = random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter
            attempt += 1
            if not self.pause(wait):
                self._failed("push", f"no time left at exit; {count} events dropped")
                return False

    def _post(self, body: bytes) -> tuple[int | None, float | None, str]:
        """Send one request: its status, the wait Loki asked for, and a detail."""
        connect, read = self.connect_timeout, self.read_timeout
        left = self.time_left()
        if left is not None:
            connect, read = (max(0.01, min(t, left)) for t in (connect, read))
        try:
            response = self._pool.request(
                "POST",
                self.url,
                body=body,
                headers=self._headers,
                timeout=urllib3.Timeout(connect=connect, read=read),
                retries=False,
                redirect=False,
            )
        except (urllib3.exceptions.HTTPError, OSError) as error:
            return None, None, f"POST {self.url} failed: {error!r}"
        text = response.data[:200].decode("utf-8", "replace").strip()
        wait = _retry_after(response.headers.get("Retry-After"))
        return response.status, wait, f"Loki answered {response.status}: {text}"

    def close(self, timeout: float | None = None) -> None:
        """Drain within *timeout*, stop, and close the idle connections."""
        super().close(timeout)
        self._pool.clear()

    def after_fork(self) -> None:
        """Use new connections in a forked child: the parent's are shared."""
        super().after_fork()
        self.truncated = 0
        self._pool = _pool()


def truncate_line(line: bytes, limit: int) -> bytes:
    """A valid JSON line of at most *limit* bytes standing in for *line*.

    It keeps the standard keys with the start of the event, the exception's
    type and message, and says ``"truncated": true`` and ``"original_bytes"``.
    """
    try:
        fields = orjson.loads(line)
    except orjson.JSONDecodeError:
        fields = {"event": line.decode("utf-8", "replace")}
    if not isinstance(fields, dict):
        fields = {"event": str(fields)}
    event = str(fields.get("event", ""))
    kept = {key: fields[key] for key in STANDARD_KEYS + TRACE_KEYS if key in fields}
    kept.update(truncated=True, original_bytes=len(line))
    exception = fields.get("exception")
    if isinstance(exception, dict):
        kept["exception"] = {
            "type": str(exception.get("type", "")),
            "message": str(exception.get("message", ""))[:_EXCEPTION_MESSAGE_CHARS],
            "frames": [],
        }

    budget = limit
    while True:
        kept["event"] = _cut(event, budget)
        rendered = orjson.dumps(kept)
        if len(rendered) <= limit:
            return rendered
        if not kept["event"]:
            break
        budget -= len(rendered) - limit + 16

    # Even the standard keys are too long (a huge logger name): shorten them.
    kept.pop("exception", None)
    short = {k: _cut(v, 64) if isinstance(v, str) else v for k, v in kept.items()}
    rendered = orjson.dumps(short)
    if len(rendered) <= limit:
        return rendered
    return orjson.dumps({"truncated": True, "original_bytes": len(line)})


def _json_string(line: bytes) -> bytes:
    """*line* as a JSON string literal.

    A JSON line holds no raw control characters, so quoting it needs only
    its quotes and backslashes escaped; anything else goes through orjson.
    """
    if not _CONTROL.search(line) and (line.isascii() or _is_utf8(line)):
        return b'"%b"' % line.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
    return orjson.dumps(line.decode("utf-8", "replace"))


def _is_utf8(line: bytes) -> bool:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _cut(text: str, size: int) -> str:
    if size <= 0:
        return ""
    return text.encode("utf-8")[:size].decode("utf-8", "ignore")


def _record_time(event: LogEvent) -> int:
    return event.time_ns


def _text(value: object) -> str:
    return value if isinstance(value, str) else str(value)


def _retry_after(value: str | None) -> float | None:
    """The seconds of a ``Retry-After`` header (seconds or an HTTP date)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return min(max(seconds, 0.0), MAX_RETRY_WAIT)


def _headers(tenant: str, username: str, password: str, token: str) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "Content-Encoding": "gzip",
        "User-Agent": "runtime-logging",
    }
    if tenant:
        headers["X-Scope-OrgID"] = tenant
    if token:
        headers["Authorization"] = f"Bearer {token}"
    elif username or password:
        pair = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        headers["Authorization"] = f"Basic {pair}"
    return headers


def _pool() -> urllib3.PoolManager:
    return urllib3.PoolManager(num_pools=2, maxsize=1)
