"""The demo: the reference workload on real HTTP, and what it leaves in the file."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import jsonschema
import pytest

from runtime_logging.demo import run_demo
from runtime_logging.demo._cache import ModuleCache
from runtime_logging.demo._resilience import (
    CircuitBreaker,
    CircuitOpenError,
    DemoClock,
    RateLimiter,
    RateLimitRejectedError,
)
from runtime_logging.demo._server import FaultPlan
from runtime_logging.errors import ConfigurationError
from runtime_logging.schema import STANDARD_KEYS, field_key

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "runtime_logging" / "log-line.schema.json").read_text())
# One validator for every line: `jsonschema.validate` checks the schema itself
# again on each call.
VALIDATOR = jsonschema.validators.validator_for(SCHEMA)(SCHEMA)
LEVEL_WORDS = re.compile(r"\b(debug|info|warning|error|critical)\b")


def _documented_events():
    """The README's table "The demo's events": name, logger, levels, fields."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### The demo's events", 1)[1]
    events = {}
    for row in re.findall(r"^\| `([^`]+)` \|(.*)$", section, flags=re.MULTILINE):
        name, rest = row
        logger, levels, fields = (cell.strip() for cell in rest.split("|")[:3])
        allowed = {}
        previous = None
        for part in re.split(r",\s*(?![^()]*\))", fields):
            match = re.match(r"(\w+)(?: \((.*)\))?", part.strip())
            field, note = match.group(1), match.group(2) or ""
            values = re.findall(r'"([^"]+)"', note)
            if note == "same":
                values = previous
            allowed[field] = set(values) if values else None
            previous = values
        events[name] = (logger, set(LEVEL_WORDS.findall(levels)), allowed)
    return events


class DemoRun:
    """One run of the demo in a temporary directory, and its file read back."""

    def __init__(self, root: Path, **settings):
        self.tmp = root / "tmp"
        self.tmp.mkdir()
        options = {
            "installations": 6,
            "env": {},
            "log_dir": str(root / "logs"),
            "console": "off",
            "handle_signals": False,
        }
        options.update(settings)
        # The demo's scratch directory goes here, to check that it is removed.
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(tempfile, "tempdir", str(self.tmp))
            self.summary = run_demo(**options)
        self.path = root / "logs" / "app.log"
        self.lines = [json.loads(line) for line in self.path.read_text().splitlines()]

    def named(self, event):
        return [line for line in self.lines if line["event"] == event]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return DemoRun(tmp_path_factory.mktemp("demo"))


class TestTheFile:
    def test_every_line_is_valid_in_the_schema(self, demo):
        """Every line is a JSON object valid in schema 1.0, standard keys first."""
        for line in demo.lines:
            VALIDATOR.validate(line)
            assert list(line)[: len(STANDARD_KEYS)] == list(STANDARD_KEYS)

    def test_records_of_the_toolkit_and_of_urllib3(self, demo):
        """The installer's structlog events and urllib3's stdlib records share it."""
        loggers = Counter(line["logger"] for line in demo.lines)

        assert loggers["vscode_runtime.installer"] == 2 * 6
        urllib3 = [line for line in demo.lines if line["logger"].startswith("urllib3")]
        assert any(
            line["event"].startswith("Starting new HTTP connection")
            and line["level"] == "debug"
            for line in urllib3
        )
        assert {line["service"] for line in urllib3} == {"vscode_runtime"}

    def test_exceptions_from_both_apis_are_structured(self, demo):
        """Failures carry real exceptions: from structlog, and from stdlib logging."""
        failed_download = next(
            line for line in demo.named("Download finished") if "exception" in line
        )
        cache_full = demo.named("Cache write failed")[0]

        assert failed_download["level"] == "error"
        assert failed_download["exception"]["frames"]
        assert cache_full["exception"]["type"] == "OSError"
        assert "No space left on device" in cache_full["exception"]["message"]
        assert cache_full["exception"]["frames"][-1]["function"] == "_check_quota"
        failed = next(
            line
            for line in demo.named("Installation finished")
            if line["status"] == "failure"
        )
        assert failed["exception"]["cause"]["frames"]

    @pytest.mark.parametrize("event", sorted(_documented_events()))
    def test_every_documented_event_appears_with_its_fields(self, demo, event):
        """Each event of the README's table is logged by its logger with its fields."""
        logger, levels, fields = _documented_events()[event]

        lines = demo.named(event)

        assert lines, f"{event!r} was never logged"
        assert {line["logger"] for line in lines} == {logger}
        assert {line["level"] for line in lines} <= levels
        for line in lines:
            for name, allowed in fields.items():
                key = field_key(name)
                if name == "statusCode" and line.get("status") == "failure":
                    continue  # only "when a response came"
                assert key in line, f"{event!r} lacks {name!r}: {line}"
                if allowed is not None:
                    assert line[key] in allowed, (event, name, line[key])

    def test_the_documented_table_is_read(self):
        """The table parses into the events and allowed values the tests check."""
        events = _documented_events()

        assert len(events) == 14
        logger, levels, fields = events["Installation finished"]
        assert logger == "vscode_runtime.installer"
        assert levels == {"info", "error"}
        assert fields["status"] == {"success", "failure", "cancelled"}
        assert events["Circuit breaker state changed"][2]["to"] == {
            "closed",
            "open",
            "half_open",
        }

    def test_statuses_and_faults(self, demo):
        """The run meets every kind of fault and ends in every status."""
        statuses = Counter(
            line["status"] for line in demo.named("Installation finished")
        )
        kinds = {line["errorKind"] for line in demo.named("Network error")}
        changes = {
            (line["from"], line["to"])
            for line in demo.named("Circuit breaker state changed")
        }

        assert set(statuses) == {"success", "failure", "cancelled"}
        assert kinds == {"timeout", "connection", "5xx"}
        assert {("closed", "open"), ("open", "half_open")} <= changes
        assert demo.named("Checksum mismatch")[0]["errorType"] == "domain"
        assert set(demo.summary.faults) == {"timeout", "reset", "5xx", "corrupt"}

    def test_nothing_is_left_but_the_log(self, demo):
        """The cache and the installed modules are removed at the end."""
        assert list(demo.tmp.iterdir()) == []


class TestSummary:
    def test_counts_equal_the_file(self, demo):
        """Every count of the summary is what the file holds."""
        summary = demo.summary
        finished = demo.named("Installation finished")
        lookups = Counter(line["result"] for line in demo.named("Cache lookup"))
        errors = Counter(
            line["level"]
            for line in demo.lines
            if line["level"] in {"warning", "error", "critical"}
        )

        assert summary.lines_written == len(demo.lines)
        assert summary.installations == Counter(line["status"] for line in finished)
        assert summary.downloads == Counter(
            line["status"] for line in demo.named("Download finished")
        )
        assert (summary.cache_hits, summary.cache_misses) == (
            lookups["hit"],
            lookups["miss"],
        )
        assert summary.errors == errors
        assert summary.urllib3_lines == sum(
            line["logger"].startswith("urllib3") for line in demo.lines
        )
        assert summary.log_file == demo.path

    def test_render_names_each_count(self, demo):
        """The printed summary shows the counts a person looks for."""
        text = demo.summary.render()

        assert f"{demo.summary.installations['success']} success" in text
        assert f"{demo.summary.cache_hits} hits" in text
        assert f"lines written: {len(demo.lines)}" in text


@pytest.fixture(scope="module")
def metrics_demo(tmp_path_factory):
    """A second run like `demo`'s, with the metrics sink too."""
    from runtime_logging.config import load_settings
    from runtime_logging.metrics import MetricsSink

    tmp_path = tmp_path_factory.mktemp("metrics-demo")
    settings = load_settings(
        None, {}, metrics=True, metrics_address="off", log_dir=str(tmp_path)
    )
    sink = MetricsSink(settings)
    return DemoRun(tmp_path, sinks=[sink]), sink


def _counts(run):
    """What a run did, as counts a repeated run must reproduce."""
    summary = dataclasses.asdict(run.summary)
    del summary["log_file"], summary["seconds"]
    events = Counter(
        (line["logger"], line["event"], line["level"])
        for line in run.lines
        if not line["logger"].startswith("urllib3")
    )
    statuses = [line["status"] for line in run.named("Installation finished")]
    changes = [
        (line["circuit"], line["from"], line["to"])
        for line in run.named("Circuit breaker state changed")
    ]
    return summary, events, statuses, changes


class TestRepeatable:
    def test_one_seed_makes_the_same_counts(self, demo, metrics_demo):
        """Two runs with one seed count the same events, statuses and transitions."""
        again, _ = metrics_demo

        assert _counts(again) == _counts(demo)


class TestMetrics:
    def test_the_reference_rules_count_what_the_summary_counts(self, metrics_demo):
        """The demo's events through the reference rules give the summary's numbers."""
        run, sink = metrics_demo
        values = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in sink.collect()
            for sample in family.samples
        }

        def metric(name, **labels):
            return values.get((f"vscode_runtime_{name}", tuple(sorted(labels.items()))))

        summary = run.summary
        for status, count in summary.installations.items():
            assert metric("installations_total", status=status) == count
        for status, count in summary.downloads.items():
            assert metric("downloads_total", status=status) == count
        assert metric("cache_hits_total") == summary.cache_hits
        assert metric("cache_misses_total") == summary.cache_misses
        requests = Counter(
            line["field_service"] for line in run.named("Network request")
        )
        for service, count in requests.items():
            assert metric("network_requests_total", service=service) == count
        assert metric("rate_limiter_rejected_requests_total") == len(
            run.named("Rate limit rejected")
        )
        assert (
            metric(
                "circuit_breaker_transitions_total",
                circuit="download",
                to="open",
                **{"from": "closed"},
            )
            >= 1
        )
        assert metric("errors_total", type="domain") >= 1


class TestSettings:
    def test_settings_pass_through_and_level_is_respected(self, tmp_path):
        """Settings reach the pipeline; RUNTIME_LOGGING_LEVEL beats the demo's level."""
        run = DemoRun(
            tmp_path,
            installations=2,
            env={"RUNTIME_LOGGING_LEVEL": "info"},
            service="installer-test",
        )

        assert {line["service"] for line in run.lines} == {"installer-test"}
        assert "debug" not in {line["level"] for line in run.lines}
        assert (run.summary.cache_hits, run.summary.cache_misses) == (0, 0)
        assert run.summary.lines_written == len(run.lines)

    @pytest.mark.parametrize(
        ("options", "message"),
        [
            ({"installations": 0}, "`installations` is 0"),
            ({"capture_stdlib": False}, "`capture_stdlib` is False"),
            ({"level": "loud"}, "`level` is 'loud'"),
        ],
    )
    def test_bad_settings_fail_before_anything_runs(self, tmp_path, options, message):
        """A bad setting is a ConfigurationError naming it; no file is written."""
        with pytest.raises(ConfigurationError, match=re.escape(message)):
            run_demo(env={}, log_dir=str(tmp_path / "logs"), console="off", **options)

        assert not (tmp_path / "logs").exists()


class TestCommand:
    def test_make_demo_command(self, tmp_path):
        """`runtime-logging demo --log-dir logs` prints the summary, leaves the log."""
        result = subprocess.run(
            [sys.executable, "-m", "runtime_logging", "demo", "--log-dir", "logs"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={
                **{k: v for k, v in os.environ.items() if "RUNTIME_LOGGING" not in k},
                "NO_COLOR": "1",
            },
        )

        assert result.returncode == 0, result.stderr
        lines = (tmp_path / "logs" / "app.log").read_text().splitlines()
        assert f"lines written: {len(lines)} to logs/app.log" in result.stdout
        counts = re.search(
            r"installations: (\d+) success, (\d+) failure, (\d+) cancelled",
            result.stdout,
        )
        assert sum(map(int, counts.groups())) == 12
        # The console shows info and up; the file has the debug lines too.
        assert " INFO " in result.stderr
        assert " DEBUG " not in result.stderr
        assert any(json.loads(line)["level"] == "debug" for line in lines)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["logs"]


class FakeClock:
    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now


class TestCircuitBreaker:
    def test_opens_after_the_threshold_and_fails_fast(self, capture_events):
        """Three failures in a row open the circuit; requests then fail at once."""
        breaker = CircuitBreaker("download", clock=FakeClock())

        for _ in range(3):
            breaker.before_request()
            breaker.record_failure()

        assert breaker.state == "open"
        with pytest.raises(CircuitOpenError, match="circuit is open"):
            breaker.before_request()
        assert (
            len(capture_events.find("Circuit breaker failure", circuit="download")) == 3
        )
        capture_events.assert_logged(
            "Circuit breaker state changed",
            "warning",
            circuit="download",
            **{"from": "closed", "to": "open"},
        )

    def test_one_trial_after_the_reset_time_closes_it(self, capture_events):
        """After the reset time one trial passes; its success closes the circuit."""
        clock = FakeClock()
        breaker = CircuitBreaker("manifest", failure_threshold=1, clock=clock)
        breaker.record_failure()
        clock.now += breaker.reset_seconds

        breaker.before_request()
        with pytest.raises(CircuitOpenError) as second:
            breaker.before_request()
        breaker.record_success()

        assert second.value.trial_in_flight
        assert breaker.state == "closed"
        changes = [
            (f["from"], f["to"], f["level"])
            for f in capture_events.find("Circuit breaker state changed")
        ]
        assert changes == [
            ("closed", "open", "warning"),
            ("open", "half_open", "info"),
            ("half_open", "closed", "info"),
        ]

    def test_a_failed_trial_opens_it_again(self):
        """A failure while half open opens the circuit for another reset time."""
        clock = FakeClock()
        breaker = CircuitBreaker("download", failure_threshold=1, clock=clock)
        breaker.record_failure()
        clock.now += breaker.reset_seconds
        breaker.before_request()

        breaker.record_failure()

        assert breaker.state == "open"
        assert breaker.retry_after() == pytest.approx(breaker.reset_seconds)

    def test_on_the_demos_clock_only_waits_pass_the_reset_time(self):
        """On the demo's clock the circuit stays open until the demo has waited."""
        clock = DemoClock()
        breaker = CircuitBreaker("download", failure_threshold=1, clock=clock)
        breaker.record_failure()
        opened = clock()

        clock.sleep(0.01)
        with pytest.raises(CircuitOpenError, match="circuit is open"):
            breaker.before_request()
        clock.sleep(breaker.retry_after())
        breaker.before_request()

        assert clock() == opened + breaker.reset_seconds
        assert breaker.state == "half_open"


class TestRateLimiter:
    def test_rejects_past_the_queue_and_reports_its_state(self, capture_events):
        """Reservations past active plus queued are rejected, and logged."""
        limiter = RateLimiter(max_active=1, max_queued=1)
        limiter.reserve("download")
        limiter.reserve("download")

        with pytest.raises(RateLimitRejectedError):
            limiter.reserve("download")
        with limiter.active():
            inside = (limiter.queued, limiter.active_count)

        assert inside == (1, 1)
        capture_events.assert_logged(
            "Rate limit rejected", "warning", field_service="download"
        )
        states = [
            (f["queued"], f["active"])
            for f in capture_events.find("Rate limiter state")
        ]
        assert states == [(1, 0), (2, 0), (1, 1), (1, 0)]


class TestModuleCache:
    def test_miss_then_hit_then_expired(self, tmp_path, capture_events):
        """A stored entry hits until it expires; the state counts both kinds."""
        clock = FakeClock()
        cache = ModuleCache(tmp_path, quota_bytes=10_000, clock=clock)
        data = b"archive bytes"
        sha = hashlib.sha256(data).hexdigest()

        missed = cache.get("jupyter", sha)
        cache.put("jupyter", sha, data, max_age=60)
        hit = cache.get("jupyter", sha)
        clock.now += 61
        expired = cache.get("jupyter", sha)
        cache.log_state()

        assert (missed, hit, expired) == (None, data, None)
        results = [f["result"] for f in capture_events.find("Cache lookup")]
        assert results == ["miss", "hit", "miss"]
        capture_events.assert_logged(
            "Cache state", validEntries=0, expiredEntries=1, sizeBytes=len(data)
        )

    def test_a_full_cache_fails_like_a_full_disk(self, tmp_path, capture_events):
        """Past the quota a write raises ENOSPC, is logged, and leaves no part file."""
        cache = ModuleCache(tmp_path, quota_bytes=40_000)
        data = bytes(50_000)
        sha = hashlib.sha256(data).hexdigest()

        stored = cache.put("docker", sha, data, max_age=60)

        assert not stored
        failure = capture_events.assert_logged(
            "Cache write failed", "error", module="docker"
        )
        assert failure["path"].endswith(f"docker/{sha}.tar.gz")
        assert failure["exception"]["type"] == "OSError"
        assert "[Errno 28]" in failure["exception"]["message"]
        assert list((tmp_path / "docker").iterdir()) == []

    def test_a_damaged_entry_is_a_miss(self, tmp_path):
        """An entry whose bytes changed on disk is not served."""
        cache = ModuleCache(tmp_path, quota_bytes=10_000)
        data = b"archive bytes"
        sha = hashlib.sha256(data).hexdigest()
        cache.put("eslint", sha, data, max_age=60)
        (tmp_path / "eslint" / f"{sha}.tar.gz").write_bytes(b"archive bytez")

        assert cache.get("eslint", sha) is None


class TestFaultPlan:
    def test_the_seed_decides_the_faults(self):
        """Two plans with one seed meet a file's requests with the same faults."""
        first, second = FaultPlan(seed=3), FaultPlan(seed=3)

        faults = [first.next_fault("download", "docker") for _ in range(200)]

        assert faults == [second.next_fault("download", "docker") for _ in range(200)]
        assert {"timeout", "reset", "5xx", "corrupt"} <= set(faults)

    def test_which_request_arrives_first_changes_nothing(self):
        """Each file meets the same faults whichever of two requests comes first."""
        names = ["pylance", "copilot-nightly"] * 100
        first, second = FaultPlan(seed=3), FaultPlan(seed=3)

        one = [(name, first.next_fault("download", name)) for name in names]
        other = [(name, second.next_fault("download", name)) for name in names[::-1]]

        assert sorted(one, key=lambda pair: pair[0]) == sorted(
            other, key=lambda pair: pair[0]
        )
        assert one[0] == ("pylance", "timeout")

    def test_an_outage_answers_5xx_then_ends(self):
        """During an outage every request gets a 5xx; after it, the plan goes on."""
        plan = FaultPlan(seed=3, rate=0.0)
        plan.next_fault("manifest", "manifest")
        plan.start_outage("manifest", requests=3)

        faults = [plan.next_fault("manifest", "manifest") for _ in range(4)]

        assert faults == ["5xx", "5xx", "5xx", None]
