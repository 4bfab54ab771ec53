"""The monitoring files, checked and run with the real Prometheus tools."""

from __future__ import annotations

import http.server
import json
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import ClassVar

import pytest
from prometheus_client.parser import text_string_to_metric_families

from runtime_logging import configure_logging
from runtime_logging.metrics import load_rules
from runtime_logging.sinks.file import log_files

ROOT = Path(__file__).resolve().parent.parent
MONITORING = ROOT / "monitoring"
ALERT_FILES = sorted((MONITORING / "alerts").glob("*.yml"))
UNIT_TESTS = MONITORING / "tests" / "alerts_test.yml"
DASHBOARD = MONITORING / "grafana" / "vscode_runtime_overview.json"
SLACK_PLACEHOLDER = "https://hooks.slack.com/services/YOUR/WEBHOOK/URL"

REFERENCE_ALERTS = {
    "HighInstallationFailureRate": "critical",
    "CircuitBreakerOpen": "critical",
    "ComponentUnhealthy": "critical",
    "HighErrorRate": "critical",
    "DiskSpaceCritical": "critical",
    "ComponentDegraded": "warning",
    "HighCacheMissRate": "warning",
    "SlowDownloads": "warning",
    "HighNetworkRetryRate": "warning",
    "DiskSpaceWarning": "warning",
}
REFERENCE_PANELS = [
    "Installation Success Rate",
    "Active Installations",
    "Installation Duration (P95)",
    "Component Health",
    "Error Rate",
    "Cache Hit Rate",
    "Circuit Breaker States",
    "Download Throughput",
]


def tool(*names):
    for name in names:
        found = shutil.which(name, path="/usr/bin:/usr/sbin:/bin:/sbin")
        if found:
            return found
    pytest.fail(f"{names[0]} is missing; `make system-tools` installs it")
    return None


def run(*command, stdin=None):
    return subprocess.run(
        command, input=stdin, capture_output=True, text=True, check=False, timeout=60
    )


def alerts():
    """{alert name: its rule text} from the alert files."""
    found = {}
    for path in ALERT_FILES:
        text = path.read_text()
        starts = [m.start() for m in re.finditer(r"^\s+- alert: ", text, re.MULTILINE)]
        for start, end in zip(starts, [*starts[1:], len(text)], strict=True):
            block = text[start:end]
            name = re.search(r"- alert: (\w+)", block).group(1)
            found[name] = block
    return found


def metric_names(text):
    return set(
        re.findall(r"\b(vscode_runtime_[a-z_]+?)(?:_bucket|_sum|_count)?\b", text)
    )


class TestPrometheusFiles:
    def test_promtool_accepts_the_config_and_the_rules(self):
        """promtool check config and check rules pass."""
        promtool = tool("promtool")

        config = run(promtool, "check", "config", str(MONITORING / "prometheus.yml"))
        rules = run(promtool, "check", "rules", *map(str, ALERT_FILES))

        assert config.returncode == 0, config.stdout + config.stderr
        assert rules.returncode == 0, rules.stdout + rules.stderr

    def test_promtool_unit_tests_pass(self):
        """promtool test rules runs every alert's firing and quiet cases."""
        result = run(tool("promtool"), "test", "rules", str(UNIT_TESTS))

        assert result.returncode == 0, result.stdout + result.stderr

    def test_the_reference_alerts_and_the_logging_ones(self):
        """All ten reference alerts with their severity, plus drops and sink down."""
        found = alerts()

        severities = {
            name: re.search(r"severity: (\w+)", block).group(1)
            for name, block in found.items()
        }

        assert {n: severities[n] for n in REFERENCE_ALERTS} == REFERENCE_ALERTS
        assert {"LogEventsDropped", "LogSinkDown"} <= set(found)

    def test_every_alert_is_tested_firing_and_quiet(self):
        """Each alert has a unit test expecting it at one time and not at another."""
        text = UNIT_TESTS.read_text()

        quiet = set(re.findall(r"alertname: (\w+)\n\s+exp_alerts: \[\]", text))
        firing = set(re.findall(r"alertname: (\w+)\n\s+exp_alerts:\n", text))

        assert quiet == firing == set(alerts())

    def test_every_alert_links_its_runbook(self):
        """The runbook URL is the base-URL setting plus a file that exists."""
        for name, block in alerts().items():
            link = re.search(r'runbook: "(.*)"', block).group(1)
            runbook = MONITORING / "runbooks" / f"{name}.md"

            assert link == "{{ $externalLabels.runbook_base_url }}/" + f"{name}.md"
            text = runbook.read_text()
            assert "## What it means" in text
            assert "## What to do" in text
            assert "runtime-logging stats" in text or "{service=" in text
        assert "runbook_base_url:" in (MONITORING / "prometheus.yml").read_text()


class TestAlertmanagerFile:
    def test_amtool_accepts_it(self):
        """amtool check-config passes on the shipped routing."""
        result = run(
            tool("amtool"), "check-config", str(MONITORING / "alertmanager.yml")
        )

        assert result.returncode == 0, result.stdout + result.stderr

    def test_reference_receivers_with_placeholders(self):
        """Slack critical and warning and PagerDuty, each with a placeholder."""
        text = (MONITORING / "alertmanager.yml").read_text()

        assert text.count(SLACK_PLACEHOLDER) == 2
        assert "routing_key: 'YOUR_ROUTING_KEY'" in text
        for receiver in ("slack-critical", "slack-warning", "pagerduty"):
            assert f"- name: '{receiver}'" in text


class TestDashboard:
    def test_every_reference_panel_with_a_query(self):
        """The dashboard imports as JSON and has each reference panel, with a query."""
        dashboard = json.loads(DASHBOARD.read_text())

        titles = [panel["title"] for panel in dashboard["panels"]]

        assert titles[: len(REFERENCE_PANELS)] == REFERENCE_PANELS
        assert dashboard["__inputs"][0]["pluginId"] == "prometheus"
        for panel in dashboard["panels"]:
            assert panel["targets"][0]["expr"]
            assert set(panel["gridPos"]) == {"h", "w", "x", "y"}


@pytest.fixture(scope="module")
def demo_metrics(tmp_path_factory):
    """The exposition after one demo run in this process, and its log file."""
    from runtime_logging.demo import run_demo as run_in_process

    tmp = tmp_path_factory.mktemp("demo")
    # In this process, so that its live gauges (circuit state) stay live.
    run_in_process(
        installations=8,
        env={},
        log_dir=str(tmp / "logs"),
        console="off",
        handle_signals=False,
        metrics=True,
        metrics_dir=str(tmp / "metrics"),
        metrics_address="off",
    )
    service = configure_logging(
        env={},
        console="off",
        log_dir=str(tmp / "exporter"),
        handle_signals=False,
        metrics=True,
        metrics_dir=str(tmp / "metrics"),
        metrics_address="off",
    )
    try:
        text = metrics_text(service)
    finally:
        service.shutdown()
    return text, tmp / "logs" / "app.log"


def run_demo(tmp, installations):
    command = [
        sys.executable,
        "-m",
        "runtime_logging",
        "demo",
        f"--installations={installations}",
        f"--log-dir={tmp / 'logs'}",
        "--console=off",
        "--metrics=true",
        f"--metrics-dir={tmp / 'metrics'}",
        "--metrics-address=off",
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def stats_json(files):
    command = [sys.executable, "-m", "runtime_logging", "stats", "--json", *files]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def metrics_text(service):
    from runtime_logging.metrics._http import metrics_text as render

    return render(service.sink("metrics").collect).decode()


class TestBackedByTheDemo:
    def test_every_alert_and_panel_metric_is_produced(self, demo_metrics):
        """The metrics the rules and panels read are in the demo's exposition."""
        text, log = demo_metrics
        families = list(text_string_to_metric_families(text))
        produced = {family.name for family in families} | {
            sample.name for family in families for sample in family.samples
        }
        wanted = metric_names(DASHBOARD.read_text())
        for path in ALERT_FILES:
            wanted |= metric_names(path.read_text())

        # A rule family appears once its event is logged; the demo's circuit
        # breakers change state on timing, so a busy machine may see none.
        logged = {json.loads(line)["event"] for line in log.read_text().splitlines()}
        rules = load_rules("reference", "vscode_runtime_").rules
        unexplained = {
            name
            for name in wanted - produced
            if any(
                rule.family.name == name and event in logged
                for event, event_rules in rules.items()
                for rule in event_rules
            )
            or not any(
                rule.family.name == name
                for event_rules in rules.values()
                for rule in event_rules
            )
        }
        assert unexplained == set()
        assert len(wanted - produced) <= 1


class _Webhook(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, dict]]] = []

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        self.received.append((self.path, body))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(check, what, servers=None, timeout=90):
    """The first true *check*; a generous deadline, as the machine may be busy.

    *servers* maps each process that must keep running to its stderr file.
    """
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        for process, stderr in (servers or {}).items():
            if process.poll() is not None:
                pytest.fail(
                    f"{process.args[0]} exited with {process.returncode} while "
                    f"waiting for {what}: {stderr.read_text()}"
                )
        last = check()
        if last:
            return last
        time.sleep(0.25)
    pytest.fail(f"timed out waiting for {what}; last: {last!r}")
    return None


def query(port, expression):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode(
        {"query": expression}
    )
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())["data"]["result"]


def ready(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1):
            return True
    except OSError:
        return False


def quick_rules(target):
    """The shipped alert files with evaluation every second and no waiting."""
    target.mkdir()
    for path in ALERT_FILES:
        text = re.sub(r"\bfor: \d+m", "for: 0s", path.read_text())
        text = re.sub(r"\binterval: \d+s", "interval: 1s", text)
        (target / path.name).write_text(text)


def write_configs(tmp_path, hook, target, am_port):
    """The shipped files, aimed at local stand-ins and sped up for a test."""
    am_config = (MONITORING / "alertmanager.yml").read_text()
    am_config = am_config.replace(SLACK_PLACEHOLDER, hook + "/slack")
    am_config = am_config.replace(
        "routing_key: 'YOUR_ROUTING_KEY'",
        f"routing_key: 'YOUR_ROUTING_KEY'\n        url: '{hook}/pagerduty'",
    )
    am_config = re.sub(r"group_wait: \d+s", "group_wait: 1s", am_config)
    am_config = re.sub(r"group_interval: \d+m", "group_interval: 1s", am_config)
    # Every receiver points at the local stand-in, and nothing else.
    assert "https://" not in am_config
    assert am_config.count(hook) == 3
    (tmp_path / "alertmanager.yml").write_text(am_config)
    prom_config = (MONITORING / "prometheus.yml").read_text()
    prom_config = prom_config.replace("127.0.0.1:8080", target)
    prom_config = prom_config.replace("127.0.0.1:9093", f"127.0.0.1:{am_port}")
    prom_config = re.sub(
        r"(scrape|evaluation)_interval: \d+s", r"\1_interval: 1s", prom_config
    )
    (tmp_path / "prometheus.yml").write_text(prom_config)
    quick_rules(tmp_path / "alerts")


@pytest.mark.slow
class TestEndToEnd:
    """Prometheus scrapes the demo, Alertmanager routes its alert to a webhook."""

    def test_demo_errors_reach_prometheus_and_the_alert_reaches_slack(self, tmp_path):
        """Query API counts equal `stats`; the tripped alert is delivered."""
        webhook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Webhook)
        _Webhook.received = []
        threading.Thread(target=webhook.serve_forever, daemon=True).start()
        hook = f"http://127.0.0.1:{webhook.server_address[1]}"
        exporter = configure_logging(
            env={},
            console="off",
            log_dir="off",
            handle_signals=False,
            metrics=True,
            metrics_dir=str(tmp_path / "metrics"),
            metrics_address="127.0.0.1:0",
        )
        target = f"127.0.0.1:{exporter.sink('metrics').server.port}"
        am_port, prom_port = free_port(), free_port()

        write_configs(tmp_path, hook, target, am_port)

        def start(command):
            # stderr in a file, which a pipe nobody reads could fill and block.
            stderr = tmp_path / f"{Path(command[0]).name}.stderr"
            with stderr.open("wb") as sink:
                process = subprocess.Popen(
                    command, stdout=subprocess.DEVNULL, stderr=sink
                )
            servers[process] = stderr

        servers = {}
        try:
            start(
                [
                    tool("alertmanager", "prometheus-alertmanager"),
                    f"--config.file={tmp_path / 'alertmanager.yml'}",
                    f"--storage.path={tmp_path / 'am-data'}",
                    f"--web.listen-address=127.0.0.1:{am_port}",
                    f"--web.external-url=http://127.0.0.1:{am_port}",
                    "--cluster.listen-address=",
                ]
            )
            start(
                [
                    tool("prometheus"),
                    f"--config.file={tmp_path / 'prometheus.yml'}",
                    f"--storage.tsdb.path={tmp_path / 'prom-data'}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                    f"--web.external-url=http://127.0.0.1:{prom_port}",
                ]
            )
            wait_for(
                lambda: ready(am_port) and ready(prom_port), "both servers", servers
            )
            wait_for(
                lambda: query(prom_port, 'vscode_runtime_errors_total{type="domain"}'),
                "a first scrape",
                servers,
            )

            run_demo(tmp_path, installations=8)
            files = [str(p) for p in log_files(tmp_path / "logs" / "app.log")]
            stats = stats_json(files)
            expected = stats["errors"]["by_type"]

            def scraped():
                found = {
                    r["metric"]["type"]: float(r["value"][1])
                    for r in query(prom_port, "vscode_runtime_errors_total")
                }
                return found if found == expected else None

            assert wait_for(scraped, f"Prometheus to count {expected}", servers)

            def delivered(path, alert):
                return [
                    body
                    for got, body in _Webhook.received
                    if got == path and alert in json.dumps(body)
                ]

            slack = wait_for(
                lambda: delivered("/slack", "HighInstallationFailureRate"),
                "the critical alert at the Slack stand-in",
                servers,
            )
            pager = wait_for(
                lambda: delivered("/pagerduty", "HighInstallationFailureRate"),
                "the critical alert at the PagerDuty stand-in",
                servers,
            )
        finally:
            for process in servers:
                process.terminate()
            for process in servers:
                process.wait(timeout=90)
            webhook.shutdown()
            webhook.server_close()
            exporter.shutdown()

        message = slack[0]["attachments"][0]
        assert message["title"] == "🚨 HighInstallationFailureRate"
        assert "of installations failing" in message["text"]
        assert "/runbooks/HighInstallationFailureRate.md" in message["text"]
        assert slack[0]["channel"] == "#runtime-critical"
        assert pager[0]["event_action"] == "trigger"
        assert pager[0]["payload"]["summary"] == "HighInstallationFailureRate: critical"
        assert sum(expected.values()) > 0
