"""Sentry at exit and while down or hung: C12 and C13 for the Sentry sink."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import pytest
import urllib3
from sentry_server import HungListener, SentryServer, closed_port

from runtime_logging import configure_logging

DRAIN = 3.0

C12_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, time
    from runtime_logging import configure_logging

    dsn, mode, drain = sys.argv[1], sys.argv[2], float(sys.argv[3])
    service = configure_logging(
        env={}, console="off", log_dir="off", sentry_dsn=dsn, sentry_logs=True,
        shutdown_timeout=drain, traces_sample_rate=0.0, profiles_sample_rate=0.0,
        sentry_connect_timeout=1, sentry_read_timeout=1,
    )
    log = service.get_logger("c12")
    for seq in range(500):
        log.info("line", seq=seq)
    log.error("the error")
    print("logged", flush=True)
    if mode == "exit":
        sys.exit(1)
    if mode == "sigterm":
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(60)
    """
)

C13_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from runtime_logging import configure_logging

    dsn, drain = sys.argv[1], float(sys.argv[2])
    service = configure_logging(
        env={}, console="off", log_dir="off", sentry_dsn=dsn,
        shutdown_timeout=drain, traces_sample_rate=0.0, profiles_sample_rate=0.0,
        sentry_connect_timeout=1, sentry_read_timeout=1,
    )
    log = service.get_logger("c13")
    start = time.perf_counter()
    for n in range(1000):
        log.error("upstream failed", n=n)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds}), flush=True)
    """
)

EXIT_CODES = {"return": 0, "exit": 1, "sigterm": -15}


def run_until_exit(script, *args):
    """Run *script*; its output and the seconds from its first line to its exit."""
    child = subprocess.Popen(
        [sys.executable, "-c", script, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = child.stdout.readline()
        ready = time.monotonic()
        out, err = child.communicate(timeout=60)
        exited = time.monotonic()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return child.returncode, first + out, err, exited - ready


class TestNothingLostAtExit:
    """C12: 500 lines and one error reach Sentry, however the process ends."""

    @pytest.mark.parametrize("mode", ["return", "exit", "sigterm"])
    def test_all_delivered(self, mode):
        """Every log line and the error event arrive within the drain time."""
        server = SentryServer()
        try:
            code, out, err, seconds = run_until_exit(
                C12_SCRIPT, server.dsn, mode, DRAIN
            )
            logs = server.logs
            events = server.events
        finally:
            server.close()

        assert (code, out.strip()) == (EXIT_CODES[mode], "logged"), err
        seqs = sorted(
            entry["attributes"]["log.seq"]["value"]
            for entry in logs
            if entry["body"] == "line"
        )
        assert seqs == list(range(500))
        assert [e["logentry"]["formatted"] for e in events] == ["the error"]
        assert seconds <= DRAIN + 1.0

    @pytest.mark.parametrize("mode", ["return", "exit", "sigterm"])
    def test_exit_bounded_when_down(self, mode):
        """With nothing listening, exit still takes at most the drain plus 1 s."""
        dsn = f"http://public@127.0.0.1:{closed_port()}/1"

        code, out, err, seconds = run_until_exit(C12_SCRIPT, dsn, mode, DRAIN)

        assert (code, out.strip()) == (EXIT_CODES[mode], "logged"), err
        assert "Traceback" not in err
        assert seconds <= DRAIN + 1.0


class TestHungOrDead:
    """C13: a hung or dead Sentry never blocks log calls or exit."""

    @pytest.mark.parametrize("target", ["hung", "closed"])
    def test_thousand_errors(self, target):
        """1000 log.error calls return; exit within the limit, what is unsent told."""
        listener = HungListener() if target == "hung" else None
        port = listener.port if listener else closed_port()
        # A refused connection is told at once: the sink gives up then, well
        # within a long drain, instead of trying each event until it ends.
        drain = DRAIN if listener else 10.0
        try:
            code, out, err, seconds = run_until_exit(
                C13_SCRIPT, f"http://public@127.0.0.1:{port}/1", drain
            )
        finally:
            if listener is not None:
                listener.close()

        assert code == 0, err
        assert "Traceback" not in err
        assert json.loads(out)["seconds"] >= 0
        assert seconds <= drain + 1.0
        if listener is not None:
            assert listener.accepted, "sentry-sdk never reached the hung listener"
            assert "not sent within shutdown_timeout" in err
        else:
            assert seconds <= drain / 2
            assert "events dropped" in err
            assert "Connection refused" in err

    def test_explicit_timeouts(self):
        """sentry-sdk's requests carry the configured connect and read timeouts."""
        service = configure_logging(
            env={},
            console="off",
            log_dir="off",
            handle_signals=False,
            sentry_dsn=f"http://public@127.0.0.1:{closed_port()}/1",
            sentry_connect_timeout="750ms",
            sentry_read_timeout=4,
        )

        pool = service.sink("sentry").client.transport._pool
        timeout = pool.connection_pool_kw["timeout"]

        assert isinstance(timeout, urllib3.Timeout)
        assert (timeout.connect_timeout, timeout.read_timeout) == (0.75, 4)
        assert timeout.total is None


class TestHealthTellsTheTruth:
    """C13: delivered counts only what Sentry accepted; the rest is dropped."""

    @staticmethod
    def configure(dsn):
        return configure_logging(
            env={},
            console="off",
            log_dir="off",
            handle_signals=False,
            sentry_dsn=dsn,
            shutdown_timeout=DRAIN,
            traces_sample_rate=0.0,
            profiles_sample_rate=0.0,
            sentry_connect_timeout=1,
            sentry_read_timeout=1,
        )

    def test_accepted_events_are_delivered(self):
        """Events Sentry answered with a success count as delivered."""
        server = SentryServer()
        service = self.configure(server.dsn)
        try:
            log = service.get_logger("c13")
            for n in range(20):
                log.error("upstream failed", n=n)
            service.flush()
            health = service.health()["sentry"]
            events = len(server.events)
        finally:
            service.shutdown()
            server.close()

        assert (health.state, health.delivered, health.dropped) == ("healthy", 20, 0)
        assert events == 20

    def test_closed_port(self, capfd):
        """Refused connections: 200 dropped, failures counted, degraded, told."""
        service = self.configure(f"http://public@127.0.0.1:{closed_port()}/1")
        try:
            log = service.get_logger("c13")
            for n in range(200):
                log.error("upstream failed", n=n)
            # Every refusal settled: 200 requests one after another can take
            # longer than the drain on a loaded machine.
            service.flush(timeout=60)
            health = service.health()["sentry"]
        finally:
            service.shutdown()
        err = capfd.readouterr().err

        assert (health.delivered, health.dropped, health.queue_depth) == (0, 200, 0)
        assert health.failures >= 1
        assert health.state == "degraded"
        assert "Connection refused" in health.detail
        told = [line for line in err.splitlines() if "sink sentry" in line]
        assert told
        assert len(told) <= 10
        assert "events dropped" in told[0]

    def test_hung_listener(self, capfd):
        """No answer: nothing delivered; at exit all 200 are counted as dropped."""
        listener = HungListener()
        service = self.configure(f"http://public@127.0.0.1:{listener.port}/1")
        try:
            log = service.get_logger("c13")
            for n in range(200):
                log.error("upstream failed", n=n)
            service.flush(0.5)
            waiting = service.health()["sentry"]
            sink = service.sink("sentry")
            service.shutdown(1.0)
            closed = sink.health()
        finally:
            listener.close()
        err = capfd.readouterr().err

        assert (waiting.delivered, waiting.dropped) == (0, 0)
        assert waiting.queue_depth == 200
        assert (closed.delivered, closed.dropped, closed.state) == (0, 200, "down")
        assert "200 in all" in err
