"""A signal handler that logs never waits for a lock its own thread holds.

Each case raises the signal from inside a locked region of the toolkit, so
the handler runs at that exact point; a deadlock ends the child at its
timeout and fails the test.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PRELUDE = """
import collections, faulthandler, json, signal, sys
from pathlib import Path
from runtime_logging import configure_logging
from runtime_logging._diagnostics import diagnostics
faulthandler.dump_traceback_later(20, exit=True)
log_dir = Path(sys.argv[1])
state = {"armed": False, "signals": 0}

def handler(number, frame):
    state["signals"] += 1
    log.info("from-signal", n=state["signals"])

def raise_once():
    if state["armed"]:
        state["armed"] = False
        signal.raise_signal(signal.SIGALRM)

signal.signal(signal.SIGALRM, handler)
"""


def run(tmp_path: Path, body: str) -> list[dict[str, object]]:
    """Run *body* after the prelude; return every line of the log files."""
    script = PRELUDE + textwrap.dedent(body)
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = []
    for path in sorted(tmp_path.glob("app.log*")):
        lines += [json.loads(line) for line in path.read_bytes().splitlines()]
    return lines


def events(lines: list[dict[str, object]]) -> list[object]:
    return sorted(str(line["event"]) for line in lines)


def test_handler_logging_during_rotation_writes_its_line(tmp_path: Path) -> None:
    lines = run(
        tmp_path,
        """
        svc = configure_logging(log_dir=log_dir, console="off",
            handle_signals=False, rotation="builtin", max_bytes="1KB",
            compress=False)
        log = svc.get_logger("t")
        sink = svc.sink("file")
        backup_target = sink._backup_target
        def interrupted():
            raise_once()
            return backup_target()
        sink._backup_target = interrupted
        for i in range(40):
            state["armed"] = state["armed"] or i == 20
            log.info("main", i=i)
        svc.shutdown()
        assert sink.rotations >= 1 and state["signals"] == 1, state
        """,
    )
    assert events(lines) == ["from-signal"] + ["main"] * 40


def test_handler_logging_during_the_reopen_check(tmp_path: Path) -> None:
    lines = run(
        tmp_path,
        """
        svc = configure_logging(log_dir=log_dir, console="off",
            handle_signals=False)
        log = svc.get_logger("t")
        sink = svc.sink("file")
        reopen = sink._reopen
        def interrupted():
            raise_once()
            reopen()
        sink._reopen = interrupted
        log.info("main")
        (log_dir / "app.log").rename(log_dir / "app.log.1")
        state["armed"] = True
        sink.request_reopen()
        log.info("main")
        svc.reopen()
        svc.shutdown()
        assert state["signals"] == 1, state
        """,
    )
    assert events(lines) == ["from-signal", "main", "main"]


def test_handler_logging_while_the_file_closes(tmp_path: Path) -> None:
    lines = run(
        tmp_path,
        """
        svc = configure_logging(log_dir=log_dir, console="off",
            handle_signals=False)
        log = svc.get_logger("t")
        sink = svc.sink("file")
        close_fd = sink._close_fd
        def interrupted():
            raise_once()
            close_fd()
        sink._close_fd = interrupted
        log.info("main")
        state["armed"] = True
        # The handler's line goes through the still active pipeline.
        sink.close(1.0)
        svc.shutdown()
        assert state["signals"] == 1, state
        """,
    )
    assert events(lines) == ["from-signal", "main"]


def test_handler_logging_during_a_diagnostics_report(tmp_path: Path) -> None:
    lines = run(
        tmp_path,
        """
        from runtime_logging.sinks import Sink
        class Broken(Sink):
            name = "broken"
            def emit(self, event):
                raise OSError("down")
        class Interrupting(collections.Counter):
            def __setitem__(self, key, value):
                raise_once()
                super().__setitem__(key, value)
        diagnostics.counts = Interrupting(diagnostics.counts)
        svc = configure_logging(log_dir=log_dir, console="off",
            handle_signals=False, sinks=[Broken()])
        log = svc.get_logger("t")
        state["armed"] = True
        log.info("main")
        svc.shutdown()
        assert state["signals"] == 1, state
        """,
    )
    assert events(lines) == ["from-signal", "main"]


def test_handler_logging_inside_the_rate_limiter(tmp_path: Path) -> None:
    lines = run(
        tmp_path,
        """
        svc = configure_logging(log_dir=log_dir, console="off",
            handle_signals=False, rate_limit=100)
        log = svc.get_logger("t")
        limiter = svc.rate_limiter
        class Interrupting(dict):
            def get(self, key, default=None):
                raise_once()
                return super().get(key, default)
        limiter._buckets = Interrupting(limiter._buckets)
        state["armed"] = True
        log.info("main")
        svc.shutdown()
        assert state["signals"] == 1, state
        """,
    )
    assert events(lines) == ["from-signal", "main"]


@pytest.mark.parametrize("signals", [1])
def test_handler_line_written_once(tmp_path: Path, signals: int) -> None:
    # The same handler without interruption: one line, nothing else.
    lines = run(
        tmp_path,
        f"""
        svc = configure_logging(log_dir=log_dir, console="off",
            handle_signals=False)
        log = svc.get_logger("t")
        for _ in range({signals}):
            signal.raise_signal(signal.SIGALRM)
        svc.shutdown()
        """,
    )
    assert events(lines) == ["from-signal"] * signals


STORM = """
import os, threading, time
sys.path.insert(0, sys.argv[2])
from loki_server import LokiReceiver

loki = LokiReceiver()
service = configure_logging(
    env={}, console="off", log_dir=str(log_dir) if sys.argv[3] == "all" else "off",
    metrics=sys.argv[3] == "all", metrics_address="off", handle_signals=False,
    loki_url=loki.url, loki_batch_interval=0.05,
)
log = service.get_logger("storm")


class Interrupt(BaseException):
    pass


def interrupt(number, frame):
    if state["armed"]:
        raise Interrupt


signal.signal(signal.SIGINT, interrupt)
stop = threading.Event()


def storm():
    while not stop.is_set():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.0002)


def other():
    while not stop.is_set():
        log.info("other")


workers = [threading.Thread(target=f, daemon=True) for f in (storm, other)]
for worker in workers:
    worker.start()
interrupted = 0
deadline = time.monotonic() + 3
while time.monotonic() < deadline:
    try:
        state["armed"] = True
        log.info("main")
        state["armed"] = False
    except Interrupt:
        state["armed"] = False
        interrupted += 1
stop.set()
for worker in workers:
    worker.join()
signal.signal(signal.SIGINT, signal.SIG_IGN)
service.flush()  # what the flood queued, so that the next lines find room
# Every lock free again, and the queued sink still sending: the other
# thread's lines and these reach their sinks.
done = threading.Event()


def after():
    for number in range(100):
        log.info("after the storm", number=number)
    done.set()


threading.Thread(target=after, daemon=True).start()
assert done.wait(10), "a logging call waits for a lock the storm left held"
service.shutdown()
after_lines = [line for line in loki.lines() if "after the storm" in line]
loki.stop()
print(json.dumps({"interrupted": interrupted, "loki": len(after_lines)}))
"""


@pytest.mark.parametrize("sinks", ["all", "loki"])
def test_exceptions_raised_by_signal_handlers_leave_no_lock_held(
    tmp_path: Path, sinks: str
) -> None:
    """A handler that raises (Ctrl-C, sys.exit) mid-call breaks no sink.

    A storm of signals whose handler raises lands at every point of the
    main thread's calls; afterwards another thread's calls still go
    through, and the queued sink still delivers.
    """
    script = PRELUDE + STORM
    tests = Path(__file__).parent
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), str(tests), sinks],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["interrupted"] > 100, report
    assert report["loki"] == 100, report
    if sinks == "all":
        log_file = tmp_path / "app.log"
        lines = [json.loads(line) for line in log_file.read_bytes().splitlines()]
        assert sum(line["event"] == "after the storm" for line in lines) == 100
