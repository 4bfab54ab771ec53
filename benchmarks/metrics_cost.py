"""Cost per event of the metrics step: the sink alone, and the whole call.

The sink alone: `MetricsSink.emit` on finished events (an info event no rule
reads, a reference event four rules read, an error with an exception), in
one process and with a multiprocess directory. The whole call: the same
info event logged to a file with metrics off and on, interleaved over rounds,
in CPU time.
Medians in ns per event. The counts are checked after each run.

    python benchmarks/metrics_cost.py [--events 100000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import orjson
from _event import FIELDS, MESSAGE

import runtime_logging
from runtime_logging.config import load_settings
from runtime_logging.metrics import MetricsSink
from runtime_logging.testing import CaptureSink

REFERENCE = {
    "installationId": "inst-0007",
    "status": "success",
    "durationSeconds": 2.5,
    "moduleCount": 3,
    "modulesInstalled": 3,
}


def finished_events() -> dict[str, object]:
    """One finished event of each kind, as the fan-out hands them to sinks."""
    capture = CaptureSink()
    service = runtime_logging.configure_logging(
        env={}, console="off", log_dir="off", handle_signals=False, sinks=[capture]
    )
    log = service.get_logger("vscode_runtime.installer")
    log.info(MESSAGE, **FIELDS)
    log.info("Installation finished", **REFERENCE)
    log.warning(
        "Network error",
        service="download",
        errorKind="connection",
        exc_info=ConnectionResetError(104, "reset by peer"),
    )
    service.shutdown()
    return dict(zip(("info", "reference", "error"), capture.events, strict=True))


def floor(events: dict[str, object], count: int) -> float:
    """orjson.dumps of the same event's fields: a unit that load slows alike."""
    fields = events["reference"].fields  # type: ignore[attr-defined]
    dumps = orjson.dumps
    start = time.perf_counter_ns()
    for _ in range(count):
        dumps(fields)
    return (time.perf_counter_ns() - start) / count


def sink_alone(events: dict[str, object], count: int, directory: Path | None) -> dict:
    settings = load_settings(
        env={}, metrics=True, metrics_address="off", metrics_dir=directory
    )
    results = {}
    for name, event in events.items():
        sink = MetricsSink(settings)
        emit = sink.emit
        start = time.perf_counter_ns()
        for _ in range(count):
            emit(event)  # type: ignore[arg-type]
        results[name] = (time.perf_counter_ns() - start) / count
        assert sink.delivered == count, (name, sink.delivered)
        sink.close()
    return results


def whole_call(directory: Path, count: int, metrics: bool) -> float:
    service = runtime_logging.configure_logging(
        env={},
        console="off",
        log_dir=str(directory),
        handle_signals=False,
        rotation="builtin",
        metrics=metrics,
        metrics_address="off",
    )
    log = service.get_logger("bench")
    # CPU time of this process: on a shared machine, wall time mostly
    # measures the neighbours.
    start = time.process_time_ns()
    for _ in range(count):
        log.info(MESSAGE, **FIELDS)
    elapsed = (time.process_time_ns() - start) / count
    service.shutdown()
    lines = (directory / "app.log").read_bytes().count(b"\n")
    assert lines == count, lines
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    events = finished_events()
    alone: dict[str, list[float]] = {}
    calls: dict[str, list[float]] = {"metrics off": [], "metrics on": []}
    floors: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for number in range(args.rounds):
            floors.append(floor(events, args.events))
            for mode, directory in (
                ("one process", None),
                ("multiprocess", Path(tmp) / f"mp{number}"),
            ):
                for name, ns in sink_alone(events, args.events, directory).items():
                    alone.setdefault(f"{mode:13} {name}", []).append(ns)
            for label, metrics in (("metrics off", False), ("metrics on", True)):
                directory = Path(tmp) / f"{label.replace(' ', '-')}{number}"
                calls[label].append(whole_call(directory, args.events, metrics))

    unit = statistics.median(floors)
    print(f"orjson.dumps of the event (the unit): {unit:.0f} ns")
    print(
        f"MetricsSink.emit alone, ns per event and in units (median of {args.rounds}):"
    )
    for name, values in alone.items():
        median = statistics.median(values)
        print(f"  {name:28} {median:8.0f} {median / unit:6.1f}")
    print("whole logging call to a file, CPU ns per event:")
    for name, values in calls.items():
        print(f"  {name:28} {statistics.median(values):8.0f}")
    difference = statistics.median(calls["metrics on"]) - statistics.median(
        calls["metrics off"]
    )
    print(f"  {'difference':28} {difference:8.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
