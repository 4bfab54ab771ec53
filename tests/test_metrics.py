"""Metrics from events: classification, rules, exposition, workers, stats."""

from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from wsgiref.util import setup_testing_defaults

import pytest
from prometheus_client.parser import text_string_to_metric_families

from runtime_logging import ConfigurationError, configure_logging
from runtime_logging.cli import main
from runtime_logging.config import load_settings
from runtime_logging.metrics import (
    ErrorClassifier,
    load_rules,
    mark_process_dead,
    wsgi_app,
)
from runtime_logging.sinks import DOWN, Sink, SinkHealth
from runtime_logging.sinks.file import log_files

PREFIX = "vscode_runtime_"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"

#: Every family of the reference deployment the reference rules must yield.
REFERENCE_FAMILIES = {
    "installations_total",
    "installations_active",
    "installation_duration_seconds",
    "installation_modules_total",
    "downloads_total",
    "download_size_bytes",
    "download_duration_seconds",
    "cache_hits_total",
    "cache_misses_total",
    "cache_entries",
    "cache_size_bytes",
    "network_requests_total",
    "network_request_duration_seconds",
    "network_errors_total",
    "network_retries_total",
    "circuit_breaker_state",
    "circuit_breaker_transitions_total",
    "circuit_breaker_failures_total",
    "rate_limiter_queued_requests",
    "rate_limiter_active_requests",
    "rate_limiter_rejected_requests_total",
}


def configure(tmp_path, **settings):
    options = {
        "env": {},
        "console": "off",
        "log_dir": str(tmp_path / "logs"),
        "handle_signals": False,
        "level": "debug",
        "metrics": True,
        "metrics_address": "127.0.0.1:0",
    }
    options.update(settings)
    return configure_logging(**options)


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def scrape(service):
    """The exposition of *service* as {(sample name, sorted labels): value}."""
    status, body = get(service.sink("metrics").server.url + "/metrics")
    assert status == 200
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def value(samples, name, **labels):
    return samples[PREFIX + name, tuple(sorted(labels.items()))]


def error(fields_level="error", **fields):
    return {"level": fields_level, "logger": "app", "event": "x", **fields}


def exception(kind, cause=None):
    data = {"type": kind, "message": "", "frames": []}
    if cause is not None:
        data["cause"] = cause
    return data


class TestClassification:
    def test_explicit_field_wins_over_the_exception(self):
        """An errorType field decides, whatever exception the event carries."""
        classify = ErrorClassifier().classify

        found = classify(error(errorType="domain", exception=exception("OSError")))

        assert found == ("domain", "error")

    def test_os_and_network_errors_are_infrastructure(self):
        """OS errors and the HTTP clients' errors are infrastructure by default."""
        classify = ErrorClassifier().classify
        names = [
            "OSError",
            "ConnectionRefusedError",
            "TimeoutError",
            "socket.gaierror",
            "urllib3.exceptions.ReadTimeoutError",
            "http.client.RemoteDisconnected",
        ]

        found = {name: classify(error(exception=exception(name))) for name in names}

        assert found == dict.fromkeys(names, ("infrastructure", "error"))

    def test_a_cause_decides_when_the_outer_exception_does_not(self):
        """A wrapper raised from a network error is infrastructure."""
        wrapped = exception(
            "app.DownloadFailed", cause=exception("ConnectionResetError")
        )

        found = ErrorClassifier().classify(error(exception=wrapped))

        assert found == ("infrastructure", "error")

    def test_value_errors_are_application_unless_configured_domain(self):
        """Domain errors are only those configured as such."""
        fields = error(exception=exception("ValueError"))

        default = ErrorClassifier().classify(fields)
        configured = ErrorClassifier(domain=["ValueError"]).classify(fields)

        assert (default, configured) == (
            ("application", "error"),
            ("domain", "error"),
        )

    def test_logger_prefix_then_application(self):
        """Without a field or exception, the longest logger prefix decides."""
        classifier = ErrorClassifier(
            loggers={"vscode_runtime.network": "infrastructure"}
        )

        network = classifier.classify(error(logger="vscode_runtime.network.pool"))
        other = classifier.classify(error(logger="vscode_runtime.installer"))

        assert (network, other) == (
            ("infrastructure", "error"),
            ("application", "error"),
        )

    def test_severity_from_the_level_and_info_is_no_error(self):
        """warning, error and critical (fatal) count; info does not."""
        classify = ErrorClassifier().classify

        found = [classify(error(level)) for level in ("info", "warning", "critical")]

        assert found == [None, ("application", "warning"), ("application", "fatal")]

    def test_a_repeated_exception_is_not_counted_again(self):
        """A line marked repeated is the same exception as an earlier line."""
        repeated = {**exception("OSError"), "repeated": True}

        assert ErrorClassifier().classify(error(exception=repeated)) is None

    def test_an_unknown_type_in_the_logger_map_is_refused(self):
        """A logger mapped to a type that does not exist is a configuration error."""
        with pytest.raises(ConfigurationError, match="'network'"):
            ErrorClassifier(loggers={"app": "network"})


class TestRules:
    def test_reference_rules_yield_every_reference_family(self):
        """The shipped rules define every application and infrastructure family."""
        rules = load_rules("reference", PREFIX)

        names = {family.name.removeprefix(PREFIX) for family in rules.families}

        assert names >= REFERENCE_FAMILIES

    def test_a_label_without_allowed_values_is_refused(self):
        """A label from a free field (an id) fails at configuration time."""
        table = {
            "rules": [
                {
                    "event": "Installation finished",
                    "metric": "installs_total",
                    "type": "counter",
                    "labels": {"id": {"field": "installationId"}},
                }
            ]
        }

        with pytest.raises(ConfigurationError, match="without a bounded set"):
            load_rules(table, PREFIX)

    @pytest.mark.parametrize(
        ("rule", "message"),
        [
            ({"type": "counter", "metric": "installs"}, "ending in '_total'"),
            ({"type": "timer", "metric": "x"}, "`type`"),
            ({"type": "gauge", "metric": "x", "action": "set"}, "`value`"),
            (
                {"type": "histogram", "metric": "x", "value": "d", "buckets": [2, 1]},
                "rising",
            ),
            ({"type": "counter", "metric": "x_total", "labels": {"s": "*"}}, None),
            ({"type": "counter", "metric": "x_total", "colour": 1}, "colour"),
            ({"type": "counter", "metric": "bad name_total"}, "metric name"),
        ],
    )
    def test_malformed_rules_are_refused(self, rule, message):
        """Each malformed rule names what is wrong."""
        table = {"rules": [{"event": "e", **rule}]}

        if message is None:
            # A constant label is fine: it is one value.
            load_rules(table, PREFIX)
            return
        with pytest.raises(ConfigurationError, match=message):
            load_rules(table, PREFIX)

    @pytest.mark.parametrize(
        ("rule", "message"),
        [
            ({"amount": -1}, r"rule 1 `amount` is -1; .* never decreases"),
            ({"amount": -0.5}, r"`amount` is -0\.5; .* use `type = \"gauge\"`"),
            ({"value": "n", "value_map": {"a": -1}}, r"`value_map` .* never"),
            ({"action": "dec"}, r"rule 1 `action` is 'dec'; .* never decreases"),
        ],
    )
    def test_a_counter_that_could_go_down_is_refused(self, rule, message):
        """A negative amount or a dec on a counter fails at configuration time."""
        table = {"rules": [{"event": "e", "metric": "e_total", "type": "counter"}]}
        table["rules"][0].update(rule)

        with pytest.raises(ConfigurationError, match=message):
            load_rules(table, PREFIX)

    @pytest.mark.parametrize("amount", [float("nan"), float("inf"), 10**400])
    def test_an_amount_that_is_no_finite_number_is_refused(self, amount):
        """NaN or infinity as `amount` fails at configuration time, any type."""
        table = {
            "rules": [{"event": "e", "metric": "e", "type": "gauge", "amount": amount}]
        }

        with pytest.raises(ConfigurationError, match="a finite number"):
            load_rules(table, PREFIX)

    def test_a_gauge_may_go_down(self):
        """A negative amount, a dec and a negative value_map suit a gauge."""
        table = {
            "rules": [
                {"event": "e", "metric": "g", "type": "gauge", "amount": -2},
                {"event": "f", "metric": "f", "type": "gauge", "action": "dec"},
                {
                    "event": "h",
                    "metric": "h",
                    "type": "gauge",
                    "action": "set",
                    "value": "v",
                    "value_map": {"low": -1},
                },
            ]
        }

        rules = load_rules(table, PREFIX)

        assert (rules.rules["e"][0].amount, rules.rules["f"][0].action) == (-2, "dec")

    def test_two_rules_must_agree_on_a_shared_metric(self):
        """Rules updating one metric with different labels are refused."""
        table = {
            "rules": [
                {"event": "a", "metric": "n_total", "type": "counter"},
                {
                    "event": "b",
                    "metric": "n_total",
                    "type": "counter",
                    "labels": {"s": ["x"]},
                },
            ]
        }

        with pytest.raises(ConfigurationError, match="same type, labels"):
            load_rules(table, PREFIX)

    def test_rules_from_a_toml_file_and_bad_files(self, tmp_path):
        """A rules file is read; a missing or broken one is a clear error."""
        good = tmp_path / "rules.toml"
        good.write_text(
            '[[rules]]\nevent = "e"\nmetric = "e_total"\ntype = "counter"\n'
        )
        broken = tmp_path / "broken.toml"
        broken.write_text("[[rules]\n")

        assert [f.name for f in load_rules(good, "p_").families] == ["p_e_total"]
        with pytest.raises(ConfigurationError, match="can't be read"):
            load_rules(tmp_path / "missing.toml", "p_")
        with pytest.raises(ConfigurationError, match="not valid TOML"):
            load_rules(broken, "p_")

    def test_a_rule_may_not_take_a_toolkit_name(self, tmp_path):
        """errors_total and log_* belong to the toolkit."""
        table = {"rules": [{"event": "e", "metric": "errors_total", "type": "counter"}]}

        with pytest.raises(ConfigurationError, match="its own metrics"):
            configure(tmp_path, metrics_rules=table_file(tmp_path, table))


def table_file(tmp_path, table):
    lines = []
    for rule in table["rules"]:
        lines.append("[[rules]]")
        lines.extend(f"{key} = {json.dumps(value)}" for key, value in rule.items())
    path = tmp_path / "rules.toml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def reference_workload(log):
    """One of each reference event, as the demo logs them."""
    installer = logging.getLogger("vscode_runtime.installer")
    log.info(
        "Installation started", installationId="i-1", moduleCount=2, trigger="user"
    )
    log.info(
        "Installation started", installationId="i-2", moduleCount=1, trigger="user"
    )
    log.info(
        "Installation finished",
        installationId="i-1",
        status="success",
        durationSeconds=3.0,
        moduleCount=2,
        modulesInstalled=2,
    )
    log.info("Cache lookup", module="a", result="hit")
    log.info("Cache lookup", module="b", result="miss")
    log.info("Cache lookup", module="c", result="miss")
    log.debug("Cache state", validEntries=5, expiredEntries=2, sizeBytes=4096)
    log.info(
        "Download finished",
        installationId="i-1",
        module="a",
        status="success",
        sizeBytes=2_000_000,
        durationSeconds=0.7,
    )
    log.info(
        "Network request",
        service="manifest",
        status="success",
        statusCode=200,
        durationSeconds=0.02,
    )
    log.info("Network request", service="mirror", status="success", durationSeconds=0.1)
    log.info(
        "Circuit breaker state changed",
        circuit="download",
        to="open",
        **{"from": "closed"},
    )
    log.info("Rate limiter state", queued=3, active=2)
    log.warning("Rate limit rejected", service="download")
    log.error(
        "Checksum mismatch",
        errorType="domain",
        installationId="i-1",
        module="a",
        expected="x",
        actual="y",
    )
    try:
        raise ConnectionRefusedError(111, "refused")
    except ConnectionRefusedError as refused:
        log.warning(
            "Network error",
            service="download",
            errorKind="connection",
            attempt=1,
            exc_info=refused,
        )
        # The same exception, logged again by a stdlib logger: counted once.
        installer.error(
            "Installation finished",
            exc_info=refused,
            extra={
                "installationId": "i-2",
                "status": "failure",
                "durationSeconds": 1.0,
                "moduleCount": 1,
                "modulesInstalled": 0,
            },
        )


class TestLiveCounters:
    def test_reference_events_become_reference_families(self, tmp_path):
        """The reference workload yields the reference families' values."""
        service = configure(tmp_path)
        reference_workload(service.get_logger("vscode_runtime.installer"))

        samples = scrape(service)

        assert value(samples, "installations_total", status="success") == 1
        assert value(samples, "installations_total", status="failure") == 1
        assert value(samples, "installations_active") == 0
        assert value(samples, "installation_modules_total") == 2
        assert value(samples, "installation_duration_seconds_count") == 2
        assert value(samples, "installation_duration_seconds_sum") == 4.0
        assert value(samples, "cache_hits_total") == 1
        assert value(samples, "cache_misses_total") == 2
        assert value(samples, "cache_entries", type="valid") == 5
        assert value(samples, "cache_entries", type="expired") == 2
        assert value(samples, "download_size_bytes_bucket", le="1e+07") == 1
        assert value(samples, "network_requests_total", service="manifest") == 1
        assert value(samples, "network_requests_total", service="other") == 1
        assert value(samples, "network_errors_total", error_type="connection") == 1
        assert value(samples, "circuit_breaker_state", circuit="download") == 1
        assert (
            value(
                samples,
                "circuit_breaker_transitions_total",
                circuit="download",
                to="open",
                **{"from": "closed"},
            )
            == 1
        )
        assert value(samples, "rate_limiter_queued_requests") == 3
        assert value(samples, "rate_limiter_rejected_requests_total") == 1

    def test_an_event_without_the_rules_number_skips_only_that_update(self, tmp_path):
        """A missing or non-numeric field skips the update; nothing is dropped."""
        service = configure(tmp_path)
        log = service.get_logger("vscode_runtime.installer")
        log.info("Download finished", status="success", sizeBytes="big")
        sink = service.sink("metrics")

        samples = scrape(service)

        assert value(samples, "downloads_total", status="success") == 1
        assert (PREFIX + "download_size_bytes_count", ()) not in samples
        assert (sink.skipped, sink.dropped) == (2, 0)

    @pytest.mark.parametrize("modules", [-5, -0.5, float("-inf"), float("nan")])
    def test_a_counter_never_goes_down(self, tmp_path, modules):
        """A negative or non-finite number for a counter is a skipped update."""
        service = configure(tmp_path)
        log = service.get_logger("vscode_runtime.installer")
        finished = {
            "installationId": "i",
            "status": "success",
            "durationSeconds": 1.0,
            "moduleCount": 3,
        }
        log.info("Installation finished", **finished, modulesInstalled=3)
        log.info("Installation finished", **finished, modulesInstalled=modules)
        sink = service.sink("metrics")

        samples = scrape(service)

        assert value(samples, "installation_modules_total") == 3
        assert value(samples, "installations_total", status="success") == 2
        assert (sink.skipped, sink.delivered, sink.dropped) == (1, 2, 0)

    def test_a_number_too_large_for_a_float_skips_only_that_update(self, tmp_path):
        """An int beyond a float (or decimal text) skips an update or is `other`."""
        service = configure(tmp_path)
        log = service.get_logger("vscode_runtime.installer")
        log.info(
            "Installation finished",
            installationId="i",
            status="success",
            durationSeconds=1.0,
            moduleCount=1,
            modulesInstalled=10**400,
        )
        log.info("Network error", errorKind=10**5000)
        log.info(
            "Circuit breaker state changed",
            circuit="download",
            to=10**5000,
            **{"from": "closed"},
        )
        sink = service.sink("metrics")

        samples = scrape(service)

        assert value(samples, "installations_total", status="success") == 1
        assert value(samples, "installation_modules_total") == 0
        assert value(samples, "network_errors_total", error_type="other") == 1
        assert (PREFIX + "circuit_breaker_state", (("circuit", "download"),)) not in (
            samples
        )
        assert (sink.skipped, sink.delivered, sink.dropped) == (2, 3, 0)
        assert sink.health().state == "healthy"

    def test_a_gauge_still_takes_a_negative_number(self, tmp_path):
        """Only counters refuse negative numbers: a gauge is set to one."""
        service = configure(tmp_path)
        log = service.get_logger("vscode_runtime.cache")
        log.info("Cache state", validEntries=-3, expiredEntries=0, sizeBytes=0)

        samples = scrape(service)

        assert value(samples, "cache_entries", type="valid") == -3

    def test_errors_by_type_once_per_exception(self, tmp_path):
        """Errors count by type; one exception logged twice counts once."""
        service = configure(tmp_path)
        reference_workload(service.get_logger("vscode_runtime.installer"))

        samples = scrape(service)

        assert {
            kind: value(samples, "errors_total", type=kind)
            for kind in ("domain", "application", "infrastructure")
        } == {"domain": 1, "application": 1, "infrastructure": 1}
        assert value(samples, "log_events_total", level="error") == 2
        assert value(samples, "log_events_total", level="warning") == 2

    def test_error_rate_is_errors_in_the_window_per_second(self, tmp_path):
        """error_rate{severity} is the window's count over its length."""
        service = configure(tmp_path, metrics_error_window="10s")
        log = service.get_logger("app")
        for _ in range(5):
            log.error("failed")
        log.critical("gave up")
        now = int(time.time())

        rates = service.sink("metrics").recorder.error_rates(now)
        later = service.sink("metrics").recorder.error_rates(now + 11)

        assert rates == {"warning": 0.0, "error": 0.5, "fatal": 0.1}
        assert later == {"warning": 0.0, "error": 0.0, "fatal": 0.0}

    def test_health_of_each_sink_and_toolkit_counts(self, tmp_path):
        """health_status, dropped, failures and queue depth for every sink."""
        service = configure(tmp_path, sinks=[BrokenSink()])
        service.get_logger("app").info("hello")

        samples = scrape(service)

        assert value(samples, "health_status", component="file") == 1
        assert value(samples, "health_status", component="broken") == 0
        assert value(samples, "log_events_dropped_total", sink="broken") == 1
        assert value(samples, "log_sink_failures_total", sink="broken") == 3
        assert value(samples, "log_sink_queue_depth", sink="broken") == 7
        assert (
            value(samples, "health_check_duration_seconds_count", component="file") >= 1
        )

    def test_health_endpoint_status_follows_the_worst_component(self, tmp_path):
        """/health is 200 while everything works and 503 when a sink is down."""
        healthy = configure(tmp_path)
        status_ok, body_ok = get(healthy.sink("metrics").server.url + "/health")
        down = configure(tmp_path, sinks=[BrokenSink()])

        status_down, body_down = get(down.sink("metrics").server.url + "/health")

        assert (status_ok, json.loads(body_ok)["status"]) == (200, "healthy")
        assert status_down == 503
        document = json.loads(body_down)
        assert document["status"] == "down"
        assert document["components"]["broken"]["status"] == "down"
        assert document["components"]["file"]["status"] == "healthy"

    def test_health_answers_prometheus_in_its_format(self, tmp_path):
        """A scrape of /health gets health_status as metrics, with the status code."""
        service = configure(tmp_path, sinks=[BrokenSink()])
        request = urllib.request.Request(
            service.sink("metrics").server.url + "/health",
            headers={"Accept": "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"},
        )

        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=10)

        assert caught.value.code == 503
        samples = {
            (sample.name, sample.labels.get("component")): sample.value
            for family in text_string_to_metric_families(caught.value.read().decode())
            for sample in family.samples
        }
        assert samples[PREFIX + "health_status", "broken"] == 0.0
        assert samples[PREFIX + "health_status", "file"] == 1.0

    def test_wsgi_app_without_metrics_still_reports_health(self, tmp_path):
        """With metrics off, /metrics says so (503) and /health still answers."""
        configure_logging(
            env={}, console="off", log_dir=str(tmp_path), handle_signals=False
        )
        app = wsgi_app()
        answers = {}
        for path in ("/metrics", "/health"):
            environ = {"PATH_INFO": path}
            setup_testing_defaults(environ)
            statuses = []
            body = b"".join(app(environ, lambda s, _, got=statuses: got.append(s)))
            answers[path] = (statuses[0], body)

        assert answers["/metrics"][0] == "503 Service Unavailable"
        assert answers["/health"][0] == "200 OK"
        assert json.loads(answers["/health"][1])["components"]["file"]["status"] == (
            "healthy"
        )

    def test_process_and_disk_metrics(self, tmp_path):
        """Uptime, restarts, CPU, memory and the log directory's disk space."""
        service = configure(tmp_path)

        samples = scrape(service)

        logs = str(tmp_path / "logs")
        assert value(samples, "process_uptime_seconds") > 0
        assert value(samples, "memory_usage_bytes") > 1_000_000
        assert value(samples, "cpu_usage_percent") >= 0
        assert value(samples, "disk_free_bytes", path=logs) > 0
        assert value(samples, "disk_used_bytes", path=logs) > 0
        assert (PREFIX + "process_restarts_total", ()) in samples

    def test_restarts_count_earlier_starts_in_the_state_directory(self, tmp_path):
        """Each new process started on the same directory is one more restart."""
        script = textwrap.dedent(f"""
            from runtime_logging import configure_logging
            service = configure_logging(env={{}}, console="off",
                log_dir={str(tmp_path / "logs")!r}, metrics=True,
                metrics_address="off", handle_signals=False)
            print(service.sink("metrics").restarts)
        """)

        runs = [
            subprocess.run(
                [sys.executable, "-c", script],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            for _ in range(3)
        ]

        assert runs == ["0", "1", "2"]

    def test_serves_on_the_given_host_only(self, tmp_path):
        """The server binds the configured loopback address; the default is 8080."""
        service = configure(tmp_path)

        server = service.sink("metrics").server

        assert server.host == "127.0.0.1"
        assert server._server.server_address[0] == "127.0.0.1"
        assert load_settings(env={}).metrics_address == "127.0.0.1:8080"

    def test_a_taken_port_is_a_configuration_error(self, tmp_path):
        """Binding a port in use names the setting and the fix."""
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]

            with pytest.raises(ConfigurationError, match="metrics_address"):
                configure(tmp_path, metrics_address=f"127.0.0.1:{port}")

    def test_mounted_as_a_wsgi_app(self, tmp_path):
        """wsgi_app() serves /metrics and /health inside the caller's own server."""
        configure(tmp_path, metrics_address="off").get_logger("app").error("x")
        app = wsgi_app()
        responses = {}
        for path in ("/metrics", "/health", "/nothing"):
            environ = {"PATH_INFO": path}
            setup_testing_defaults(environ)
            statuses = []
            body = b"".join(
                app(environ, lambda s, _, statuses=statuses: statuses.append(s))
            )
            responses[path] = (statuses[0], body)

        assert responses["/metrics"][0] == "200 OK"
        assert (
            b'vscode_runtime_errors_total{type="application"} 1.0'
            in responses["/metrics"][1]
        )
        assert json.loads(responses["/health"][1])["status"] == "healthy"
        assert responses["/nothing"][0] == "404 Not Found"

    def test_exposition_passes_promtool(self, tmp_path):
        """promtool check metrics accepts the live exposition."""
        service = configure(tmp_path)
        reference_workload(service.get_logger("vscode_runtime.installer"))
        _, body = get(service.sink("metrics").server.url + "/metrics")

        result = subprocess.run(
            [PROMTOOL, "check", "metrics"], input=body, capture_output=True, check=False
        )

        assert result.returncode == 0, result.stderr.decode() + result.stdout.decode()


class BrokenSink(Sink):
    name = "broken"

    def emit(self, event):
        self.dropped += 1

    def health(self):
        return SinkHealth(self.name, DOWN, "target gone", 0, self.dropped, 3, 7)


class TestOptionalDependency:
    def run(self, code):
        return subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)],
            capture_output=True,
            text=True,
            check=False,
        )

    def test_prometheus_client_is_not_imported_unless_metrics_are_on(self):
        """Start-up without metrics leaves prometheus_client unimported."""
        result = self.run("""
            import sys
            from runtime_logging import configure_logging
            configure_logging(env={}, console="off", log_dir="off",
                              handle_signals=False)
            print("prometheus_client" in sys.modules)
        """)

        assert result.stdout.strip() == "False", result.stderr

    def test_missing_extra_names_the_pip_line(self):
        """Metrics without prometheus-client fail at configuration with the fix."""
        result = self.run("""
            import sys
            sys.modules["prometheus_client"] = None
            from runtime_logging import configure_logging, MissingExtraError
            try:
                configure_logging(env={}, console="off", log_dir="off", metrics=True,
                                  handle_signals=False)
            except MissingExtraError as error:
                print(error)
        """)

        assert "pip install 'runtime-logging[metrics]'" in result.stdout, result.stderr


def total_errors(service):
    samples = scrape(service)
    return sum(v for (name, _), v in samples.items() if name == PREFIX + "errors_total")


class TestPreForkWorkers:
    """Case C16: recycled pre-fork workers, counted in prometheus_client's files."""

    def test_recycled_workers_add_exactly_and_the_directory_stays_small(self, tmp_path):
        """4 workers x 25 errors, 50 generations: +100 each, bounded files."""
        directory = tmp_path / "metrics"
        service = configure(tmp_path, log_dir="off", metrics_dir=str(directory))
        totals = [total_errors(service)]
        file_counts = []

        for _ in range(50):
            workers = []
            for _ in range(4):
                pid = os.fork()
                if pid == 0:
                    log = service.get_logger("worker")
                    for number in range(25):
                        log.error("job failed", job=number)
                    os._exit(0)
                workers.append(pid)
            for pid in workers:
                os.waitpid(pid, 0)
            totals.append(total_errors(service))
            file_counts.append(len(os.listdir(directory)))

        assert [b - a for a, b in itertools.pairwise(totals)] == [100.0] * 50
        assert max(file_counts) == file_counts[0] <= 8
        samples = scrape(service)
        label_values = {v for (_, labels) in samples for _, v in labels}
        assert not any("job" in v or "failed" in v for v in label_values)
        assert value(samples, "error_rate", severity="error") > 0

    def test_a_scrape_while_a_worker_starts_its_files_succeeds(
        self, tmp_path, monkeypatch
    ):
        """A worker's new file is never seen empty: the master's /metrics is 200."""
        import prometheus_client.mmap_dict

        directory = tmp_path / "metrics"
        service = configure(tmp_path, log_dir="off", metrics_dir=str(directory))
        url = service.sink("metrics").server.url + "/metrics"
        master = os.getpid()
        real_fstat = os.fstat
        statuses = []

        def scrape_first(fd):
            # Between MmapedDict opening a worker's file and writing its
            # header: the moment a scrape in the master could read it empty.
            if os.getpid() != master and not statuses:
                statuses.append(get(url)[0])
            return real_fstat(fd)

        monkeypatch.setattr(prometheus_client.mmap_dict.os, "fstat", scrape_first)
        pid = os.fork()
        if pid == 0:
            os._exit(0 if statuses == [200] else 1)
        _, status = os.waitpid(pid, 0)
        monkeypatch.undo()

        assert os.waitstatus_to_exitcode(status) == 0
        assert scrape(service)

    def test_mark_process_dead_folds_a_worker_into_the_archive(self, tmp_path):
        """The worker-exit hook merges the files; counts stay, files go."""
        directory = tmp_path / "metrics"
        service = configure(tmp_path, log_dir="off", metrics_dir=str(directory))
        pid = os.fork()
        if pid == 0:
            service.get_logger("worker").warning("slow")
            os._exit(0)
        os.waitpid(pid, 0)

        mark_process_dead(pid)

        assert not [name for name in os.listdir(directory) if str(pid) in name]
        assert total_errors(service) == 1

    def test_a_worker_keeps_counting_after_a_pid_is_reused(self, tmp_path):
        """A process whose pid has files continues from their values."""
        directory = tmp_path / "metrics"
        first = configure(tmp_path, log_dir="off", metrics_dir=str(directory))
        first.get_logger("app").error("one")
        first.shutdown()

        second = configure(tmp_path, log_dir="off", metrics_dir=str(directory))
        second.get_logger("app").error("two")

        assert total_errors(second) == 2

    def test_an_unusable_directory_is_a_configuration_error(self, tmp_path):
        """A metrics_dir that is a file names the setting."""
        blocker = tmp_path / "file"
        blocker.write_text("")

        with pytest.raises(ConfigurationError, match="metrics_dir"):
            configure(tmp_path, metrics_dir=str(blocker / "sub"))


class TestStats:
    def test_stats_agrees_with_the_live_counters(self, tmp_path, capsys):
        """For the same files, rotated and gzipped too, stats equals the counters."""
        service = configure(
            tmp_path, rotation="builtin", max_bytes="4KB", compress=True
        )
        log = service.get_logger("vscode_runtime.installer")
        for _ in range(4):
            reference_workload(log)
            log.warning("slow", attempt=2)
            log.critical("disk gone", exc_info=OSError(28, "No space left on device"))
        service.flush()
        now = int(time.time())
        samples = scrape(service)
        rates = service.sink("metrics").recorder.error_rates(now)
        service.shutdown()
        files = [str(path) for path in log_files(tmp_path / "logs" / "app.log")]
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))

        assert main(["stats", "--json", "--at", at, *files]) == 0

        report = json.loads(capsys.readouterr().out)
        assert any(name.endswith(".gz") for name in files)
        live = {
            kind: value(samples, "errors_total", type=kind)
            for kind in ("domain", "application", "infrastructure")
        }
        assert report["errors"]["by_type"] == live
        assert report["error_rate"]["per_second"] == rates
        assert report["levels"] == {
            level: value(samples, "log_events_total", level=level)
            for level in ("debug", "info", "warning", "error", "critical")
        }

    def test_stats_table_and_windows(self, tmp_path, capsys):
        """The table shows types, severities and per-window counts."""
        path = tmp_path / "app.log"
        lines = [
            {
                "timestamp": "2026-12-04T10:00:05.000000Z",
                "level": "error",
                "logger": "a",
                "event": "x",
                "errorType": "domain",
            },
            {
                "timestamp": "2026-12-04T10:01:10.000000Z",
                "level": "warning",
                "logger": "a",
                "event": "y",
            },
            {
                "timestamp": "2026-12-04T10:01:20.000000Z",
                "level": "info",
                "logger": "a",
                "event": "z",
            },
        ]
        path.write_text("\n".join(map(json.dumps, lines)) + "\nnot json\n")

        assert main(["stats", "--json", str(path)]) == 0
        report = json.loads(capsys.readouterr().out)
        assert main(["stats", str(path)]) == 0
        table = capsys.readouterr().out

        assert [w["start"] for w in report["windows"]] == [
            "2026-12-04T10:00:00Z",
            "2026-12-04T10:01:00Z",
        ]
        assert report["windows"][0]["by_type"]["domain"] == 1
        assert report["windows"][1]["by_severity"]["warning"] == 1
        assert report["error_rate"]["at"] == "2026-12-04T10:01:20Z"
        assert report["error_rate"]["per_second"]["warning"] == 1 / 60
        assert report["unreadable_lines"] == 1
        assert "domain" in table
        assert "unreadable lines (not JSON, or not a record): 1" in table

    def test_stats_refuses_a_missing_file(self, tmp_path, capsys):
        """A missing file is an error with status 2."""
        assert main(["stats", str(tmp_path / "none.log")]) == 2
        assert "not a readable file" in capsys.readouterr().err
