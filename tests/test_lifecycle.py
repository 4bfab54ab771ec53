"""Forks and exits: children log at once, queued events reach their sink."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from loki_server import LokiReceiver
from sentry_server import SentryServer

from runtime_logging import configure_logging

#: A queued sink whose deliveries take a while, writing what arrives to a file.
PRELUDE = """
    import os, signal, sys, threading, time
    from runtime_logging import configure_logging
    from runtime_logging.sinks._queue import QueuedSink

    class SlowSink(QueuedSink):
        name = "slow"

        def __init__(self, path, pause):
            super().__init__(batch_entries=10, batch_interval=0.05)
            self.path, self.pause = path, pause

        def deliver(self, batch):
            time.sleep(self.pause)
            with open(self.path, "a") as out:
                for event in batch:
                    out.write(event.json_line.decode())
            return len(batch)
"""


def start(script: str, *args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(PRELUDE) + textwrap.dedent(script)]
        + [str(arg) for arg in args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def finish(process: subprocess.Popen[str], timeout: float = 60) -> tuple[str, str]:
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # Its forked children too: the session holds only what the test started.
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        pytest.fail(f"the process hung\nstdout: {out}\nstderr: {err}")


def delivered(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


EXITS = """
    out, how = sys.argv[1], sys.argv[2]
    service = configure_logging(
        env={}, console="off", log_dir="off", shutdown_timeout="30s",
        sinks=[SlowSink(out, 0.01)],
    )
    log = service.get_logger("exit")
    for seq in range(500):
        log.info("queued", seq=seq)
    log.info("last")
    if how == "exit":
        sys.exit(3)
    if how == "sigterm":
        print("ready", flush=True)
        time.sleep(60)
"""


class TestExit:
    @pytest.mark.parametrize(
        ("how", "status"),
        [("return", 0), ("exit", 3), ("sigterm", -signal.SIGTERM)],
    )
    def test_queued_events_reach_the_sink(self, tmp_path, how, status):
        """Normal return, sys.exit, SIGTERM: all 501 queued events are delivered."""
        out = tmp_path / "delivered.jsonl"
        process = start(EXITS, out, how)
        if how == "sigterm":
            assert process.stdout.readline() == "ready\n"
            process.send_signal(signal.SIGTERM)

        _, stderr = finish(process)

        assert process.returncode == status, stderr
        events = delivered(out)
        assert [e["seq"] for e in events[:-1]] == list(range(500))
        assert events[-1]["event"] == "last"

    @pytest.mark.parametrize("how", ["return", "sigterm"])
    def test_drain_gives_up_after_shutdown_timeout(self, tmp_path, how):
        """A sink that takes a minute per batch holds the exit 0.2 s, not longer."""
        script = """
            out, how = sys.argv[1], sys.argv[2]
            service = configure_logging(
                env={}, console="off", log_dir="off", shutdown_timeout="200ms",
                sinks=[SlowSink(out, 60)],
            )
            for seq in range(100):
                service.get_logger("exit").info("stuck", seq=seq)
            if how == "sigterm":
                print("ready", flush=True)
                time.sleep(60)
        """
        process = start(script, tmp_path / "delivered.jsonl", how)
        if how == "sigterm":
            assert process.stdout.readline() == "ready\n"
            process.send_signal(signal.SIGTERM)

        _, stderr = finish(process, timeout=30)

        assert process.returncode == (-signal.SIGTERM if how == "sigterm" else 0)
        assert "sink slow: 100 events dropped" in stderr


SIGNALS = """
    out, log_dir = sys.argv[1], sys.argv[2]
    calls = []

    def on_term(number, frame):
        print("application SIGTERM", flush=True)
        calls.append("term")

    def on_hup(number, frame):
        calls.append("hup")

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_hup)
    service = configure_logging(
        env={}, console="off", log_dir=log_dir, reopen_interval="1h",
        sinks=[SlowSink(out, 0.01)],
    )
    log = service.get_logger("signals")
    os.rename(os.path.join(log_dir, "app.log"), os.path.join(log_dir, "old.log"))
    os.kill(os.getpid(), signal.SIGHUP)
    for seq in range(200):
        log.info("queued", seq=seq)
    print("hup" if calls == ["hup"] else "no hup", flush=True)
    deadline = time.monotonic() + 60
    while "term" not in calls and time.monotonic() < deadline:
        time.sleep(0.01)
    # The application's own way out, logging as it goes.
    for seq in range(200, 300):
        log.info("stopping", seq=seq)
    sys.exit(7)
"""


class TestSignals:
    def test_application_handlers_are_chained(self, tmp_path):
        """The application's SIGHUP and SIGTERM handlers still run, after ours."""
        out, log_dir = tmp_path / "delivered.jsonl", tmp_path / "logs"
        process = start(SIGNALS, out, log_dir)
        assert process.stdout.readline() == "hup\n"

        process.send_signal(signal.SIGTERM)
        stdout, stderr = finish(process)

        assert process.returncode == 7, stderr
        assert stdout == "application SIGTERM\n"
        assert [e["seq"] for e in delivered(out)] == list(range(300))
        # SIGHUP reopened the file: the lines after it are in the new app.log.
        assert (log_dir / "old.log").read_text() == ""
        assert len((log_dir / "app.log").read_text().splitlines()) == 300

    def test_an_ignored_sigterm_stays_ignored(self, tmp_path):
        """SIGTERM ignored before set-up: ignored after it, logging goes on."""
        script = """
            out = sys.argv[1]
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            service = configure_logging(
                env={}, console="off", log_dir="off", sinks=[SlowSink(out, 0)]
            )
            os.kill(os.getpid(), signal.SIGTERM)
            service.get_logger("ignored").info("still logging")
            print(signal.getsignal(signal.SIGTERM) == signal.SIG_IGN)
        """
        out = tmp_path / "delivered.jsonl"
        process = start(script, out)

        stdout, stderr = finish(process)

        assert (process.returncode, stdout) == (0, "True\n"), stderr
        assert [e["event"] for e in delivered(out)] == ["still logging"]

    def test_no_handlers_when_signals_are_the_applications(self, tmp_path):
        """With handle_signals off, SIGTERM and SIGHUP keep their handlers."""
        script = """
            before = [signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)]
            configure_logging(
                env={}, console="off", log_dir="off", handle_signals=False
            )
            after = [signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)]
            print(before == after == [signal.SIG_DFL, signal.SIG_DFL])
        """
        process = start(script)

        stdout, stderr = finish(process)

        assert stdout == "True\n", stderr


FORK_WITH_LOCKS_HELD = """
    import logging
    from runtime_logging import _service
    from runtime_logging._diagnostics import diagnostics
    from runtime_logging.context import bind_context

    out, log_dir = sys.argv[1], sys.argv[2]
    slow = SlowSink(out, 0)
    service = configure_logging(
        env={}, console="off", log_dir=log_dir, reopen_interval=0,
        handle_signals=False, sinks=[slow], rate_limit=1000,
    )
    log = service.get_logger("fork")
    log.info("parent", seq=0)
    file_sink = service.sink("file")
    locks = [
        file_sink._lock, file_sink._state_lock, slow._lock, slow._state_lock,
        diagnostics._lock, _service._lock, logging.getLogger().handlers[0].lock,
        service.rate_limiter._lock,
    ]
    holding, release = threading.Event(), threading.Event()

    def hold():
        for lock in locks:
            lock.acquire()
        holding.set()
        release.wait()
        for lock in reversed(locks):
            lock.release()

    threading.Thread(target=hold, daemon=True).start()
    holding.wait()
    bind_context(job="nightly")
    pid = os.fork()
    if pid == 0:
        log.info("child", seq=1)
        logging.getLogger("stdlib").warning("child stdlib")
        diagnostics.failure("fork test", "the child reports")
        service.flush()
        service.shutdown()
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    release.set()
    service.shutdown()
    print(pid, status)
"""


class TestFork:
    def test_child_logs_while_a_parent_thread_held_every_lock(self, tmp_path):
        """Locks held by another thread at fork time don't block the child."""
        out, log_dir = tmp_path / "delivered.jsonl", tmp_path / "logs"
        process = start(FORK_WITH_LOCKS_HELD, out, log_dir)

        stdout, stderr = finish(process, timeout=30)

        child, status = stdout.split()
        assert status == "0", stderr
        assert "fork test: the child reports" in stderr
        lines = [
            json.loads(line) for line in (log_dir / "app.log").read_bytes().splitlines()
        ]
        assert [(line["event"], line["pid"], line["job"]) for line in lines[1:]] == [
            ("child", int(child), "nightly"),
            ("child stdlib", int(child), "nightly"),
        ]
        assert lines[0]["pid"] == process.pid
        # The child's own thread delivered its events; the parent's queue was
        # the parent's to deliver, not the child's.
        assert sorted((e["event"], e["pid"]) for e in delivered(out)) == [
            ("child", int(child)),
            ("child stdlib", int(child)),
            ("parent", process.pid),
        ]

    def test_pool_workers_drain_their_queues_at_exit(self, tmp_path):
        """Events queued in multiprocessing workers are delivered when they end."""
        script = """
            import multiprocessing
            out = sys.argv[1]
            service = configure_logging(
                env={}, console="off", log_dir="off", handle_signals=False,
                sinks=[SlowSink(out, 0.05)],
            )
            log = service.get_logger("pool")

            def work(seq):
                log.info("work", seq=seq)

            pool = multiprocessing.get_context("fork").Pool(2)
            pool.map(work, range(100), chunksize=10)
            pool.close()
            pool.join()
            service.shutdown()
        """
        out = tmp_path / "delivered.jsonl"
        process = start(script, out)

        _, stderr = finish(process)

        assert process.returncode == 0, stderr
        assert sorted(e["seq"] for e in delivered(out)) == list(range(100))


POOL_TO_LOKI = """
    import multiprocessing
    url, how = sys.argv[1], sys.argv[2]
    # One stream per worker: the receiver refuses entries out of time order.
    service = configure_logging(
        env={}, console="off", log_dir="off", loki_url=url,
        loki_labels="service,logger", shutdown_timeout="20s",
    )
    context = multiprocessing.get_context("fork")
    started = context.Value("i", 0)
    log = None

    def begin():
        global log
        with started.get_lock():
            started.value += 1
            log = service.get_logger(f"worker{started.value}")

    def work(seq):
        log.info("work", seq=seq)

    if how == "terminate":
        with context.Pool(4, initializer=begin) as pool:
            pool.map(work, range(100))
            # Workers idle in their wait for a task, as terminate() mostly
            # finds them (README: Exit, what is left).
            time.sleep(0.5)
    else:
        pool = context.Pool(4, initializer=begin)
        pool.map(work, range(100))
        pool.close()
        pool.join()
    service.shutdown()
"""


class TestPoolToLoki:
    @pytest.mark.parametrize("how", ["terminate", "close"])
    def test_every_task_event_arrives(self, how):
        """A Pool's workers deliver their queued events, also when terminated."""
        loki = LokiReceiver()
        try:
            process = start(POOL_TO_LOKI, loki.url, how)

            _, stderr = finish(process)

            assert process.returncode == 0, stderr
            seqs = [record["seq"] for record in loki.records()]
        finally:
            loki.stop()
        assert sorted(seqs) == list(range(100)), stderr


class TestThreadsLeaveSignalsToTheMainThread:
    def test_toolkit_threads_block_process_signals(self, tmp_path):
        """A SIGTERM never lands on a toolkit thread, whose main thread may
        sleep in a wait only a signal to it ends."""
        loki, sentry = LokiReceiver(), SentryServer()
        service = configure_logging(
            env={},
            console="off",
            log_dir=str(tmp_path),
            handle_signals=False,
            metrics=True,
            metrics_address="127.0.0.1:0",
            loki_url=loki.url,
            sentry_dsn=sentry.dsn,
            traces_sample_rate=0.0,
            profiles_sample_rate=0.0,
        )
        try:
            service.get_logger("t").error("starts every sender")
            service.flush()
            threads = [
                t
                for t in threading.enumerate()
                if t.name.startswith(("runtime_logging", "sentry-sdk.BackgroundWorker"))
            ]
            blocked = {t.name: _blocked(t.native_id) for t in threads}
        finally:
            service.shutdown()
            loki.stop()
            sentry.close()

        assert {
            "runtime_logging-loki",
            "runtime_logging-sentry",
            "runtime_logging-metrics",
            "sentry-sdk.BackgroundWorker",
        } <= set(blocked)
        for name, signals in blocked.items():
            assert {signal.SIGTERM, signal.SIGHUP, signal.SIGINT} <= signals, name
        assert signal.SIGTERM not in _blocked(threading.main_thread().native_id)


def _blocked(native_id):
    """The signals thread *native_id* of this process blocks."""
    status = Path(f"/proc/self/task/{native_id}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("SigBlk:"))
    mask = int(line.split()[1], 16)
    return {number for number in range(1, 65) if mask >> (number - 1) & 1}


def test_a_process_started_by_a_sentry_hook_can_be_ended(tmp_path):
    """The application's hook runs with signals unblocked: its children too."""
    import subprocess as sp

    sentry = SentryServer()
    masks = []

    def before_send(event, hint):
        child = sp.run(
            ["grep", "SigBlk", "/proc/self/status"],
            capture_output=True,
            text=True,
            check=True,
        )
        masks.append(int(child.stdout.split()[1], 16))
        return event

    service = configure_logging(
        env={},
        console="off",
        log_dir=str(tmp_path),
        handle_signals=False,
        sentry_dsn=sentry.dsn,
        traces_sample_rate=0.0,
        profiles_sample_rate=0.0,
        sentry_before_send=before_send,
    )
    try:
        service.get_logger("t").error("runs the hook")
        service.flush()
    finally:
        service.shutdown()
        sentry.close()

    assert len(masks) == 1
    assert not masks[0] >> (signal.SIGTERM - 1) & 1
    assert not masks[0] >> (signal.SIGINT - 1) & 1
