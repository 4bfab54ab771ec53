from __future__ import annotations

import contextlib
import http.client
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import strict_loads

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port, process, timeout=90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail("the server did not start listening")


def get(port, path, request_id=None):
    # Generous: the first request waits for a worker to boot on a busy machine.
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"X-Request-ID": request_id} if request_id else {}
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status, response.getheader("X-Request-ID")
    finally:
        connection.close()


@contextlib.contextmanager
def serve(command, port, cwd, listener=None, **env):
    """Run *command* until the block ends; SIGTERM it then, as a supervisor would.

    A *listener* socket is handed to the server, which then owns it alone.
    """
    environ = {k: v for k, v in os.environ.items() if not k.startswith("RUNTIME_")}
    process = subprocess.Popen(
        [sys.executable, "-m", *command],
        cwd=cwd,
        env={**environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        pass_fds=() if listener is None else (listener.fileno(),),
    )
    if listener is not None:
        listener.close()
    try:
        wait_for_port(port, process)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        process.stdout.close()


@pytest.fixture
def gunicorn(tmp_path):
    """The example service under gunicorn, 2 workers, on a free local port."""
    # Bound here and inherited, so that no other server can take the port
    # between choosing it and gunicorn listening on it.
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    metrics_port = free_port()
    command = [
        "gunicorn",
        "--config",
        str(EXAMPLES / "gunicorn_conf.py"),
        "--pythonpath",
        str(EXAMPLES),
        "wsgi_app:application",
    ]
    with serve(
        command,
        port,
        tmp_path,
        listener,
        APP_BIND=f"fd://{listener.fileno()}",
        APP_WORKERS="2",
        RUNTIME_LOGGING_LOG_DIR=str(tmp_path),
        RUNTIME_LOGGING_CONSOLE="off",
        RUNTIME_LOGGING_METRICS="true",
        RUNTIME_LOGGING_METRICS_ADDRESS=f"127.0.0.1:{metrics_port}",
        RUNTIME_LOGGING_METRICS_DIR=str(tmp_path / "metrics"),
    ) as process:
        yield port, metrics_port, process, tmp_path / "app.log"


@pytest.mark.slow
def test_gunicorn_workers_log_requests_in_the_schema(gunicorn):
    """Access and app lines share the request id the response returns."""
    port, metrics_port, process, log_path = gunicorn
    given = [f"given-{n}" for n in range(8)]

    answers = [get(port, "/", request_id) for request_id in given]
    answers += [get(port, "/") for _ in range(8)]
    answers.append(get(port, "/?token=s3cr3t&page=2", "with-query"))
    answers.append(get(port, "/fail", "failing"))
    answers.append(get(port, "/", "bad id\u00e9"))
    metrics = scrape(metrics_port)
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=90)[0]

    assert process.returncode == 0, output
    assert output == b""
    statuses = [status for status, _ in answers]
    assert statuses == [200] * 17 + [500, 200]
    returned = [request_id for _, request_id in answers]
    assert returned[:8] == given
    assert returned[16:18] == ["with-query", "failing"]
    generated = returned[8:16] + returned[18:]
    assert all(re.fullmatch(r"[0-9a-f]{32}", r) for r in generated)

    raw = log_path.read_bytes()
    lines = [strict_loads(line) for line in raw.splitlines()]
    assert b"s3cr3t" not in raw
    master = {line["pid"] for line in lines if line["event"].startswith("Listening")}
    workers = {
        int(line["event"].rsplit(" ", 1)[1])
        for line in lines
        if line["event"].startswith("Booting worker")
    }
    assert len(master) == 1
    assert len(workers) == 2
    assert master.isdisjoint(workers)
    for request_id in returned:
        app = [line for line in lines if line.get("request_id") == request_id]
        assert [line["logger"] for line in app] == ["app", "gunicorn.access"]
        assert app[0]["pid"] == app[1]["pid"]
        assert app[0]["pid"] in workers
    by_id = {
        line["request_id"]: line
        for line in lines
        if line["logger"] == "gunicorn.access"
    }
    assert by_id["failing"]["status"] == 500
    failed = next(line for line in lines if line["event"] == "Greeting failed")
    assert failed["exception"]["type"] == "ZeroDivisionError"
    assert by_id["with-query"]["path"] == "/?token=[REDACTED:query]&page=2"
    assert list(by_id["given-0"])[:9] == list(lines[0])[:9]
    info = metrics["vscode_runtime_log_events_total", (("level", "info"),)]
    assert info >= 2 * 18 + 1
    assert metrics["vscode_runtime_log_events_total", (("level", "error"),)] == 1


def scrape(port):
    """The master's /metrics, on its own port, as {(name, labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        body = response.read().decode()
    finally:
        connection.close()
    assert response.status == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def read_until_started(process, workers, timeout=60.0):
    """Return the output until *workers* processes have logged "Service started".

    Reads the raw pipe, as ``communicate()`` does after it, so no line is lost.
    """
    output = b""
    deadline = time.monotonic() + timeout
    while len(started_pids(output)) < workers:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"{workers} workers did not start: {output!r}")
        if select.select([process.stdout], [], [], remaining)[0]:
            chunk = os.read(process.stdout.fileno(), 65536)
            if not chunk:
                pytest.fail(f"the server exited with {process.wait()}: {output!r}")
            output += chunk
    return output


def started_pids(output):
    """The pids of the workers whose start line is in *output* so far."""
    complete = output[: output.rfind(b"\n") + 1]
    lines = [strict_loads(line) for line in complete.splitlines()]
    return {line["pid"] for line in lines if line["event"] == "Service started"}


@pytest.mark.slow
def test_uvicorn_workers_with_the_log_config(tmp_path):
    """uvicorn's --log-config alone: every line in the schema, ids shared."""
    port = free_port()
    command = [
        "uvicorn",
        "asgi_app:app",
        "--app-dir",
        str(EXAMPLES),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "2",
        "--log-config",
        str(EXAMPLES / "uvicorn_logging.json"),
    ]
    with serve(command, port, tmp_path) as process:
        # The port opens in the supervisor before its workers start, one by one.
        output = read_until_started(process, workers=2)
        answers = [get(port, "/", f"given-{n}") for n in range(4)]
        answers.append(get(port, "/?token=s3cr3t", "with-query"))
        answers.append(get(port, "/fail"))
        process.send_signal(signal.SIGTERM)
        output += process.communicate(timeout=30)[0]

    assert process.returncode == 0, output
    assert [status for status, _ in answers] == [200] * 5 + [500]
    returned = [request_id for _, request_id in answers]
    assert returned[:5] == [*(f"given-{n}" for n in range(4)), "with-query"]
    assert re.fullmatch(r"[0-9a-f]{32}", returned[5])
    assert b"s3cr3t" not in output
    lines = [strict_loads(line) for line in output.splitlines()]
    started = [line for line in lines if line["event"] == "Service started"]
    assert len({line["pid"] for line in started}) == 2
    for request_id in returned:
        found = [line for line in lines if line.get("request_id") == request_id]
        assert [line["logger"] for line in found] == ["app", "uvicorn.access"]
        assert found[0]["pid"] == found[1]["pid"]
    failed = next(line for line in lines if line["event"] == "Greeting failed")
    assert failed["exception"]["type"] == "ZeroDivisionError"
    assert {line["service"] for line in lines} == {"vscode_runtime"}
