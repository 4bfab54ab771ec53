from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from runtime_logging import get_logger


@pytest.fixture
def tracer():
    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider()
    yield provider.get_tracer("tests")
    provider.shutdown()


def hex_ids(span):
    context = span.get_span_context()
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


class TestOpenTelemetry:
    """Inside an OpenTelemetry span, every line carries its ids."""

    def test_structlog_and_stdlib_lines_carry_the_span(self, capture_events, tracer):
        """Both APIs, nested spans: each line has the innermost span's ids."""
        with tracer.start_as_current_span("request") as outer:
            get_logger("app").info("in outer")
            with tracer.start_as_current_span("query") as inner:
                logging.getLogger("db").warning("in inner")
        get_logger("app").info("after")

        outer_line, inner_line, after = capture_events.fields
        assert (outer_line["trace_id"], outer_line["span_id"]) == hex_ids(outer)
        assert (inner_line["trace_id"], inner_line["span_id"]) == hex_ids(inner)
        assert inner_line["trace_id"] == outer_line["trace_id"]
        assert "trace_id" not in after
        assert "span_id" not in after

    def test_the_ids_follow_the_standard_keys(self, capture_events, tracer):
        """`trace_id`, `span_id` come right after `pid`; a field of that name moves."""
        with tracer.start_as_current_span("request"):
            get_logger("app").info("x", trace_id="mine", user="u")

        keys = list(capture_events.fields[0])
        assert keys[keys.index("pid") + 1 :] == [
            "trace_id",
            "span_id",
            "field_trace_id",
            "user",
        ]

    def test_the_formatter_carries_them_too(self, tracer):
        """The dictConfig formatter shares the code, so the keys too."""
        from runtime_logging.formatter import JsonFormatter

        record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", (), None)
        with tracer.start_as_current_span("request") as span:
            line = json.loads(JsonFormatter(env={}).format(record))

        assert (line["trace_id"], line["span_id"]) == hex_ids(span)


class TestSentry:
    """Inside a Sentry transaction or span, every line carries its ids."""

    def test_transaction_and_span(self, capture_events):
        """The ids are the ones Sentry puts on its own events."""
        import sentry_sdk

        with sentry_sdk.start_transaction(name="install", op="task") as transaction:
            get_logger("app").info("in transaction")
            with sentry_sdk.start_span(op="download") as span:
                get_logger("app").info("in span")
        get_logger("app").info("after")

        first, second, after = capture_events.fields
        assert (first["trace_id"], first["span_id"]) == (
            transaction.trace_id,
            transaction.span_id,
        )
        assert (second["trace_id"], second["span_id"]) == (
            transaction.trace_id,
            span.span_id,
        )
        assert "trace_id" not in after


def test_neither_is_imported_by_the_toolkit():
    """Configured and logging, the toolkit loads neither OpenTelemetry nor Sentry."""
    script = (
        "import sys\n"
        "from runtime_logging import configure_logging, get_logger\n"
        "configure_logging(env={}, console='json', log_dir='off',"
        " handle_signals=False)\n"
        "get_logger('app').info('hello')\n"
        "import logging; logging.getLogger('lib').warning('w')\n"
        "print(sorted(m for m in sys.modules"
        " if m.startswith(('opentelemetry', 'sentry_sdk'))), file=sys.stderr)\n"
    )

    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    assert result.stderr.strip().splitlines()[-1] == "[]"
    assert "trace_id" not in result.stdout


class TestSentryEventsJoinTheTrace:
    """The Sentry event of an error names the trace its line names."""

    @pytest.fixture
    def server(self):
        from sentry_server import SentryServer

        server = SentryServer()
        yield server
        server.close()

    @pytest.fixture
    def sentry_logging(self, server):
        from runtime_logging import configure_logging
        from runtime_logging.testing import CaptureSink

        capture = CaptureSink()
        service = configure_logging(
            env={},
            console="off",
            log_dir="off",
            handle_signals=False,
            sentry_dsn=server.dsn,
            traces_sample_rate=1.0,
            profiles_sample_rate=0.0,
            sinks=[capture],
        )
        return service, capture

    def test_inside_a_sentry_transaction(self, sentry_logging, server):
        """The event's trace context is the transaction's, as the line's is."""
        import sentry_sdk

        service, capture = sentry_logging
        with sentry_sdk.start_transaction(name="install") as transaction:
            get_logger("app").error("Install failed")
        service.flush()

        [event] = server.events
        [line] = capture.find("Install failed")
        assert event["contexts"]["trace"]["trace_id"] == transaction.trace_id
        assert event["contexts"]["trace"]["trace_id"] == line["trace_id"]
        assert event["contexts"]["trace"]["span_id"] == line["span_id"]

    def test_inside_an_opentelemetry_span(self, sentry_logging, server, tracer):
        """Without a Sentry span, the OpenTelemetry ids of the line are used."""
        service, capture = sentry_logging
        with tracer.start_as_current_span("request") as span:
            logging.getLogger("lib").error("Download failed")
        service.flush()

        [event] = server.events
        trace_id, span_id = hex_ids(span)
        assert event["contexts"]["trace"]["trace_id"] == trace_id
        assert event["contexts"]["trace"]["span_id"] == span_id
        capture.assert_logged("Download failed", trace_id=trace_id)
