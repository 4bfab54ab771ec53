"""Caller-side cost of the Sentry sink and of redaction.

Part one logs the same event to a file, plus Sentry when on: off, a healthy
local ingest server (in its own process, so it takes no time from the
caller's), a hung listener, and healthy with structured logs. Every 100th
call is an error (a Sentry event), the rest are INFO (breadcrumbs). Per-call
times are pooled over interleaved rounds and their percentiles printed; the
events the healthy server received are counted at the end, and the CPU
time the sink's background thread spent per event (building it with its
100 breadcrumbs, redacting, handing it to sentry-sdk) is printed; the
first event of a process also pays sentry-sdk's one-off work.

Part two times the redaction step alone on a clean event, an event whose
fields hold URLs and timestamps but no secret, and one with secrets.

Part three is the first error of a fresh process, Sentry hung, after a
start-up of 0.3 s: what the error call takes, and how much the 2 000 calls
after it are delayed in all while the sink's thread builds that first event
(sentry-sdk's one-off work included).

    python benchmarks/sentry_cost.py [--calls 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _event import FIELDS, MESSAGE
from _hung import hung_server
from _threads import thread_cpu_ns

import runtime_logging
from runtime_logging.redaction import RedactionPolicy

TESTS = Path(__file__).parent.parent / "tests"
SERVER = f"""
import sys
sys.path.insert(0, {str(TESTS)!r})
from sentry_server import SentryServer
server = SentryServer()
print(server.port, flush=True)
sys.stdin.readline()
print(len(server.events), len(server.logs), flush=True)
"""
CLEAN = {"event": MESSAGE, **FIELDS}
PLAIN_URLS = {
    **CLEAN,
    "url": "https://cdn.example.com/modules/python-3.12.zip",
    "started": "2026-12-04T15:00:00.000000Z",
    "mirror": "eu-1:443",
}
SECRETS = {
    **CLEAN,
    "url": "https://cdn.example.com/x.zip?token=t0k3n&page=2",
    "headers": {"Authorization": "Bearer s3cr3t", "Accept": "json"},
    "note": "login password=hunter2",
}


def trial(
    directory: Path, calls: int, settings: dict[str, object]
) -> tuple[list[int], int]:
    """Per-call times, and the sink thread's CPU time when delivery ended."""
    hung = settings.pop("hung", False)
    service = runtime_logging.configure_logging(
        env={},
        console="off",
        log_dir=str(directory),
        handle_signals=False,
        profiles_sample_rate=0.0,
        **settings,
    )
    log = service.get_logger("bench")
    clock = time.perf_counter_ns
    times = []
    for number in range(calls):
        method = log.error if number % 100 == 99 else log.info
        start = clock()
        method(MESSAGE, **FIELDS)
        times.append(clock() - start)
    background = 0
    if not hung:
        service.flush(timeout=15.0)
        background = thread_cpu_ns("runtime_logging-sentry")
    # Time enough to deliver everything to a healthy server on a busy
    # machine (counted below); a hung one is given up on sooner.
    service.shutdown(timeout=1.0 if hung else 15.0)
    return times, background


#: Calls before and after the first error, and the start-up before them.
FIRST_ERROR_CALLS = (1000, 2000)
STARTUP_SECONDS = 0.3


def first_error(dsn: str, directory: str) -> dict[str, float]:
    """In this fresh process: the first error's time and the delay after it."""
    service = runtime_logging.configure_logging(
        env={}, console="off", log_dir=directory, handle_signals=False, sentry_dsn=dsn
    )
    time.sleep(STARTUP_SECONDS)
    log = service.get_logger("bench")
    clock = time.perf_counter_ns
    before, after = FIRST_ERROR_CALLS
    times = []
    for number in range(before + 1 + after):
        method = log.error if number == before else log.info
        start = clock()
        method(MESSAGE, **FIELDS)
        times.append(clock() - start)
    service.shutdown(timeout=0.5)
    usual = statistics.median(times[:before])
    later = times[before + 1 :]
    return {
        "error_us": times[before] / 1000,
        "delay_after_ms": sum(max(0.0, t - usual) for t in later) / 1e6,
        "slowest_after_ms": max(later) / 1e6,
    }


def first_errors(dsn: str, rounds: int, work: str) -> dict[str, float]:
    """`first_error` in *rounds* fresh processes: the median of each figure."""
    figures: dict[str, list[float]] = {}
    for number in range(rounds):
        directory = str(Path(work) / f"first-{number}")
        child = subprocess.run(
            [sys.executable, __file__, "--first-error", dsn, directory],
            capture_output=True,
            text=True,
            check=True,
        )
        for key, value in json.loads(child.stdout.splitlines()[-1]).items():
            figures.setdefault(key, []).append(value)
    return {key: statistics.median(values) for key, values in figures.items()}


def redaction_ns(fields: dict[str, object], repeat: int) -> float:
    policy = RedactionPolicy()
    clock = time.perf_counter_ns
    best = []
    for _ in range(5):
        start = clock()
        for _ in range(repeat):
            policy(dict(fields), 20)
        best.append((clock() - start) / repeat)
    return min(best)


def percentiles(times: list[int]) -> tuple[float, int, int, int]:
    times.sort()
    p50, p99, p999 = (times[int(f * (len(times) - 1))] for f in (0.5, 0.99, 0.999))
    return statistics.fmean(times), p50, p99, p999


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--first-error", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.first_error:  # part three's fresh process
        print(json.dumps(first_error(*args.first_error)))
        return 0

    server = subprocess.Popen(
        [sys.executable, "-c", SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdin is not None
    assert server.stdout is not None
    healthy = f"http://public@127.0.0.1:{int(server.stdout.readline())}/1"
    pooled: dict[str, list[int]] = {}
    background: dict[str, list[float]] = {}
    with hung_server() as hung, tempfile.TemporaryDirectory() as work:
        variants: dict[str, dict[str, object]] = {
            "off": {},
            "healthy": {"sentry_dsn": healthy},
            "hung": {
                "sentry_dsn": f"http://public@127.0.0.1:{hung.port}/1",
                "hung": True,
            },
            "logs": {"sentry_dsn": healthy, "sentry_logs": True},
        }
        for number in range(args.rounds):
            for variant, settings in variants.items():
                directory = Path(work) / f"{variant}-{number}"
                times, cpu_ns = trial(directory, args.calls, dict(settings))
                pooled.setdefault(variant, []).extend(times)
                if cpu_ns:
                    per_event = cpu_ns / (args.calls // 100) / 1e6
                    background.setdefault(variant, []).append(per_event)
        first = first_errors(
            f"http://public@127.0.0.1:{hung.port}/1", args.rounds, work
        )
    server.stdin.write("count\n")
    server.stdin.flush()
    events, logs = map(int, server.stdout.readline().split())
    server.wait()
    sent_to_healthy = 2 * args.rounds  # "healthy" and "logs"
    expected_events = args.calls // 100 * sent_to_healthy
    expected_logs = args.calls * args.rounds
    print(f"healthy Sentry received {events} of {expected_events} events")
    print(f"and {logs} of {expected_logs} logs", end="")
    # sentry-sdk's own log buffer drops what a burst puts past its 1000
    # waiting logs; events must all arrive.
    print(f" (sentry-sdk dropped {expected_logs - logs})" if logs else "")
    print(f"{'variant':<8} {'mean':>8} {'p50':>8} {'p99':>9} {'p99.9':>9}  (ns)")
    for variant, times in pooled.items():
        mean, p50, p99, p999 = percentiles(times)
        print(f"{variant:<8} {mean:8.0f} {p50:8d} {p99:9d} {p999:9d}")

    print("sink thread CPU per event, ms (each round; the first pays one-off work)")
    for variant, figures in background.items():
        print(f"  {variant:<8} " + " ".join(f"{ms:6.2f}" for ms in figures))

    print(
        f"first error of a process, Sentry hung (median of {args.rounds}):"
        f" the call {first['error_us']:.0f} us; the {FIRST_ERROR_CALLS[1]} calls"
        f" after it delayed {first['delay_after_ms']:.1f} ms in all, the slowest"
        f" {first['slowest_after_ms']:.2f} ms"
    )
    print("redaction step, ns per event (best of 5)")
    for name, fields in (
        ("clean", CLEAN),
        ("urls, no secret", PLAIN_URLS),
        ("secrets", SECRETS),
    ):
        print(f"  {name:<16} {redaction_ns(fields, 20_000):8.0f}")
    return 0 if events == expected_events and 0 < logs <= expected_logs else 1


if __name__ == "__main__":
    sys.exit(main())
