from __future__ import annotations

import logging

import pytest

from runtime_logging import (
    ConfigurationError,
    configure_logging,
    get_logger,
    get_service,
)
from runtime_logging.ratelimit import SUMMARY_EVENT, RateLimiter
from runtime_logging.testing import capturing


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class Limited:
    """A limiter on a fake clock, with what it passes and summarises."""

    def __init__(self, **options):
        self.clock = FakeClock()
        self.limiter = RateLimiter(clock=self.clock, **options)
        self.limiter.emit = self.summarise
        self.summaries = []
        self.passed = []

    def summarise(self, fields, level):
        self.summaries.append((fields, level))

    def log(self, event="Cache miss", level=20, logger="app", **fields):
        names = {20: "info", 30: "warning", 40: "error", 50: "critical"}
        record = {"level": names[level], "logger": logger, "event": event, **fields}
        result = self.limiter(record, level)
        if result is not None:
            self.passed.append(result)
        return result


def _starting(sink, prefix):
    return sum(str(found["event"]).startswith(prefix) for found in sink.fields)


def error_with(message):
    return {"exception": {"type": "TimeoutError", "message": message, "frames": []}}


class TestBuckets:
    """Per (logger, event, level), a burst passes, then the rate."""

    def test_over_the_burst_is_suppressed_and_counted(self):
        """10 calls at once with a burst of 3: 3 pass, 7 are counted."""
        limited = Limited(rate=1.0, burst=3)

        for _ in range(10):
            limited.log()

        assert len(limited.passed) == 3
        assert limited.limiter.suppressed == 7
        assert limited.limiter.suppressed_by_level == {"info": 7}
        assert limited.summaries == []

    def test_the_next_event_let_through_follows_a_summary(self):
        """When the key may log again, one summary says how many and how long."""
        limited = Limited(rate=1.0, burst=3)
        for _ in range(10):
            limited.log()
        limited.clock.now += 2.5

        limited.log()

        [(summary, level)] = limited.summaries
        assert level == 20
        assert summary["event"] == SUMMARY_EVENT
        assert summary["suppressed_event"] == "Cache miss"
        assert summary["suppressed"] == 7
        assert summary["suppressed_seconds"] == 2.5
        assert (summary["logger"], summary["level"]) == ("app", "info")
        assert len(limited.passed) == 4

    def test_the_rate_refills_the_bucket(self):
        """At 2 per second, one second later two more pass."""
        limited = Limited(rate=2.0, burst=1)
        limited.log()
        limited.log()
        limited.clock.now += 1.0

        results = [limited.log() for _ in range(3)]

        assert [r is not None for r in results] == [True, False, False]
        limited.clock.now += 1.0
        assert limited.log() is not None

    def test_keys_are_logger_event_and_level(self):
        """Another event, logger or level has its own bucket."""
        limited = Limited(rate=1.0, burst=1)
        limited.log()

        others = [
            limited.log(event="Cache hit"),
            limited.log(logger="other"),
            limited.log(level=30),
            limited.log(),
        ]

        assert [r is not None for r in others] == [True, True, True, False]


class TestErrors:
    """Errors are limited only as repeats of the same error, unless configured."""

    def test_distinct_errors_always_pass(self):
        """Same event, another exception message: never suppressed."""
        limited = Limited(rate=1.0, burst=1)

        for number in range(20):
            limited.log("Download failed", 40, **error_with(f"host {number}"))

        assert len(limited.passed) == 20
        assert limited.limiter.suppressed == 0

    def test_duplicates_of_one_error_collapse(self):
        """The same error in a burst: the burst passes, the rest is summarised."""
        limited = Limited(rate=1.0, burst=2)

        for _ in range(50):
            limited.log("Download failed", 40, **error_with("read timed out"))
        limited.limiter.flush()

        assert len(limited.passed) == 2
        [(summary, level)] = limited.summaries
        assert (summary["suppressed"], level) == (48, 40)
        assert limited.limiter.suppressed_by_level == {"error": 48}

    def test_never_leaves_errors_alone(self):
        """`never`: even exact repeats of an error pass."""
        limited = Limited(rate=1.0, burst=1, errors="never")

        for _ in range(10):
            limited.log("Download failed", 50, **error_with("same"))

        assert len(limited.passed) == 10

    def test_all_limits_errors_like_the_rest(self):
        """`all`: the exception does not make a key of its own."""
        limited = Limited(rate=1.0, burst=1, errors="all")

        for number in range(10):
            limited.log("Download failed", 40, **error_with(str(number)))

        assert len(limited.passed) == 1


class TestSummaries:
    """Every suppressed event is told by exactly one summary."""

    def test_a_long_flood_is_summarised_every_interval(self):
        """While a flood lasts, a summary comes at most every interval."""
        limited = Limited(rate=1.0, burst=1, interval=10.0)

        for _ in range(300):
            limited.log()
            limited.clock.now += 0.1

        counts = [fields["suppressed"] for fields, _ in limited.summaries]
        assert 2 <= len(counts) <= 30
        limited.limiter.flush()
        total = sum(fields["suppressed"] for fields, _ in limited.summaries)
        assert total == limited.limiter.suppressed == 300 - len(limited.passed)

    def test_flush_with_nothing_suppressed_says_nothing(self):
        """No summary without suppressed events."""
        limited = Limited(rate=1.0, burst=5)
        limited.log()

        limited.limiter.flush()

        assert limited.summaries == []

    def test_the_key_table_is_capped(self):
        """Past max_keys the oldest key goes, its summary first."""
        limited = Limited(rate=0.001, burst=1, max_keys=100)

        for number in range(1000):
            limited.log(f"event {number % 400}")
            limited.log(f"event {number % 400}")

        assert len(limited.limiter._buckets) <= 100
        limited.limiter.flush()
        total = sum(fields["suppressed"] for fields, _ in limited.summaries)
        assert total == limited.limiter.suppressed

    def test_idle_keys_are_forgotten(self):
        """A key whose bucket has refilled is dropped at the next sweep."""
        limited = Limited(rate=1.0, burst=1, interval=1.0)
        for number in range(50):
            limited.log(f"event {number}")
        limited.clock.now += 5.0

        limited.log("event 0")

        assert len(limited.limiter._buckets) == 1


class TestInThePipeline:
    """Configured by settings, the limiter sits after redaction."""

    def test_off_by_default(self, capture_events):
        """`rate_limit` 0 means no limiter and no cost."""
        assert get_service().rate_limiter is None

    def test_structlog_and_stdlib_are_limited_and_summarised(self):
        """A flood from both APIs: the burst, then one summary each at flush."""
        with capturing(rate_limit=0.001, rate_limit_burst=5) as sink:
            for number in range(100):
                get_logger("app").info("Cache miss", key=number, token="t0k")
                logging.getLogger("lib").warning("retrying")
            limiter = get_service().rate_limiter
            assert len(sink.find("Cache miss")) == 5
            assert len(sink.find("retrying")) == 5
            sink.assert_not_logged(SUMMARY_EVENT)

        assert limiter.suppressed == 190
        sink.assert_logged(SUMMARY_EVENT, suppressed_event="Cache miss", suppressed=95)
        sink.assert_logged(
            SUMMARY_EVENT, level="warning", suppressed_event="retrying", suppressed=95
        )
        assert b"t0k" not in b"".join(sink.lines)

    def test_keyed_on_the_template_not_the_rendered_text(self):
        """'msg %d' with 100 numbers is one flood, from either API."""
        with capturing(rate_limit=0.001, rate_limit_burst=5) as sink:
            for number in range(100):
                get_logger("app").info("Cache miss for %d", number)
                get_logger("app").info("Fetched %(n)s", {"n": number})
                logging.getLogger("lib").warning("retry %d of %d", number, 100)
                logging.getLogger("lib").error("failed %s", number)
            assert _starting(sink, "Cache miss for") == 5
            assert _starting(sink, "Fetched") == 5
            assert _starting(sink, "retry") == 5
            assert _starting(sink, "failed") == 100

        sink.assert_logged(
            SUMMARY_EVENT, suppressed_event="Cache miss for %d", suppressed=95
        )
        sink.assert_logged(SUMMARY_EVENT, suppressed_event="Fetched %(n)s")
        sink.assert_logged(SUMMARY_EVENT, suppressed_event="retry %d of %d")

    def test_different_templates_are_different_keys(self):
        """Two templates that render alike are still two keys."""
        limited = Limited(rate=0.001, burst=1)

        limited.limiter({"logger": "a", "event": "x 1"}, 20, "x %d")
        passed = limited.limiter({"logger": "a", "event": "x 1"}, 20, "x %s")

        assert passed is not None

    @pytest.mark.parametrize(
        ("setting", "value"),
        [
            ("rate_limit", "-1"),
            ("rate_limit", "fast"),
            ("rate_limit", True),
            ("rate_limit_burst", -2),
            ("rate_limit_errors", "sometimes"),
        ],
    )
    def test_bad_settings_fail_at_configuration(self, setting, value):
        """The message names the setting and the value."""
        with pytest.raises(ConfigurationError, match=f"`{setting}` is {value!r}"):
            configure_logging(env={}, console="off", log_dir="off", **{setting: value})


def test_suppressions_are_counted_in_the_metrics(tmp_path):
    """`log_events_suppressed_total{level}` adds up the summaries."""
    import http.client

    from prometheus_client.parser import text_string_to_metric_families

    service = configure_logging(
        env={},
        console="off",
        log_dir="off",
        handle_signals=False,
        metrics=True,
        metrics_address="127.0.0.1:0",
        rate_limit=0.001,
        rate_limit_burst=3,
    )
    for _ in range(50):
        get_logger("app").warning("Cache unavailable")
    service.flush()
    server = service.sink("metrics").server
    host, port = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request("GET", "/metrics")
    body = connection.getresponse().read().decode()
    connection.close()

    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }
    name = "vscode_runtime_log_events_suppressed_total"
    assert samples[name, (("level", "warning"),)] == 47
    assert samples[name, (("level", "info"),)] == 0


def test_counts_are_exact_across_threads():
    """8 threads on one key: every event passes or is counted, none twice."""
    import threading

    limited = Limited(rate=0.001, burst=10)
    lock = threading.Lock()
    passed = []

    def flood():
        for _ in range(2000):
            result = limited.limiter(
                {"level": "info", "logger": "app", "event": "Cache miss"}, 20
            )
            if result is not None:
                with lock:
                    passed.append(result)

    threads = [threading.Thread(target=flood) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    limited.limiter.flush()

    assert len(passed) == 10
    assert limited.limiter.suppressed == 8 * 2000 - 10
    assert sum(f["suppressed"] for f, _ in limited.summaries) == 8 * 2000 - 10
