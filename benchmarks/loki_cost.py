"""Caller-side cost per event with the Loki sink: off, healthy, and Loki hung.

Each variant logs the same event to a file (plus Loki when on), interleaved
over rounds; per-call times are pooled and their percentiles printed. The
healthy Loki is the strict receiver of the test suite; the hung one accepts
connections and never answers. Every pushed entry is counted at the end,
and the CPU time the sink's thread spent per 1 000 entries delivered to the
healthy one (encoding, compressing, sending) is printed.

    python benchmarks/loki_cost.py [--calls 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
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

TESTS = Path(__file__).parent.parent / "tests"
RECEIVER = f"""
import sys
sys.path.insert(0, {str(TESTS)!r})
from loki_server import LokiReceiver
receiver = LokiReceiver()
print(receiver.port, flush=True)
sys.stdin.readline()
print(receiver.entries(), flush=True)
"""


def trial(directory: Path, calls: int, loki_url: str) -> tuple[list[int], object, int]:
    """Per-call times, the sink's health, and its thread's CPU time at the end."""
    service = runtime_logging.configure_logging(
        env={},
        console="off",
        log_dir=str(directory),
        handle_signals=False,
        loki_url=loki_url,
    )
    log = service.get_logger("bench")
    clock = time.perf_counter_ns
    times = []
    for _ in range(calls):
        start = clock()
        log.info(MESSAGE, **FIELDS)
        times.append(clock() - start)
    health = service.health().get("loki")
    background = 0
    if loki_url:
        service.flush(timeout=10.0)
        background = thread_cpu_ns("runtime_logging-loki")
    service.shutdown(timeout=2.0)
    return times, health, background


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    receiver = subprocess.Popen(
        [sys.executable, "-c", RECEIVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert receiver.stdin is not None
    assert receiver.stdout is not None
    healthy = f"http://127.0.0.1:{int(receiver.stdout.readline())}"
    pooled: dict[str, list[int]] = {"off": [], "healthy": [], "hung": []}
    background: list[float] = []
    with hung_server() as hung, tempfile.TemporaryDirectory() as work:
        urls = {"off": "", "healthy": healthy, "hung": hung.url}
        for number in range(args.rounds):
            for variant, url in urls.items():
                directory = Path(work) / f"{variant}-{number}"
                times, health, cpu_ns = trial(directory, args.calls, url)
                pooled[variant].extend(times)
                if variant == "healthy":
                    background.append(cpu_ns / args.calls * 1000 / 1e6)
                if variant != "off":
                    print(f"  round {number} {variant}: {health}")
    receiver.stdin.write("count\n")
    receiver.stdin.flush()
    stored = int(receiver.stdout.readline())
    receiver.wait()
    expected = args.calls * args.rounds
    print(f"healthy Loki stored {stored} of {expected} entries")
    print(f"{'variant':<8} {'mean':>8} {'p50':>8} {'p99':>8} {'p99.9':>8}  (ns)")
    for variant, times in pooled.items():
        times.sort()
        mean = statistics.fmean(times)
        p50, p99, p999 = (times[int(f * (len(times) - 1))] for f in (0.5, 0.99, 0.999))
        print(f"{variant:<8} {mean:8.0f} {p50:8d} {p99:8d} {p999:8d}")
    print(
        "sink thread CPU per 1000 entries delivered, ms: "
        + " ".join(f"{ms:.2f}" for ms in background)
    )
    return 0 if stored == expected else 1


if __name__ == "__main__":
    sys.exit(main())
