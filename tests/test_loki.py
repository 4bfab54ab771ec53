"""The Loki sink against a local receiver as strict as Loki's push API."""

from __future__ import annotations

import base64
import collections
import contextlib
import gzip
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from loki_server import HungListener, LokiReceiver, closed_port

from runtime_logging import (
    ConfigurationError,
    LogEvent,
    MissingExtraError,
    configure_logging,
)
from runtime_logging.sinks.loki import LokiSink, truncate_line


@pytest.fixture
def loki():
    receiver = LokiReceiver()
    yield receiver
    receiver.stop()


def _configure(url, tmp_path=None, **settings):
    options = {
        "env": {},
        "console": "off",
        "log_dir": "off" if tmp_path is None else str(tmp_path),
        "handle_signals": False,
        "level": "debug",
        "loki_url": url,
        "loki_batch_interval": 0.05,
    }
    options.update(settings)
    return configure_logging(**options)


def _post(url, body, headers):
    request = urllib.request.Request(
        url + "/loki/api/v1/push", data=body, headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _push(url, streams, encoding="gzip", content_type="application/json"):
    body = json.dumps({"streams": streams}).encode()
    headers = {"Content-Type": content_type}
    if encoding == "gzip":
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    return _post(url, body, headers)


def _now(offset=0):
    return str(time.time_ns() + offset)


@contextlib.contextmanager
def _unavailable(target):
    """A port on 127.0.0.1 where a Loki is "hung" or "closed"."""
    if target == "closed":
        with closed_port() as port:
            yield port
        return
    listener = HungListener()
    try:
        yield listener.port
    finally:
        listener.close()


class TestReceiverIsStrict:
    """The receiver refuses what Loki refuses, so passing it means something."""

    def test_valid_push_is_stored(self, loki):
        """A gzip JSON push with string timestamps gets 204 and is stored."""
        status, _ = _push(loki.url, [{"stream": {"a": "b"}, "values": [[_now(), "x"]]}])

        assert (status, loki.lines()) == (204, ["x"])

    @pytest.mark.parametrize(
        ("stream", "reason"),
        [
            ({"stream": {"bad-name": "v"}, "values": []}, "error parsing labels"),
            ({"stream": {}, "values": []}, "at least one label"),
            ({"stream": {"a": 1}, "values": []}, "error parsing labels"),
            ({"stream": {"a": "b"}, "values": [[1, "x"]]}, "nanoseconds"),
            ({"stream": {"a": "b"}, "values": [["1.5", "x"]]}, "nanoseconds"),
            ({"stream": {"a": "b"}, "values": [["1", 2]]}, "not a string"),
            ({"stream": {"a": "b"}, "values": [["1"]]}, "not [ts, line"),
            ({"stream": {"a": "é" * 1025}, "values": []}, "too long"),
            (
                {"stream": {"a": "b"}, "values": [[_now(), "x", {"m": "v" * 65536}]]},
                "structured metadata too large",
            ),
        ],
    )
    def test_malformed_push_is_refused(self, loki, stream, reason):
        """Bad label names, missing labels, numeric timestamps: 400."""
        status, text = _push(loki.url, [stream])

        assert (status, reason in text, loki.entries()) == (400, True, 0)

    def test_protobuf_and_unknown_encodings_are_refused(self, loki):
        """Snappy protobuf is not decoded here (415); br is not Loki's (400)."""
        protobuf = _post(loki.url, b"\x00", {"Content-Type": "application/x-protobuf"})
        brotli = _post(
            loki.url,
            b"{}",
            {"Content-Type": "application/json", "Content-Encoding": "br"},
        )

        assert (protobuf[0], brotli[0]) == (415, 400)

    def test_plain_json_is_accepted(self, loki):
        """Content-Encoding is optional for Loki."""
        stream = {"stream": {"a": "b"}, "values": [[_now(), "x"]]}

        assert _push(loki.url, [stream], encoding="")[0] == 204

    def test_long_and_out_of_order_entries_refused_rest_stored(self, loki):
        """Like Loki: 400 naming refused entries; the valid ones are stored."""
        first, second = _now(0), _now(1000)
        values = [[second, "ok"], [first, "late"], [second, "y" * (256 * 1024 + 1)]]
        status, text = _push(loki.url, [{"stream": {"a": "b"}, "values": values}])

        assert status == 400
        assert "entry out of order" in text
        assert "Max entry size '262144' bytes exceeded" in text
        assert loki.lines() == ["ok"]

    def test_scripted_answers(self, loki):
        """429 with Retry-After, then normal service."""
        loki.answer(429, retry_after="3")
        stream = {"stream": {"a": "b"}, "values": [[_now(), "x"]]}

        assert _push(loki.url, [stream])[0] == 429
        assert _push(loki.url, [stream])[0] == 204


class TestDelivery:
    """What reaches Loki is the file's line, at its record time, in order."""

    def test_lines_equal_the_file_lines(self, loki, tmp_path):
        """Byte for byte the file's line, without its newline, record time as ts."""
        service = _configure(loki.url, tmp_path)
        log = service.get_logger("app")
        for number in range(20):
            log.info("step", number=number)
        service.shutdown()

        file_lines = (tmp_path / "app.log").read_text().splitlines()
        [stream] = loki.streams.values()
        assert [line for _, line, _ in stream] == file_lines
        for ts, line, _ in stream:
            stamp = json.loads(line)["timestamp"]
            assert stamp[20:26] == f"{ts // 1000 % 1_000_000:06d}"
        assert [ts for ts, _, _ in stream] == sorted(ts for ts, _, _ in stream)

    def test_threads_and_small_batches_stay_in_order(self, loki):
        """Four threads, many pushes: Loki's ordering rule refuses nothing."""
        import threading

        service = _configure(loki.url, loki_batch_interval=0.005, loki_batch_bytes=2000)
        log = service.get_logger("threads")

        def work(worker):
            for number in range(300):
                log.info("step", worker=worker, number=number)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        service.shutdown()

        assert {p.status for p in loki.pushes} == {204}
        assert len(loki.pushes) > 10
        assert loki.entries() == 1200
        for worker in range(4):
            numbers = [r["number"] for r in loki.records() if r["worker"] == worker]
            assert numbers == list(range(300))

    def test_late_record_takes_the_streams_last_time(self):
        """A record older than the stream's last pushed entry is not refused."""
        from runtime_logging import LogEvent

        sink = LokiSink("http://127.0.0.1:9")

        def entry(time_ns, text):
            fields = {"level": "info", "service": "s", "event": text}
            return sink.keep(LogEvent(fields, 20, "x", time_ns, None))

        first = json.loads(sink._encode([entry(2000, "b"), entry(1500, "a")]))
        second = json.loads(sink._encode([entry(1000, "late")]))

        assert [v[0] for v in first["streams"][0]["values"]] == ["1500", "2000"]
        assert second["streams"][0]["values"][0][0] == "2000"

    def test_request_headers(self, loki):
        """gzip JSON, tenant header, basic auth."""
        service = _configure(
            loki.url, loki_tenant="team-a", loki_username="u", loki_password="p"
        )
        service.get_logger().info("hello")
        service.shutdown()

        [push] = loki.pushes
        assert push.headers["Content-Encoding"] == "gzip"
        assert push.headers["Content-Type"] == "application/json"
        assert push.headers["X-Scope-OrgID"] == "team-a"
        assert push.headers["Authorization"] == "Basic dTpw"

    def test_bearer_token(self, loki):
        """A token is sent as a bearer authorization."""
        service = _configure(loki.url, loki_token="tok-123")
        service.get_logger().info("hello")
        service.shutdown()

        assert loki.pushes[0].headers["Authorization"] == "Bearer tok-123"

    def test_credentials_in_the_url_sent_as_basic_auth(self, loki):
        """``http://user:password@host`` authenticates like the two settings."""
        url = loki.url.replace("://", "://bob:SECRET%40PW@")
        service = _configure(url)
        service.get_logger().info("hello")
        service.shutdown()

        [push] = loki.pushes
        pair = base64.b64encode(b"bob:SECRET@PW").decode()
        assert push.headers["Authorization"] == f"Basic {pair}"
        assert loki.lines()

    def test_credentials_in_the_url_never_shown(self, capfd, monkeypatch):
        """Not by check, nor in settings, stderr or health: only ********."""
        from runtime_logging._diagnostics import diagnostics
        from runtime_logging.cli import main

        monkeypatch.setattr(diagnostics, "_window_start", {})
        monkeypatch.setattr(diagnostics, "_suppressed", collections.Counter())
        with closed_port() as port:
            url = f"http://bob:SECRETPW@127.0.0.1:{port}"
            main(["check", "--loki-url", url, "--log-dir", "off"])
            service = _configure(url, shutdown_timeout=0.2)
            sink = service.sink("loki")
            service.get_logger().info("hello")
            deadline = time.monotonic() + 10
            while not sink.failures and time.monotonic() < deadline:
                time.sleep(0.01)
            detail = service.health()["loki"].detail
            service.shutdown()

        shown = capfd.readouterr()
        masked = f"http://********@127.0.0.1:{port}"
        assert json.loads(shown.out)["loki_url"] == masked
        assert service.settings.masked()["loki_url"] == masked
        assert f"POST {masked}/loki/api/v1/push failed" in detail
        assert f"POST {masked}/loki/api/v1/push failed" in shown.err
        for text in (shown.out, shown.err, detail, repr(service.health())):
            assert "SECRETPW" not in text
            assert "bob" not in text

    def test_secrets_masked_where_settings_are_printed(self, loki):
        """The settings' printable form hides the password and the token."""
        service = _configure(loki.url, loki_username="u", loki_password="hunter2")

        shown = json.dumps(service.settings.masked())
        assert "hunter2" not in shown
        assert "********" in shown

    def test_unserializable_field_keeps_the_batch(self, loki):
        """A field JSON can't take is rendered by the pipeline; all lines arrive."""

        class Odd:
            def __repr__(self):
                raise RuntimeError("no repr")

        service = _configure(loki.url)
        log = service.get_logger()
        log.info("before")
        log.info("odd", value=Odd(), data=b"\xff", number=float("nan"))
        log.info("after")
        service.shutdown()

        events = [record["event"] for record in loki.records()]
        assert events == ["before", "odd", "after"]
        sink = service.sink("loki")
        assert (sink.delivered, sink.dropped) == (3, 0)

    def test_structured_metadata(self, loki):
        """Configured fields also go as structured metadata, as strings."""
        service = _configure(loki.url, loki_metadata="request_id,attempt")
        service.get_logger().info("got", request_id="r-1", attempt=2)
        service.shutdown()

        [[(_, _, metadata)]] = loki.streams.values()
        assert metadata == {"request_id": "r-1", "attempt": "2"}

    def test_metadata_of_each_event(self, loki):
        """Each entry has its own event's metadata, a value changed in place too."""
        service = _configure(loki.url, loki_metadata="request_id,mirrors")
        log = service.get_logger()
        mirrors = ["eu-1"]

        log.info("first", request_id="r-1", mirrors=mirrors)
        mirrors.append("us-1")
        log.info("second", request_id="r-1", mirrors=mirrors)
        log.info("third", request_id="r-2", mirrors=mirrors)
        service.shutdown()

        entries = {
            json.loads(line)["event"]: metadata
            for stream in loki.streams.values()
            for _, line, metadata in stream
        }
        assert entries == {
            "first": {"request_id": "r-1", "mirrors": "['eu-1']"},
            "second": {"request_id": "r-1", "mirrors": "['eu-1', 'us-1']"},
            "third": {"request_id": "r-2", "mirrors": "['eu-1', 'us-1']"},
        }

    def test_health_counts(self, loki):
        """Health gives delivered, dropped, failures, depth and bytes."""
        service = _configure(loki.url)
        service.get_logger().info("one")
        service.flush()

        health = service.health()["loki"]
        assert (
            health.delivered,
            health.dropped,
            health.failures,
            health.queue_depth,
            health.buffered_bytes,
        ) == (1, 0, 0, 0, 0)

    def test_forked_child_delivers_its_own(self, loki):
        """A forked child restarts the thread and pushes what it logs."""
        service = _configure(loki.url)
        log = service.get_logger()
        log.info("parent")
        service.flush()

        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                log.info("child")
                service.flush(5)
                sink = service.sink("loki")
                code = 0 if (sink.delivered, sink.dropped) == (1, 0) else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)

        assert os.waitstatus_to_exitcode(status) == 0
        assert sorted(r["event"] for r in loki.records()) == ["child", "parent"]
        assert service.sink("loki").delivered == 1


class TestShutdown:
    """Closing never hangs and always settles the counts."""

    def test_shutdown_inside_an_emit_does_not_deadlock(self, loki):
        """SIGTERM's handler may close the sink while its own thread emits."""
        service = _configure(loki.url)
        sink = service.sink("loki")
        service.get_logger().info("queued")

        with sink._lock:  # the main thread, interrupted inside emit()
            service.shutdown(timeout=0.5)

        assert sink.delivered + sink.dropped == 1

    def test_close_reports_what_it_dropped(self, capfd, monkeypatch):
        """Events still buffered at the drain limit are told on stderr."""
        from runtime_logging._diagnostics import diagnostics

        monkeypatch.setattr(diagnostics, "_window_start", {})
        monkeypatch.setattr(diagnostics, "_suppressed", collections.Counter())
        with closed_port() as port:
            service = _configure(f"http://127.0.0.1:{port}", loki_batch_interval=60)
            for number in range(3):
                service.get_logger().info("kept", number=number)
            service.shutdown(timeout=0)

        assert (service.sink("loki").dropped, True) == (
            3,
            "3 events dropped" in capfd.readouterr().err,
        )

    def test_drops_at_exit_told_once(self, capfd, monkeypatch):
        """Loki refusing connections, a push retried, then exit: one drop line."""
        from runtime_logging._diagnostics import diagnostics

        monkeypatch.setattr(diagnostics, "_window_start", {})
        monkeypatch.setattr(diagnostics, "_suppressed", collections.Counter())
        with closed_port() as port:
            service = _configure(f"http://127.0.0.1:{port}", loki_batch_interval=60)
            sink = service.sink("loki")
            for number in range(100):
                service.get_logger().info("kept", number=number)
            service.flush(0)  # the push starts, fails, and waits to retry
            deadline = time.monotonic() + 10
            while not sink.failures and time.monotonic() < deadline:
                time.sleep(0.01)
            service.shutdown(timeout=0.2)

        told = [
            line
            for line in capfd.readouterr().err.splitlines()
            if "events dropped" in line
        ]
        assert len(told) == 1
        assert told[0].startswith(
            "runtime_logging: sink loki: 100 events dropped (unsent when the "
            "shutdown time ran out; last failure: push: POST "
        )
        assert sink.dropped == 100


class TestRetries:
    """429 and 5xx are retried, honouring Retry-After; other 4xx are not."""

    def _sink(self, url, **options):
        options = {"batch_interval": 0.02, "min_backoff": 0.01, **options}
        return LokiSink(url, **options)

    def test_429_and_5xx_retried_until_accepted(self, loki):
        """Two 429s and a 503, then accepted: delivered once, nothing dropped."""
        loki.answer(429)
        loki.answer(429)
        loki.answer(503)
        sink = self._sink(loki.url)
        service = _configure("", sinks=[sink])
        service.get_logger().error("kept")
        service.flush()

        assert [p.status for p in loki.pushes] == [429, 429, 503, 204]
        assert (sink.delivered, sink.dropped, sink.failures) == (1, 0, 3)
        assert loki.lines()[0].count('"kept"') == 1

    def test_retry_after_is_honoured(self, loki):
        """The retry waits at least what Retry-After says."""
        loki.answer(429, retry_after="1")
        sink = self._sink(loki.url)
        service = _configure("", sinks=[sink])
        service.get_logger().info("x")
        service.flush()

        first, second = loki.pushes
        assert second.at - first.at >= 1.0

    @pytest.mark.parametrize(
        "retry_after", ["0", "-5", "Thu, 01 Jan 1970 00:00:00 GMT"]
    )
    def test_retry_after_never_shortens_the_backoff(self, loki, retry_after):
        """A Retry-After of 0, below 0 or in the past still waits the back-off."""
        loki.answer(503, times=2, retry_after=retry_after)
        sink = self._sink(loki.url, min_backoff=0.2)
        service = _configure("", sinks=[sink])
        service.get_logger().info("x")
        service.flush()

        first, second, third = (push.at for push in loki.pushes)
        # The back-off's jitter waits at least half its ceiling: 0.2 s, then 0.4 s.
        assert (second - first >= 0.1, third - second >= 0.2) == (True, True)
        assert (sink.delivered, sink.dropped) == (1, 0)

    @pytest.mark.parametrize("status", [400, 401, 403, 404, 413])
    def test_other_4xx_dropped_without_retry(self, loki, status):
        """One attempt; the batch is counted as dropped and reported."""
        loki.answer(status)
        # No push before flush(): both events go in its one push.
        sink = self._sink(loki.url, batch_interval=60)
        service = _configure("", sinks=[sink])
        log = service.get_logger()
        log.info("a")
        log.info("b")
        service.flush()

        assert len(loki.pushes) == 1
        assert (sink.delivered, sink.dropped, sink.failures) == (0, 2, 1)
        assert sink.health().state == "degraded"

    def test_each_drop_told_once(self, loki, capfd, monkeypatch):
        """A refused push is one line on stderr: its reason and its count."""
        from runtime_logging._diagnostics import diagnostics

        monkeypatch.setattr(diagnostics, "_window_start", {})
        monkeypatch.setattr(diagnostics, "_suppressed", collections.Counter())
        loki.answer(400)
        sink = self._sink(loki.url, batch_interval=60)
        service = _configure("", sinks=[sink])
        for number in range(100):
            service.get_logger().info("refused", number=number)
        service.flush()
        service.shutdown()

        expected = (
            "runtime_logging: sink loki: 100 events dropped (push: Loki answered "
            "400: scripted 400; not retried: 100); 100 in all, 0 queued, 0 bytes"
        )
        assert capfd.readouterr().err.splitlines() == [expected]


class TestTruncationEdges:
    """Whatever the line holds, the stand-in is valid JSON under the limit."""

    def test_stand_in_keeps_the_schema(self, capture_events):
        """A real event's stand-in validates against the line's schema."""
        import jsonschema

        from runtime_logging import get_logger
        from runtime_logging.schema import STANDARD_KEYS

        schema_path = Path(__file__).parent.parent / "runtime_logging"
        schema = json.loads((schema_path / "log-line.schema.json").read_text())

        try:
            raise ValueError("boom " * 100)
        except ValueError:
            get_logger("big").exception("x" * 400_000, extra="y" * 1000)
        line = capture_events.events[0].json_line

        record = json.loads(truncate_line(line.rstrip(b"\n"), 256 * 1024))

        jsonschema.validate(record, schema)
        assert list(record)[: len(STANDARD_KEYS)] == list(STANDARD_KEYS)
        assert record["exception"]["type"] == "ValueError"
        assert record["extra"] == "y" * 1000
        assert record["truncated_fields"] == ["event"]

    def test_huge_standard_keys(self):
        line = json.dumps({"timestamp": "t", "logger": "l" * 5000, "event": "e"})

        short = truncate_line(line.encode(), 1024)

        assert len(short) <= 1024
        assert json.loads(short)["truncated"] is True

    def test_not_json_at_all(self):
        short = truncate_line(b"\xff" * 5000, 1024)

        assert len(short) <= 1024
        assert json.loads(short)["original_bytes"] == 5000


class TestStreamsAndLabels:
    """C15: one stream per level; ids stay in the line; huge lines truncated."""

    def test_one_flush_window(self, loki, tmp_path):
        """INFO, DEBUG, ERROR, 1000 ids and durations, a 600 KB message."""
        service = _configure(
            loki.url,
            tmp_path,
            loki_batch_interval=60,
            loki_batch_bytes="4MB",
        )
        log = service.get_logger("installer")
        for number in range(1000):
            level = ("info", "debug", "error")[number % 3]
            getattr(log, level)(
                "request", request_id=f"req-{number:04d}", duration_ms=number * 1.5
            )
        log.info("huge", payload_note="big")
        huge = "x" * 600_000
        log.info(huge)
        service.flush()

        [push] = loki.pushes
        assert push.status == 204
        assert sorted(s["level"] for s in push.streams) == ["debug", "error", "info"]
        assert all(
            set(labels) == {"service", "environment", "level"}
            for labels in push.streams
        )
        for level in ("info", "debug", "error"):
            for record in loki.records(level=level):
                assert record["level"] == level
        ids = {r["request_id"] for r in loki.records() if "request_id" in r}
        assert len(ids) == 1000
        [truncated] = [r for r in loki.records() if r.get("truncated")]
        longest = max(len(line.encode()) for line in loki.lines())
        assert longest <= 256 * 1024
        assert truncated["event"] == huge[: len(truncated["event"])]
        assert truncated["original_bytes"] > 600_000
        assert loki.entries() == 1002
        sink = service.sink("loki")
        assert (sink.delivered, sink.dropped, sink.truncated) == (1002, 0, 1)
        file_text = (tmp_path / "app.log").read_text()
        assert huge in file_text

    def test_value_loki_cant_take_loses_no_other_entry(self, loki):
        """A lone surrogate in metadata or a label is cleaned as the line is."""
        sink = LokiSink(
            loki.url,
            batch_interval=60,
            labels=("service", "level", "logger"),
            metadata=("installation_id",),
        )
        service = _configure("", sinks=[sink])
        log = service.get_logger("ok")
        log.info("good", installation_id="i-1")
        log.info("bad metadata", installation_id="\ud800x")
        service.get_logger("bad\ud800").info("bad label")
        log.info("good", installation_id="i-2")
        service.flush()

        assert loki.entries() == 4
        assert {labels["logger"] for labels in loki.stream_labels} == {
            "ok",
            "bad\\ud800",
        }
        [(_, _, metadata)] = [
            entry
            for entries in loki.streams.values()
            for entry in entries
            if "bad metadata" in entry[1]
        ]
        assert metadata == {"installation_id": "\\ud800x"}
        assert (sink.delivered, sink.dropped) == (4, 0)

    def test_entry_without_labels_gets_the_fallback_stream(self, loki):
        """The root logger's empty name: Loki refuses a stream without labels."""
        sink = LokiSink(loki.url, batch_interval=60, labels=("logger",))
        service = _configure("", sinks=[sink])
        service.get_logger("app").info("named")
        service.get_logger("").info("root")
        service.flush()

        assert loki.records(service_name="unknown_service")[0]["event"] == "root"
        assert loki.records(logger="app")[0]["event"] == "named"
        assert (sink.delivered, sink.dropped) == (2, 0)

    @pytest.mark.parametrize("char", ["l", "é", "\u20ac"])
    def test_long_label_and_metadata_values_are_cut(self, loki, char):
        """Label values to Loki's 2048 bytes, metadata to its 64KB in all."""
        sink = LokiSink(
            loki.url,
            batch_interval=60,
            labels=("logger",),
            metadata=("note", "blob"),
        )
        service = _configure("", sinks=[sink])
        service.get_logger(char * 3000).info("long", note="n", blob=char * 70_000)
        service.get_logger("app").info("short")
        service.flush()

        [labels, _] = loki.stream_labels
        [(_, _, metadata)] = next(iter(loki.streams.values()))
        assert 2045 <= len(labels["logger"].encode()) <= 2048
        assert labels["logger"] == char * len(labels["logger"])
        assert metadata["note"] == "n"
        assert len(b"noteblobn" + metadata["blob"].encode()) <= 64 * 1024
        assert (sink.delivered, sink.dropped) == (2, 0)

    @pytest.mark.parametrize("label", ["request_id", "duration_ms", "trace_id"])
    def test_high_cardinality_label_fails_at_configuration(self, label):
        """A label outside the bounded set is refused before anything runs."""
        with pytest.raises(ConfigurationError, match=label):
            _configure("http://127.0.0.1:9", loki_labels=f"service,level,{label}")


class TestTruncation:
    """A line over the limit becomes a shorter valid JSON line with a marker."""

    @pytest.mark.parametrize("text", ["a" * 600_000, "é" * 300_000, "\x01" * 300_000])
    def test_truncated_line_is_valid_json_under_the_limit(self, text):
        """ASCII, multi-byte and escaped characters all end under the limit."""
        line = json.dumps(
            {"timestamp": "t", "level": "info", "event": text, "extra": "x" * 10}
        ).encode()

        short = truncate_line(line, 1000)

        record = json.loads(short)
        assert len(short) <= 1000
        assert record["truncated"] is True
        assert record["original_bytes"] == len(line)
        assert record["level"] == "info"
        assert text.startswith(record["event"])
        assert record["extra"] == "x" * 10
        assert record["truncated_fields"] == ["event"]

    def test_only_the_large_field_is_cut(self, loki):
        """A 600 KB field is cut; the event and the other fields arrive whole."""
        import jsonschema

        schema_path = Path(__file__).parent.parent / "runtime_logging"
        schema = json.loads((schema_path / "log-line.schema.json").read_text())
        service = _configure(loki.url, loki_max_line_bytes="64KiB")
        service.get_logger("app").info(
            "huge-field", blob="y" * 600_000, other=1, note="small"
        )
        service.shutdown()

        [line] = loki.lines()
        record = json.loads(line)
        jsonschema.validate(record, schema)
        assert len(line.encode()) <= 64 * 1024
        assert (record["event"], record["other"], record["note"]) == (
            "huge-field",
            1,
            "small",
        )
        assert record["truncated_fields"] == ["blob"]
        assert record["blob"] == "y" * len(record["blob"])
        assert len(record["blob"]) > 60_000

    def test_line_larger_than_the_buffer_is_cut_not_dropped(self, loki):
        """The buffer weighs the stand-in it keeps, not the whole line."""
        sink = LokiSink(
            loki.url,
            batch_interval=60,
            batch_bytes=20_000,
            max_buffer_bytes=50_000,
            max_line_bytes=4096,
        )
        service = _configure("", sinks=[sink])
        log = service.get_logger("app")
        log.info("before")
        log.info("big payload dump", payload="x" * 200_000)
        log.info("after")
        buffered = sink.health().buffered_bytes
        service.flush()

        records = loki.records()
        assert [record["event"] for record in records] == [
            "before",
            "big payload dump",
            "after",
        ]
        assert records[1]["truncated"] is True
        assert records[1]["original_bytes"] > 200_000
        assert max(len(line.encode()) for line in loki.lines()) <= 4096
        assert buffered <= 4096 + 2 * 1000
        assert (sink.delivered, sink.dropped, sink.truncated) == (3, 0, 1)

    def test_the_longest_values_are_cut_first(self):
        """Two large values are cut to one length; the smaller ones stay."""
        record = {
            "timestamp": "2026-01-01T00:00:00.000000Z",
            "level": "info",
            "event": "e",
            "a": "a" * 5000,
            "b": ["b" * 100] * 50,
            "c": "c" * 900,
            "d": {"k": "v"},
        }
        line = json.dumps(record).encode()

        short = json.loads(truncate_line(line, 4000))

        assert short["truncated_fields"] == ["a", "b"]
        assert (short["c"], short["d"], short["event"]) == ("c" * 900, {"k": "v"}, "e")
        assert short["a"] == "a" * len(short["a"])
        assert json.dumps(record["b"], separators=(",", ":")).startswith(short["b"])

    @pytest.mark.parametrize("fields", [0, 5000])
    def test_every_value_huge_at_the_shortest_limit(self, capture_events, fields):
        """At the smallest limit allowed, any line's stand-in keeps the schema."""
        import jsonschema

        from runtime_logging import get_logger
        from runtime_logging.config import LOKI_MIN_LINE_BYTES
        from runtime_logging.schema import STANDARD_KEYS

        schema_path = Path(__file__).parent.parent / "runtime_logging"
        schema = json.loads((schema_path / "log-line.schema.json").read_text())
        many = {f"f{number}": number for number in range(fields)}
        try:
            raise ValueError("m" * 50_000)
        except ValueError:
            get_logger("l" * 50_000).exception("e" * 50_000, big="b" * 50_000, **many)
        line = capture_events.events[0].json_line.rstrip(b"\n")

        short = truncate_line(line, LOKI_MIN_LINE_BYTES)

        record = json.loads(short)
        jsonschema.validate(record, schema)
        assert len(short) <= LOKI_MIN_LINE_BYTES
        assert record["original_bytes"] == len(line)
        others = set(record) - set(STANDARD_KEYS) - {"truncated_fields"}
        others -= {"truncated", "original_bytes", "dropped_fields"}
        if fields:  # the first fields kept, the last counted
            assert record["dropped_fields"] + len(others) == fields + 2
            order = [key for key in json.loads(line) if key not in STANDARD_KEYS]
            assert sorted(others) == sorted(order[: len(others)])
        else:
            assert "dropped_fields" not in record
            assert record["exception"]["type"] == "ValueError"

    def test_a_field_named_like_the_marker_is_kept(self):
        line = json.dumps({"event": "e" * 5000, "truncated": "mine"}).encode()

        record = json.loads(truncate_line(line, 1024))

        assert (record["truncated"], record["field_truncated"]) == (True, "mine")


class TestEntryEncoding:
    """A line becomes a JSON string that decodes back to the same text."""

    @pytest.mark.parametrize(
        "line",
        [
            b'{"event":"say \\"hi\\" \\\\ back"}',
            '{"event":"h\u00e9 \u2603 \U0001f600"}'.encode(),
            b'{"event":"raw\ttab"}',
            b'{"event":"bad \xff byte"}',
        ],
    )
    def test_round_trip(self, line):
        from runtime_logging.sinks.loki import _json_string

        expected = line.decode("utf-8", "replace")

        assert json.loads(_json_string(line)) == expected

    @pytest.mark.parametrize(
        "odd",
        [
            None,
            b'{"event":"raw\ttab"}',
            b'{"event":"bad \xff byte"}',
            b'{"event":"nul \x00 byte"}',
        ],
    )
    def test_batch_round_trip(self, odd):
        """A batch quoted at once or line by line: the same lines, in order."""
        sink = LokiSink("http://127.0.0.1:9")  # never started: nothing is sent
        fields = {"service": "s", "level": "info"}
        lines = [b'{"event":"say \\"hi\\" \\\\ %d"}' % n for n in range(5)]
        lines.append('{"event":"h\u00e9 \u2603 \U0001f600"}'.encode())
        if odd is not None:
            lines.insert(2, odd)
        batch = []
        for number, line in enumerate(lines):
            event = LogEvent(fields, 20, "x", 7 + number, None)
            event._line = line + b"\n"
            batch.append(sink.keep(event))

        [stream] = json.loads(sink._encode(batch))["streams"]

        assert stream["stream"] == {"service": "s", "level": "info"}
        assert [value[1] for value in stream["values"]] == [
            line.decode("utf-8", "replace") for line in lines
        ]
        assert [value[0] for value in stream["values"]] == [
            str(7 + number) for number in range(len(lines))
        ]


class TestConfiguration:
    """Mistakes fail at configure time with the setting and the fix."""

    @pytest.mark.parametrize(
        ("setting", "value", "says"),
        [
            ("loki_max_line_bytes", 100, "1024 or more"),
            ("loki_max_line_bytes", "1000", "1024 or more"),
            ("loki_batch_bytes", 0, "1 or more"),
            ("loki_max_buffer_bytes", 0, "1 or more"),
            ("loki_max_buffer_entries", 0, "1 or more"),
            ("loki_connect_timeout", 0, "above 0"),
            ("loki_read_timeout", "0s", "above 0"),
            ("loki_batch_interval", 0, "above 0"),
            ("loki_labels", "", "without labels"),
            ("loki_labels", "level, service,level", "names level more than once"),
            ("loki_metadata", "request_id,request_id", "more than once"),
        ],
    )
    def test_values_that_fail_at_run_time_refused(self, setting, value, says):
        """Each names the setting, its value and what to set instead."""
        with pytest.raises(ConfigurationError, match=setting) as caught:
            _configure("http://127.0.0.1:9", **{setting: value})

        assert says in str(caught.value)
        assert repr(value) in str(caught.value)

    def test_buffer_smaller_than_one_push_refused(self):
        with pytest.raises(ConfigurationError, match="loki_max_buffer_bytes"):
            _configure(
                "http://127.0.0.1:9",
                loki_max_buffer_bytes="1KB",
                loki_batch_bytes="1MB",
            )

    def test_checked_without_a_url(self):
        """`runtime-logging check` finds them before any Loki is set."""
        from runtime_logging.config import load_settings

        with pytest.raises(ConfigurationError, match="loki_connect_timeout"):
            load_settings(env={}, loki_connect_timeout=0)

    @pytest.mark.parametrize(
        ("url", "settings"),
        [
            ("http://127.0.0.1:9", {"loki_token": "t", "loki_username": "u"}),
            ("http://127.0.0.1:9", {"loki_token": "t", "loki_password": "p"}),
            ("http://u:p@127.0.0.1:9", {"loki_token": "t"}),
            ("http://u:p@127.0.0.1:9", {"loki_username": "u", "loki_password": "p"}),
        ],
    )
    def test_two_kinds_of_authentication_refused(self, url, settings):
        with pytest.raises(ConfigurationError, match="one kind of authentication"):
            _configure(url, **settings)

    @pytest.mark.parametrize(
        ("settings", "named"),
        [
            ({"loki_token": "s3cr3t-token\n"}, "loki_token"),
            ({"loki_token": "s3cr3t token"}, "loki_token"),
            ({"loki_tenant": "team-a\r\n"}, "loki_tenant"),
            ({"loki_tenant": "équipe"}, "loki_tenant"),
            (
                {"loki_username": "u\n", "loki_password": "s3cr3t-pass"},
                "loki_username",
            ),
            (
                {"loki_username": "u", "loki_password": "s3cr3t-pass\n"},
                "loki_password",
            ),
            (
                {"loki_username": "u:v", "loki_password": "s3cr3t-pass"},
                "loki_username",
            ),
            (
                {"loki_username": "admin:s3cr3t-pass", "loki_password": "x"},
                "loki_username",
            ),
        ],
    )
    def test_credential_a_header_cant_carry_refused(self, loki, settings, named):
        """A token file's newline fails at configuration, the secret unshown."""
        with pytest.raises(ConfigurationError) as caught:
            _configure(loki.url, **settings)

        assert f"`{named}`" in str(caught.value)
        assert "s3cr3t" not in str(caught.value)
        assert loki.pushes == []

    @pytest.mark.parametrize(
        "userinfo", ["u:s3cr3t%0Apass", "u%0D:s3cr3t-pass", "u:s3cr3t%00"]
    )
    def test_url_credentials_checked_when_settings_are_read(self, userinfo):
        """`runtime-logging check` refuses them as configure_logging() does."""
        from runtime_logging.config import load_settings

        with pytest.raises(ConfigurationError) as caught:
            load_settings(env={}, loki_url=f"http://{userinfo}@127.0.0.1:9")

        message = str(caught.value)
        assert message.startswith("`loki_url` user-info's ")
        assert "loki_password" not in message
        assert "s3cr3t" not in message

    def test_credential_refused_by_the_sink_itself(self, loki):
        """A sink made in code checks its credentials as the settings do."""
        with pytest.raises(ConfigurationError, match="loki_token") as caught:
            LokiSink(loki.url, token="s3cr3t-token\n")

        assert "s3cr3t" not in str(caught.value)

    @pytest.mark.parametrize(
        "credentials",
        [{"token": "s3cr3t-token"}, {"username": "u", "password": "s3cr3t-pass"}],
    )
    def test_failures_never_show_a_credential(self, loki, capfd, credentials):
        """An answer echoing the Authorization header is shown masked."""
        sink = LokiSink(loki.url, batch_interval=60, **credentials)
        loki.answer(200, text="ok")  # to read the header the sink sends
        service = _configure("", sinks=[sink])
        service.get_logger().info("first")
        service.flush()
        authorization = loki.pushes[0].headers["Authorization"]
        loki.answer(401, text=f"bad credentials: {authorization}")
        service.get_logger().info("refused")
        service.flush()
        detail = sink.health().detail
        service.shutdown()

        assert "401" in detail
        assert authorization.split()[1] not in detail + capfd.readouterr().err
        assert "s3cr3t" not in detail

    def test_failures_never_show_the_urls_credentials(self, loki, capfd):
        """An answer echoing the URL's query token or password is shown masked."""
        url = loki.url.replace("http://", "http://u:s3cr3t%2Fpass@")
        sink = LokiSink(f"{url}/?token=s3cr3t-query", batch_interval=60)
        loki.answer(400, text="no: ?token=s3cr3t-query, s3cr3t%2Fpass, s3cr3t/pass")
        service = _configure("", sinks=[sink])
        service.get_logger().info("refused")
        service.flush()
        detail = sink.health().detail
        service.shutdown()

        assert "400" in detail
        assert "s3cr3t" not in detail + capfd.readouterr().err

    def test_username_without_password_refused(self):
        with pytest.raises(ConfigurationError, match="loki_password"):
            _configure("http://127.0.0.1:9", loki_username="u")

    def test_metadata_names_are_checked(self):
        with pytest.raises(ConfigurationError, match="loki_metadata"):
            _configure("http://127.0.0.1:9", loki_metadata="request-id")

    def test_missing_extra(self, monkeypatch):
        """Without urllib3, the error gives the exact pip line."""
        monkeypatch.setitem(sys.modules, "urllib3", None)
        monkeypatch.delitem(sys.modules, "runtime_logging.sinks.loki")

        with pytest.raises(MissingExtraError) as caught:
            _configure("http://127.0.0.1:9")

        assert "pip install 'runtime-logging[loki]'" in str(caught.value)
        assert "loki_url" in str(caught.value)

    def test_urllib3_not_imported_without_loki(self, tmp_path):
        """A set-up without Loki does not import its extra."""
        import subprocess

        code = (
            "import sys, runtime_logging as r;"
            "r.configure_logging(env={}, console='off', log_dir='off');"
            "print('urllib3' in sys.modules)"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )

        assert result.stdout.strip() == "False"


class TestNeverInTheWay:
    """C13: a hung or dead Loki never blocks the caller; every request times out."""

    def test_threads_start_with_the_set_up(self, loki):
        """The sinks' threads run before the first call, which starts none."""
        service = _configure(
            loki.url, sentry_dsn="http://public@127.0.0.1:9/1", shutdown_timeout=0.5
        )
        names = {thread.name for thread in threading.enumerate()}
        service.get_logger().info("first")
        started = {thread.name for thread in threading.enumerate()} - names
        service.shutdown()

        assert {"runtime_logging-loki", "runtime_logging-sentry"} <= names
        assert not {name for name in started if name.startswith("runtime_logging")}

    def test_receiver_that_reads_and_never_answers(self, loki):
        """An HTTP server that takes the push and hangs: the read times out."""
        loki.hang()
        service = _configure(loki.url, loki_read_timeout=0.2, shutdown_timeout=0.5)
        sink = service.sink("loki")
        for number in range(5):
            service.get_logger().error("failed", number=number)

        deadline = time.monotonic() + 10
        while sink.failures < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        service.shutdown()

        assert sink.failures >= 1
        assert (sink.delivered, sink.dropped) == (0, 5)
        assert len(loki.pushes) == 0

    @pytest.mark.parametrize("target", ["hung", "closed"])
    def test_errors_return_and_counts_close(self, target):
        """1000 log.error calls return; at shutdown all 1000 are accounted for."""
        with _unavailable(target) as port:
            service = _configure(
                f"http://127.0.0.1:{port}",
                loki_connect_timeout=0.2,
                loki_read_timeout=0.2,
                shutdown_timeout=1.0,
            )
            sink = service.sink("loki")
            log = service.get_logger()
            for number in range(1000):
                log.error("failed", number=number)

            # Requests end by their own timeouts: failures pile up, none hangs.
            deadline = time.monotonic() + 10
            while sink.failures < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            service.shutdown()

        assert sink.failures >= 2
        assert (sink.delivered, sink.dropped) == (0, 1000)


RECONFIGURE_SCRIPT = """
import json, os, sys, threading, time
from runtime_logging import configure_logging

def sockets():
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:  # the listing's own descriptor is gone by now
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except FileNotFoundError:
            pass
    return count

before = sockets()
for number in range(30):
    service = configure_logging(
        env={}, console="off", log_dir="off", handle_signals=False,
        loki_url=sys.argv[1], loki_batch_interval=0.01, shutdown_timeout=0.2,
        loki_read_timeout=600,
    )
    service.get_logger().info("sent", number=number)
    service.flush(0.05)  # the push is in flight, unanswered
service.shutdown()
# Only closing the connection ends a thread before its 600 s read timeout;
# the wait is for a busy machine to schedule what is left of each.
threads = [t for t in threading.enumerate() if t.name.startswith("runtime")]
deadline = time.monotonic() + 10
for thread in threads:
    thread.join(max(0, deadline - time.monotonic()))
alive = [thread.name for thread in threads if thread.is_alive()]
print(json.dumps({"threads": alive, "sockets": sockets() - before}))
"""


class TestNothingLeaked:
    """A hung Loki: closing ends the sender thread and its socket at once."""

    def test_thirty_reconfigurations_with_loki_hung(self):
        """No sender thread, no socket left after the last shutdown."""
        with _unavailable("hung") as port:
            result = subprocess.run(
                [sys.executable, "-c", RECONFIGURE_SCRIPT, f"http://127.0.0.1:{port}"],
                capture_output=True,
                text=True,
                check=True,
                timeout=60,
            )

        left = json.loads(result.stdout)
        assert left == {"threads": [], "sockets": 0}

    def test_close_cuts_a_push_waiting_for_its_answer(self, loki):
        """The read timeout is long; close() ends the request, not the timeout."""
        loki.hang()
        service = _configure(loki.url, loki_read_timeout=600, shutdown_timeout=0.5)
        sink = service.sink("loki")
        service.get_logger().info("unanswered")
        service.flush(0.1)
        service.shutdown()
        sink._thread.join(10)  # what is left of it, on a busy machine

        assert not sink._thread.is_alive()
        assert (sink.delivered, sink.dropped) == (0, 1)


class TestBoundedWhileDown:
    """C14: Loki down, a million 10 KB records: bounded, counted, then delivered."""

    def test_million_records_of_10kb(self, loki, monkeypatch, capfd):
        """The buffer stays under its cap, drops are exact, the kept arrive."""
        from runtime_logging._diagnostics import REPORTS_PER_WINDOW, diagnostics
        from runtime_logging.testing import CaptureSink

        monkeypatch.setattr(diagnostics, "_window_start", {})
        monkeypatch.setattr(diagnostics, "_suppressed", collections.Counter())
        loki.go_down()
        cap = 1_000_000
        sink = LokiSink(
            loki.url,
            max_buffer_bytes=cap,
            batch_interval=0.05,
            min_backoff=0.05,
            max_backoff=0.2,
        )
        capture = CaptureSink()
        # Debug level with stdlib captured: anything the sink's thread or
        # urllib3 said through logging would come back as extra events.
        service = _configure("", sinks=[capture, sink], loki_url="")
        log = service.get_logger("bulk")
        payload = "p" * 10_000
        for number in range(200):
            log.info("bulk", payload=payload, number=number)
        # The 10 KB lines are rendered once by the pipeline above and
        # reused: the sink's side of a million records is what is tested.
        events = capture.events[:]
        total = 1_000_000
        rest = total - len(events)
        peak = sink.queued_bytes

        emit = sink.emit
        for number in range(rest):
            emit(events[number % 200])
            if number % 1000 == 0:
                peak = max(peak, sink.health().buffered_bytes)
        kept = sink.queue_depth
        dropped_while_down = sink.dropped
        loki.come_back()
        service.flush(30)
        service.shutdown()

        assert peak <= cap
        sizes = itertools.accumulate(len(e.json_line) for e in events)
        assert kept == sum(1 for size in sizes if size <= cap)
        assert dropped_while_down == total - kept
        assert (sink.delivered, sink.dropped) == (kept, total - kept)
        assert loki.entries() == kept
        assert [r["number"] for r in loki.records()] == list(range(kept))
        assert len(capture.events) == 200
        reports = [
            line
            for line in capfd.readouterr().err.splitlines()
            if line.startswith("runtime_logging: sink loki")
        ]
        assert any("events dropped" in line for line in reports)
        assert len(reports) <= REPORTS_PER_WINDOW
        assert sink.failures >= 1


EXIT_SCRIPT = """
import os, sys, time
from runtime_logging import configure_logging

how, url, drain = sys.argv[1], sys.argv[2], float(sys.argv[3])
service = configure_logging(
    env={}, console="off", log_dir="off", loki_url=url, shutdown_timeout=drain,
    loki_batch_interval=30, loki_connect_timeout=5, loki_read_timeout=5,
)
log = service.get_logger("c12")
for number in range(500):
    log.info("line", number=number)
try:
    raise ValueError("boom")
except ValueError:
    log.exception("failed")
print(time.monotonic(), flush=True)
if how == "exit":
    sys.exit(1)
if how == "sigterm":
    time.sleep(60)
"""


class TestNothingLostAtExit:
    """C12: what is queued reaches Loki at exit, or exit waits only the drain."""

    DRAIN = 1.0

    def _run(self, how, url):
        process = subprocess.Popen(
            [sys.executable, "-c", EXIT_SCRIPT, how, url, str(self.DRAIN)],
            stdout=subprocess.PIPE,
            text=True,
        )
        started = float(process.stdout.readline())
        if how == "sigterm":
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
        code = process.wait(30)
        process.stdout.close()
        return code, time.monotonic() - started

    @pytest.mark.parametrize(
        ("how", "expected_code"), [("return", 0), ("exit", 1), ("sigterm", -15)]
    )
    def test_all_501_delivered(self, loki, how, expected_code):
        """500 lines and the error arrive, whichever way the process ends."""
        code, _ = self._run(how, loki.url)

        assert code == expected_code
        assert loki.entries() == 501
        assert len(loki.records(level="error")) == 1

    @pytest.mark.parametrize("how", ["return", "exit", "sigterm"])
    @pytest.mark.parametrize("target", ["closed", "hung"])
    def test_exit_within_drain_when_loki_is_down(self, how, target):
        """A dead or hung Loki holds the exit for the drain time at most (+1 s)."""
        with _unavailable(target) as port:
            _, took = self._run(how, f"http://127.0.0.1:{port}")

        assert took <= self.DRAIN + 1.0


class TestUrlWithQuery:
    @pytest.mark.parametrize("path", ["", "/", "/loki/api/v1/push"])
    def test_push_path_goes_before_the_query(self, loki, path):
        """A query in loki_url (a proxy's token) stays the query of each push."""
        service = _configure(f"{loki.url}{path}?token=s3cr3t")
        service.get_logger("t").info("with query")
        service.shutdown(5)

        assert [r["event"] for r in loki.records()] == ["with query"]
        assert {push.query for push in loki.pushes} == {"token=s3cr3t"}
        assert "s3cr3t" not in service.sink("loki").url


def test_a_line_from_before_a_reconfiguration_is_not_refused(loki):
    """The next set-up's sink goes on from the last times the old one pushed."""
    _configure(loki.url).get_logger("app").info("pushed first")
    service = _configure(loki.url)  # the same Loki: the old sink drained
    service.get_logger("app").info("then this")
    older = time.time_ns() - 10**9  # logged just before the change, say
    # The stream of the lines above: the same labels.
    settings = service.settings
    fields = {
        "level": "info",
        "event": "logged before the change",
        "service": settings.service,
        "environment": settings.environment,
    }
    service.sink("loki").emit(LogEvent(fields, 20, "app", older, None))
    service.flush()

    events = [record["event"] for record in loki.records()]
    assert sorted(events) == ["logged before the change", "pushed first", "then this"]
    assert service.sink("loki").health().dropped == 0
