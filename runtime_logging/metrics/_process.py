"""What a scrape reads at the moment it runs: process, disk and the toolkit's health."""

from __future__ import annotations

import contextlib
import fcntl
import os
import resource
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)

from runtime_logging._diagnostics import diagnostics
from runtime_logging.sinks import SinkHealth

STARTS_FILE = "starts"

# One start per process tree: a forked worker inherits True and does not count.
_start_counted = False


def count_start(state_dir: Path | None) -> int:
    """Record a start of the service in *state_dir*; return the restarts so far.

    A start is the first metrics set-up in a process that was not forked from
    one that already counted; the restarts are the starts before it. Without
    a state directory there is no memory of earlier starts: 0.
    """
    global _start_counted  # noqa: PLW0603 - one count per process tree
    if state_dir is None:
        return 0
    path = state_dir / STARTS_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
    except OSError:
        return 0
    with os.fdopen(fd, "r+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        text = handle.read().strip()
        starts = int(text) if text.isdigit() else 0
        if not _start_counted:
            starts += 1
            handle.seek(0)
            handle.truncate()
            handle.write(f"{starts}\n")
            _start_counted = True
    return max(0, starts - 1)


class ProcessSampler:
    """CPU share since the last scrape, memory, uptime of this process."""

    def __init__(self) -> None:
        """Start measuring CPU from now."""
        self._last = (time.monotonic(), _cpu_seconds())
        self.started = _process_start()

    def cpu_percent(self) -> float:
        """Percent of one CPU this process used since the previous call."""
        wall, cpu = time.monotonic(), _cpu_seconds()
        last_wall, last_cpu = self._last
        self._last = (wall, cpu)
        elapsed = wall - last_wall
        return 100.0 * (cpu - last_cpu) / elapsed if elapsed > 0 else 0.0


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def _process_start() -> float:
    # /proc gives the true start; elsewhere the first metrics set-up stands in.
    with contextlib.suppress(OSError, ValueError, IndexError):
        stat = Path("/proc/self/stat").read_text()
        ticks = int(stat.rpartition(")")[2].split()[19])
        boot = next(
            int(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    return time.time()


def memory_bytes() -> float:
    """Resident memory of this process (peak resident where /proc is missing)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return float(pages * os.sysconf("SC_PAGE_SIZE"))
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def health_family(prefix: str, health: Mapping[str, SinkHealth]) -> Metric:
    """``<prefix>health_status{component}``: 1 healthy, 0.5 degraded, 0 down."""
    status = GaugeMetricFamily(
        prefix + "health_status",
        "Health of each component: 1 healthy, 0.5 degraded, 0 down.",
        labels=["component"],
    )
    for name, state in health.items():
        status.add_metric([name], state.value)
    return status


def runtime_families(
    prefix: str,
    health: Mapping[str, SinkHealth],
    sampler: ProcessSampler,
    restarts: int,
    disk_paths: Iterable[Path],
    error_rates: Mapping[str, float],
) -> list[Metric]:
    """The families computed at scrape time."""
    rate = GaugeMetricFamily(
        prefix + "error_rate",
        "Errors per second over the sliding window, by severity.",
        labels=["severity"],
    )
    for severity, value in error_rates.items():
        rate.add_metric([severity], value)

    status = health_family(prefix, health)
    delivered = CounterMetricFamily(
        prefix + "log_events_delivered",
        "Events each sink delivered.",
        labels=["sink"],
    )
    dropped = CounterMetricFamily(
        prefix + "log_events_dropped",
        "Events each sink dropped (queue full, target down, write failed).",
        labels=["sink"],
    )
    failures = CounterMetricFamily(
        prefix + "log_sink_failures",
        "Delivery failures of each sink.",
        labels=["sink"],
    )
    depth = GaugeMetricFamily(
        prefix + "log_sink_queue_depth",
        "Events waiting in each sink's queue.",
        labels=["sink"],
    )
    for name, state in health.items():
        delivered.add_metric([name], state.delivered)
        dropped.add_metric([name], state.dropped)
        failures.add_metric([name], state.failures)
        depth.add_metric([name], state.queue_depth)

    internal = CounterMetricFamily(
        prefix + "log_internal_errors",
        "Failures inside the logging toolkit, by where they happened.",
        labels=["kind"],
    )
    for kind, count in sorted(diagnostics.counts.items()):
        internal.add_metric([kind], count)

    free = GaugeMetricFamily(
        prefix + "disk_free_bytes", "Bytes free for this user.", labels=["path"]
    )
    used = GaugeMetricFamily(
        prefix + "disk_used_bytes", "Bytes used on the file system.", labels=["path"]
    )
    for path in disk_paths:
        with contextlib.suppress(OSError):
            stats = os.statvfs(path)
            free.add_metric([str(path)], stats.f_bavail * stats.f_frsize)
            used.add_metric(
                [str(path)], (stats.f_blocks - stats.f_bfree) * stats.f_frsize
            )

    return [
        rate,
        status,
        delivered,
        dropped,
        failures,
        depth,
        internal,
        free,
        used,
        GaugeMetricFamily(
            prefix + "process_uptime_seconds",
            "Seconds since this process started.",
            value=max(0.0, time.time() - sampler.started),
        ),
        CounterMetricFamily(
            prefix + "process_restarts",
            "Starts of the service before this one, from the state directory.",
            value=restarts,
        ),
        GaugeMetricFamily(
            prefix + "cpu_usage_percent",
            "CPU used by this process since the previous scrape, in percent of "
            "one core.",
            value=sampler.cpu_percent(),
        ),
        GaugeMetricFamily(
            prefix + "memory_usage_bytes",
            "Resident memory of this process.",
            value=memory_bytes(),
        ),
    ]
