"""Grafana Loki: the JSON lines, pushed from a background thread.

Delivery contract:

- ``emit()`` keeps the event's JSON line (the file's line, byte for byte,
  or its stand-in when longer than ``max_line_bytes``), its record time and
  its stream labels in a bounded buffer: at most
  ``max_buffer_entries`` events and ``max_buffer_bytes`` bytes, counting
  the batch in flight. When it is full the new event is dropped and counted
  (the oldest are kept); drops are told on stderr at a bounded rate.
- A background thread pushes batches of at most ``batch_bytes`` to
  ``<url>/loki/api/v1/push`` every ``batch_interval`` (sooner when a batch
  is full): JSON, gzip, one stream per label set, entries in time order
  within each stream, the record time in nanoseconds as the timestamp.
- 429 and 5xx answers, refused connections and timeouts are retried with
  exponential back-off and jitter (or after ``Retry-After`` when Loki sends
  a longer wait); the buffer keeps filling, bounded, meanwhile. Any other 4xx drops
  the batch, counted and reported. Every request has the connect and read
  timeouts of the settings.
- A line longer than ``max_line_bytes`` is replaced, on the caller's side
  before the buffer weighs it, by a shorter valid JSON line: its standard
  keys, the start of its event, the exception's type and message, and
  ``"truncated": true`` with ``"original_bytes"``.
- Each event is counted once, as delivered (Loki answered 2xx) or dropped:
  ``delivered + dropped == emitted`` once the sink is closed. An entry whose
  push was unanswered when the drain time ran out counts as dropped, though
  Loki may have stored it.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import gzip
import itertools
import operator
import random
import re
import socket
import threading
import time
from collections.abc import Mapping, Sequence

import orjson
import urllib3
import urllib3.connection

from runtime_logging._encoding import clean_text, safe_str
from runtime_logging._pipeline import LogEvent
from runtime_logging.config import (
    LOKI_MIN_LINE_BYTES,
    Settings,
    check_loki_credential,
    loki_url_credentials,
    mask_url,
    url_secrets,
)
from runtime_logging.schema import STANDARD_KEYS, TRACE_KEYS, field_key
from runtime_logging.sinks._queue import QueuedSink

PUSH_PATH = "/loki/api/v1/push"
#: What no field holds: the stream of the first entry is always made.
_NO_VALUE = object()
#: Values whose text can't change while they stay the same object.
_UNCHANGING = frozenset({str, int, float, bool, type(None)})

#: Loki's default ``max_line_size`` (256KB, where Loki's KB is 1024 bytes).
LOKI_MAX_LINE_BYTES = 256 * 1024

#: The shortest ``loki_max_line_bytes``: room for the standard keys.
MIN_LINE_BYTES = LOKI_MIN_LINE_BYTES

#: Loki's default ``max_label_value_length``, in bytes.
MAX_LABEL_VALUE_BYTES = 2048
#: Loki's default ``max_structured_metadata_size`` (64KB): names and values.
MAX_METADATA_BYTES = 64 * 1024
#: The labels of an entry whose own label values are all empty: Loki refuses
#: a stream without labels, and names a stream without a service this way.
FALLBACK_STREAM = (("service_name", "unknown_service"),)

#: The longest wait between two attempts of one push, ``Retry-After`` included.
MAX_RETRY_WAIT = 300.0

_CONTROL = re.compile(rb"[\x00-\x1f]")
#: Joins a batch's lines to be quoted at once: JSON lines hold no raw NUL.
_SEPARATOR = b"\x00"
#: The bytes a JSON string can't hold raw, the separator among them.
_CONTROL_BYTES = bytes(range(0x20))


class _Entry(LogEvent):
    """What the buffer keeps of an event: its line, its time, its stream fields.

    The fields, the exception and its frames stay out of the buffer, so its
    bytes are what the lines weigh.
    """

    __slots__ = ()

    def __init__(
        self, event: LogEvent, keep: dict[str, str], line: bytes | None = None
    ) -> None:
        # Each slot set here rather than by LogEvent's __init__: this runs on
        # the caller's thread for every event.
        self.fields = keep
        self.level = event.level
        self.logger = event.logger
        self.time_ns = event.time_ns
        self.exc_info = self.template = None
        self._plain = False
        # A copy: orjson's bytes keep the buffer they were written in (8 KB
        # behind a 1 KB line), and the buffer's cap counts what lines measure.
        self._line = bytes(memoryview(event.json_line)) if line is None else line


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
            url: ``http://host:3100`` or ``https://host/loki/api/v1/push``;
                a ``user:password@`` in it is sent as basic authentication.
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
        # The path goes before a query (a proxy's ``?token=``), which stays.
        query_at = len(url.split("?", 1)[0].split("#", 1)[0])
        base, query = url[:query_at].rstrip("/"), url[query_at:]
        push_url = (base if base.endswith(PUSH_PATH) else base + PUSH_PATH) + query
        #: The push URL as reports show it: user-info and query values masked.
        self.url = mask_url(push_url)
        credentials = loki_url_credentials(push_url)
        if credentials is not None:
            _, push_url, username, password = credentials
        check_loki_credential("loki_tenant", tenant, header=True)
        check_loki_credential("loki_token", token, header=True, secret=True)
        check_loki_credential("loki_username", username, header=False)
        check_loki_credential("loki_password", password, header=False, secret=True)
        self._connection = _Connection(push_url)
        self.labels = tuple(labels)
        self.metadata = tuple(metadata)
        self.max_line_bytes = max_line_bytes
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.truncated = 0
        #: The longest line, its newline included, that is queued as it is.
        self._longest = max_line_bytes + 1
        self._keep = self.labels + self.metadata
        # Each value as long as Loki takes: a label's, or a share of the
        # metadata's room.
        share = (MAX_METADATA_BYTES - sum(map(len, self.metadata))) // max(
            1, len(self.metadata)
        )
        self._limits = tuple(
            MAX_LABEL_VALUE_BYTES if name in self.labels else share
            for name in self._keep
        )
        self._headers = _headers(tenant, username, password, token)
        #: The secrets as a failure's text could show them, longest first.
        authorization = self._headers.get("Authorization", "")
        self._secrets = _shown_forms(
            token,
            password,
            authorization,
            authorization.partition(" ")[2],
            *url_secrets(url),
        )
        self._last_time: dict[tuple[tuple[str, str], ...], int] = {}
        self._last_stream: tuple[list[object], dict[str, str]] = (
            [_NO_VALUE] * len(self._keep),
            {},
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> LokiSink:
        """The sink the ``loki_*`` settings describe (checked by `load_settings`)."""
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

    def emit(self, event: LogEvent) -> None:
        """Queue *event*, a line over ``max_line_bytes`` cut first.

        Cut here, before the buffer weighs it: the buffer holds and counts
        what is sent, and a line larger than the whole buffer still goes.
        """
        if len(event.json_line) > self._longest:
            event = self._shortened(event)
        QueuedSink.emit(self, event)

    def _shortened(self, event: LogEvent) -> LogEvent:
        line = event.json_line.rstrip(b"\n")
        if len(line) <= self.max_line_bytes:
            return event
        self.truncated += 1
        return _Entry(event, event.fields, truncate_line(line, self.max_line_bytes))

    def keep(self, event: LogEvent) -> LogEvent:
        """The line, the time and the stream's fields of an admitted *event*."""
        fields = event.fields
        values = [fields.get(name) for name in self._keep]
        last_values, stream = self._last_stream
        # Entries of the same stream share its fields: one object per entry
        # in the buffer is what the collector counts on the caller's thread.
        if not all(map(operator.is_, values, last_values)):
            stream = {
                name: _loki_text(value, limit)
                for name, value, limit in zip(
                    self._keep, values, self._limits, strict=True
                )
                if value is not None
            }
            if all(type(value) in _UNCHANGING for value in values):
                self._last_stream = values, stream
        return _Entry(event, stream)

    # The background side.

    def deliver(self, batch: Sequence[LogEvent]) -> int:
        """Push *batch* as one request, retrying while Loki is unavailable."""
        body = gzip.compress(self._encode(batch), compresslevel=1)
        return len(batch) if self._push(body) else 0

    def _encode(self, batch: Sequence[LogEvent]) -> bytes:
        streams: dict[tuple[tuple[str, str], ...], list[LogEvent]] = {}
        labels = self.labels
        # Entries of one stream share their fields (`keep`): one key each.
        keys: dict[int, tuple[tuple[str, str], ...]] = {}
        for event in batch:
            fields = event.fields
            key = keys.get(id(fields))
            if key is None:
                key = tuple((name, fields[name]) for name in labels if fields.get(name))
                keys[id(fields)] = key = key or FALLBACK_STREAM
            streams.setdefault(key, []).append(event)

        pushed = []
        for key, events in streams.items():
            events.sort(key=_record_time)
            # Loki refuses an entry older than the last one of its stream; a
            # record made just before the previous push's last one (another
            # thread, a clock step back) takes that entry's time instead.
            last = self._last_time.get(key, 0)
            times = list(
                itertools.accumulate(map(_record_time, events), max, initial=last)
            )[1:]
            self._last_time[key] = times[-1]
            pushed.append(
                b'{"stream":%b,"values":[%b]}'
                % (orjson.dumps(dict(key)), self._values(events, times))
            )
        return b'{"streams":[%b]}' % b",".join(pushed)

    def _values(self, events: Sequence[LogEvent], times: Sequence[int]) -> bytes:
        """The entries ``["<ns>","<line>"(,{metadata})]`` of a stream, as JSON."""
        lines = [self._line(event) for event in events]
        if not self.metadata:
            # The usual batch, quoted whole: its lines joined by a byte that
            # no JSON line holds, escaped in two passes, split again. The
            # per-entry work of `_json_string`, done once.
            joined = _SEPARATOR.join(lines)
            if len(joined.translate(None, _CONTROL_BYTES)) == len(joined) - len(
                lines
            ) + 1 and (joined.isascii() or _is_utf8(joined)):
                quoted = _escape(joined).split(_SEPARATOR)
                entries = zip(times, quoted, strict=True)
                return b",".join([b'["%d","%b"]' % entry for entry in entries])
        return b",".join(
            [
                self._value(event, time_ns, line)
                for event, time_ns, line in zip(events, times, lines, strict=True)
            ]
        )

    @staticmethod
    def _line(event: LogEvent) -> bytes:
        """*event*'s line without its newline (`emit` cut it if it was long)."""
        return event.json_line.rstrip(b"\n")

    def _value(self, event: LogEvent, time_ns: int, line: bytes) -> bytes:
        """One entry ``["<ns>","<line>"(,{metadata})]``, as JSON."""
        text = _json_string(line)
        if self.metadata:
            fields = event.fields
            found = {name: fields[name] for name in self.metadata if name in fields}
            if found:
                return b'["%d",%b,%b]' % (time_ns, text, orjson.dumps(found))
        return b'["%d",%b]' % (time_ns, text)

    def _push(self, body: bytes) -> bool:
        attempt = 0
        while True:
            status, wait, detail = self._post(body)
            if status is not None and 200 <= status < 300:
                self._recovered()
                return True
            if self._closed:
                return False  # close() gave up on it: counted and told there
            if status is not None and status != 429 and status < 500:
                # Told with the count of events it dropped, once.
                self._failed("push", f"{detail}; not retried", report=False)
                return False
            self._failed("push", f"{detail}; will retry")
            ceiling = min(self.max_backoff, self.min_backoff * 2**attempt)
            backoff = random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter
            # Retry-After may ask for longer, never for less: "0" or a past
            # date would otherwise retry without pause.
            wait = backoff if wait is None else max(wait, backoff)
            attempt += 1
            if not self.pause(wait):
                return False  # close() counts and tells the batch as dropped

    def _post(self, body: bytes) -> tuple[int | None, float | None, str]:
        """Send one request: its status, the wait Loki asked for, and a detail."""
        connect, read = self.connect_timeout, self.read_timeout
        left = self.time_left()
        if left is not None:
            connect, read = (max(0.01, min(t, left)) for t in (connect, read))
        try:
            response = self._connection.post(body, self._headers, connect, read)
        except (urllib3.exceptions.HTTPError, OSError) as error:
            return None, None, f"POST {self.url} failed: {error!r}"
        text = response.data[:200].decode("utf-8", "replace").strip()
        wait = _retry_after(response.headers.get("Retry-After"))
        return response.status, wait, f"Loki answered {response.status}: {text}"

    def _failed(
        self, what: str, error: BaseException | str, *, report: bool = True
    ) -> None:
        """Count and tell a failure, with every credential in its text masked."""
        text = str(error)
        for secret in self._secrets:
            text = text.replace(secret, "********")
        super()._failed(what, text, report=report)

    def follow(self, previous: object) -> None:
        """Go on from *previous*, the Loki sink of the set-up this one replaces.

        Its streams' last pushed times carry over, so that a line logged just
        before the change and pushed here is not older than what it pushed
        (Loki refuses an entry older than its stream's last).
        """
        if isinstance(previous, LokiSink) and previous.url == self.url:
            for key, last in previous._last_time.items():  # noqa: SLF001
                self._last_time[key] = max(last, self._last_time.get(key, 0))

    def interrupt(self) -> None:
        """Close the connection: a push waiting on it fails at once."""
        self._connection.close()

    def close(self, timeout: float | None = None) -> None:
        """Drain within *timeout*, stop, and close the connection."""
        super().close(timeout)
        self._connection.close()

    def after_fork(self) -> None:
        """Use a new connection in a forked child: the parent's is shared."""
        super().after_fork()
        self.truncated = 0
        self._connection = _Connection(self._connection.url)


class _Connection:
    """The one keep-alive connection to Loki, which `close` ends at once.

    A push blocked on it (a hung Loki) fails as soon as it is closed: the
    socket is shut down under the push, which closes it as it fails.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = urllib3.util.parse_url(url)
        self._https = parsed.scheme == "https"
        self._host = parsed.host or ""
        self._port = parsed.port
        self._path = parsed.request_uri
        self._lock = threading.Lock()
        self._open: urllib3.connection.HTTPConnection | None = None
        self._busy = False
        self._closed = False

    def post(
        self, body: bytes, headers: Mapping[str, str], connect: float, read: float
    ) -> urllib3.BaseHTTPResponse:
        """POST *body*; the answer, read whole."""
        with self._lock:
            self._check_open()
            connection = self._open
            if connection is None or not connection.is_connected:
                if connection is not None:
                    connection.close()
                kind = (
                    urllib3.connection.HTTPSConnection
                    if self._https
                    else urllib3.connection.HTTPConnection
                )
                connection = self._open = kind(self._host, self._port)
            self._busy = True
        try:
            if connection.sock is None:
                connection.timeout = connect
                connection.connect()
            with self._lock:  # closed while connecting: no socket to shut down
                self._check_open()
            connection.timeout = read
            connection.request("POST", self._path, body=body, headers=headers)
            response = connection.getresponse()
        except BaseException:
            self._done(connection, failed=True)
            raise
        self._done(connection, failed=False)
        return response

    def _check_open(self) -> None:
        if self._closed:
            raise ConnectionAbortedError("the sink is closed")

    def _done(
        self, connection: urllib3.connection.HTTPConnection, *, failed: bool
    ) -> None:
        with self._lock:
            self._busy = False
            if failed or self._closed:
                connection.close()
                if self._open is connection:
                    self._open = None

    def close(self) -> None:
        """Close the connection, or shut down its socket under a push."""
        with self._lock:
            self._closed = True
            connection = self._open
            if connection is None:
                return
            if not self._busy:
                connection.close()
                self._open = None
            elif connection.sock is not None:
                with contextlib.suppress(OSError):
                    connection.sock.shutdown(socket.SHUT_RDWR)


def truncate_line(line: bytes, limit: int) -> bytes:
    """A valid JSON line of at most *limit* bytes standing in for *line*.

    Its small values stay as they are; only the values longer than one
    length, the longest that fits, are cut to it: a string keeps its start,
    the exception its type, message and frames within that length, another
    value the start of its JSON text. ``"truncated": true``,
    ``"original_bytes"`` and ``"truncated_fields"`` (the keys cut) say so.
    Should the keys alone not fit, the last fields go, counted in
    ``"dropped_fields"``.
    """
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        record = {"event": line.decode("utf-8", "replace")}
    if not isinstance(record, dict):
        record = {"event": str(record)}
    for key in _MARKER_KEYS:  # the event's own field of that name stays
        if key in record:
            record[field_key(key, record.keys() | _MARKER_KEYS)] = record.pop(key)
    marker: dict[str, object] = {"truncated": True, "original_bytes": len(line)}
    rendered = _fitting(_Cuttable(record), marker, limit)
    if rendered is not None:
        return rendered
    # Too many keys even with the long values cut: keep the most that fit.
    droppable = [key for key in record if key not in _KEPT_KEYS]
    best = orjson.dumps(marker)
    low, high = 0, len(droppable) - 1
    while low <= high:
        kept = (low + high) // 2
        gone = set(droppable[kept:])
        fewer = {key: value for key, value in record.items() if key not in gone}
        attempt = _fitting(
            _Cuttable(fewer), {**marker, "dropped_fields": len(gone)}, limit
        )
        if attempt is None:
            high = kept - 1
        else:
            best, low = attempt, kept + 1
    return best


_MARKER_KEYS = frozenset(
    {"truncated", "original_bytes", "truncated_fields", "dropped_fields"}
)
#: Keys a stand-in keeps, whatever it drops.
_KEPT_KEYS = frozenset(STANDARD_KEYS + TRACE_KEYS)
#: Values never cut while they are this short: the schema fixes their form.
_WHOLE_KEYS = frozenset({"timestamp", "level", "pid"})
_WHOLE_BYTES = 64


class _Cuttable:
    """A record's values and their JSON sizes, to cut all to one length."""

    def __init__(self, record: dict[str, object]) -> None:
        self.record = record
        self.sizes = {key: len(orjson.dumps(value)) for key, value in record.items()}
        self.longest = max(self.sizes.values(), default=0)
        self._encoded: dict[str, bytes] = {}

    def cut(self, length: int) -> tuple[dict[str, object], list[str]]:
        """The record with every value over *length* bytes cut; the keys cut."""
        shown: dict[str, object] = {}
        cut = []
        for key, value in self.record.items():
            size = self.sizes[key]
            if size <= length or (key in _WHOLE_KEYS and size <= _WHOLE_BYTES):
                shown[key] = value
                continue
            cut.append(key)
            if key == "exception" and isinstance(value, dict):
                shown[key] = self._exception(value, length)
            else:
                shown[key] = self._start(key, value, length)
        return shown, cut

    def _start(self, key: str, value: object, length: int) -> str:
        encoded = self._encoded.get(key)
        if encoded is None:
            text = value if isinstance(value, str) else orjson.dumps(value).decode()
            encoded = self._encoded[key] = text.encode("utf-8", "replace")
        return encoded[: max(0, length - 2)].decode("utf-8", "ignore")

    @staticmethod
    def _exception(exception: dict[str, object], length: int) -> dict[str, object]:
        share = max(0, length // 3)
        frames = exception.get("frames")
        kept: list[object] = []
        if isinstance(frames, list):  # the innermost frames, where it was raised
            room = share
            for frame in reversed(frames):
                room -= len(orjson.dumps(frame)) + 1
                if room < 0:
                    break
                kept.insert(0, frame)
        return {
            "type": _cut(str(exception.get("type", "")), share),
            "message": _cut(str(exception.get("message", "")), share),
            "frames": kept,
        }


def _fitting(values: _Cuttable, marker: dict[str, object], limit: int) -> bytes | None:
    """The record cut to the longest length that fits in *limit*, or None."""

    def render(length: int) -> bytes:
        shown, cut = values.cut(length)
        return orjson.dumps({**shown, **marker, "truncated_fields": cut})

    low, high = 0, values.longest
    best = render(low)
    if len(best) > limit:
        return None
    while low < high:  # the size grows with the length: bisect it
        middle = (low + high + 1) // 2
        rendered = render(middle)
        if len(rendered) <= limit:
            low, best = middle, rendered
        else:
            high = middle - 1
    return best


def _json_string(line: bytes) -> bytes:
    """*line* as a JSON string literal.

    A JSON line holds no raw control characters, so quoting it needs only
    its quotes and backslashes escaped; anything else goes through orjson.
    """
    if not _CONTROL.search(line) and (line.isascii() or _is_utf8(line)):
        return b'"%b"' % _escape(line)
    return orjson.dumps(line.decode("utf-8", "replace"))


def _escape(text: bytes) -> bytes:
    """*text* with its backslashes and quotes escaped, as in a JSON string."""
    return text.replace(b"\\", b"\\\\").replace(b'"', b'\\"')


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


def _loki_text(value: object, limit: int) -> str:
    """*value* as text Loki takes: UTF-8 (cleaned as the line is), *limit* bytes."""
    text = safe_str(value)
    if text.isascii() and len(text) <= limit:
        return text
    return _cut(clean_text(text), limit)


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


def _shown_forms(*secrets: str) -> tuple[str, ...]:
    """Each secret as text, as its repr and as its bytes' repr show it."""
    forms = {
        form
        for secret in secrets
        if secret
        for form in (
            secret,
            repr(secret)[1:-1],
            repr(secret.encode("utf-8", "backslashreplace"))[2:-1],
        )
    }
    return tuple(sorted(forms, key=len, reverse=True))


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
