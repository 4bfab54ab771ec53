"""Where the slow calls of `run.py --only latency` come from.

Part one logs the latency run's mix (one error in 1 000 calls) with the
file sink alone and with Sentry and Loki pointed at a listener that never
answers (in its own process, so that it takes no interpreter time from the
caller), the latter also with Loki's pushes put off past the run. Every
call slower than a threshold is sorted by what it met: an error, a pass of
the garbage collector on the caller's thread, a wait for the interpreter
lock (a context switch of the caller's thread), or its own CPU time with
neither (time in the kernel: waking a thread that waits for the
interpreter lock costs the waker, more so on a virtual machine).

Part two is the floor of the last two: the same `orjson.dumps` and
`os.write` per record as `run.py`'s floor, alone and with one other thread
that wakes up a given number of times per second and runs a few
microseconds of Python each time, as a sink's thread does.

    python benchmarks/latency_causes.py [--calls 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import collections
import gc
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson
from _contenders import RUNTIME_SETTINGS
from _event import FIELDS, MESSAGE

import runtime_logging

#: Calls slower than this are sorted by cause, ns.
SLOW_NS = 25_000
#: One call in this many is an error, as in `run.py`'s latency mix.
ERROR_EVERY = 1000
LISTENER = """
import selectors, socket
selector = selectors.DefaultSelector()
ports = []
for _ in range(2):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    selector.register(listener, selectors.EVENT_READ)
    ports.append(listener.getsockname()[1])
print(*ports, flush=True)
held = []
while True:
    for key, _ in selector.select():
        held.append(key.fileobj.accept()[0])
"""


class _CallsWithCollection:
    """The numbers of the calls during which the collector ran on this thread."""

    def __init__(self) -> None:
        self.call = 0
        self.calls: set[int] = set()
        self.main = threading.main_thread()

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        del info
        if phase == "start" and threading.current_thread() is self.main:
            self.calls.add(self.call)


def causes(
    directory: Path, calls: int, settings: dict[str, Any]
) -> tuple[collections.Counter[str], list[int]]:
    """The slow calls of one run by cause, and every call's time."""
    service = runtime_logging.configure_logging(
        env={}, log_dir=str(directory), **RUNTIME_SETTINGS, **settings
    )
    log = service.get_logger("bench")
    collection = _CallsWithCollection()
    gc.callbacks.append(collection)
    clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
    usage, thread = resource.getrusage, resource.RUSAGE_THREAD
    found: collections.Counter[str] = collections.Counter()
    times = []
    try:
        for number in range(calls):
            collection.call = number
            error = number % ERROR_EVERY == ERROR_EVERY - 1
            method = log.error if error else log.info
            before = usage(thread)
            cpu = cpu_clock()
            start = clock()
            method(MESSAGE, **FIELDS)
            took = clock() - start
            cpu = cpu_clock() - cpu
            after = usage(thread)
            times.append(took)
            if took < SLOW_NS:
                continue
            switched = (after.ru_nvcsw - before.ru_nvcsw) + (
                after.ru_nivcsw - before.ru_nivcsw
            )
            if error:
                found["an error"] += 1
            elif number in collection.calls:
                found["the collector"] += 1
            elif switched:
                found["a wait for the interpreter lock"] += 1
            else:
                found["own CPU time, no wait"] += 1
    finally:
        gc.callbacks.remove(collection)
        service.shutdown(timeout=0.5)
    return found, times


def floor_with_wakes(wakes_per_second: int, records: int) -> list[int]:
    """Per-record times of the floor while a thread wakes this often."""
    stop = threading.Event()

    def wake_up() -> None:
        while not stop.wait(1 / wakes_per_second):
            busy_until = time.perf_counter_ns() + 5_000
            while time.perf_counter_ns() < busy_until:
                pass

    if wakes_per_second:
        threading.Thread(target=wake_up, daemon=True).start()
    fd, path = tempfile.mkstemp()
    clock = time.perf_counter_ns
    times = []
    event = {"event": MESSAGE, **FIELDS}
    try:
        for _ in range(records):
            start = clock()
            os.write(fd, orjson.dumps(event, option=orjson.OPT_APPEND_NEWLINE))
            times.append(clock() - start)
    finally:
        stop.set()
        os.close(fd)
        os.unlink(path)
    return times


def percentiles(times: list[int]) -> str:
    ordered = sorted(times)
    last = len(ordered) - 1
    p50, p99, p999 = (ordered[round(f * last)] for f in (0.5, 0.99, 0.999))
    return f"p50 {p50:7d}  p99 {p99:7d}  p99.9 {p999:8d}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    listener = subprocess.Popen(
        [sys.executable, "-c", LISTENER], stdout=subprocess.PIPE, text=True
    )
    assert listener.stdout is not None
    sentry_port, loki_port = listener.stdout.readline().split()
    hung = {
        "sentry_dsn": f"http://public@127.0.0.1:{sentry_port}/1",
        "loki_url": f"http://127.0.0.1:{loki_port}",
    }
    variants: dict[str, dict[str, Any]] = {
        "file": {},
        "hung": hung,
        # Loki's thread pushes nothing while the calls run: its buffer takes
        # every line, and no push is due before the run ends.
        "hung, no Loki push": {
            **hung,
            "loki_batch_interval": 3600,
            "loki_batch_bytes": 10**9,
            "loki_max_buffer_bytes": 10**9,
            "loki_max_buffer_entries": 10**6,
        },
    }
    found: dict[str, collections.Counter[str]] = {}
    pooled: dict[str, list[int]] = {}
    try:
        with tempfile.TemporaryDirectory() as work:
            for number in range(args.rounds):
                for variant, settings in variants.items():
                    directory = Path(work) / f"{variant}-{number}"
                    counts, times = causes(directory, args.calls, settings)
                    found.setdefault(variant, collections.Counter()).update(counts)
                    pooled.setdefault(variant, []).extend(times)
    finally:
        listener.kill()
        listener.wait()
    print(f"calls per run {args.calls}, runs {args.rounds}; times in ns")
    for variant, times in pooled.items():
        print(f"{variant:<18} {percentiles(times)}")
        slow = sum(found[variant].values())
        print(f"  slower than {SLOW_NS} ns, per run: {slow / args.rounds:.0f}")
        for cause, count in found[variant].most_common():
            print(f"    {cause:<34} {count / args.rounds:6.0f}")
    print("floor (orjson.dumps + os.write) while another thread wakes up:")
    for wakes in (0, 100, 1000):
        times = floor_with_wakes(wakes, 10 * args.calls)
        print(f"  {wakes:5d} wake-ups a second  {percentiles(times)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
