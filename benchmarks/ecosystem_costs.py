"""What trace correlation and the rate limit cost per event.

    python benchmarks/ecosystem_costs.py

Prints ns per call (best of 5 repeats): the trace-id lookup with neither
OpenTelemetry nor Sentry loaded and with each loaded, each in a fresh
process, since loading is what changes the cost; then a log call through
the pipeline to a sink that renders the line, with the rate limit off, on
and letting everything through, and on and suppressing.
"""

from __future__ import annotations

import functools
import subprocess
import sys
import timeit

LOOKUP = """
import sys, timeit
from runtime_logging._trace import current_trace_ids
for name in sys.argv[1:]:
    __import__(name)
n = 500_000
best = min(timeit.repeat(current_trace_ids, number=n, repeat=5)) / n * 1e9
print(f"{best:.0f}")
"""


def lookup_costs() -> None:
    for label, modules in (
        ("neither loaded", []),
        ("opentelemetry loaded, no span", ["opentelemetry.trace"]),
        ("sentry_sdk loaded, no span", ["sentry_sdk"]),
    ):
        result = subprocess.run(
            [sys.executable, "-c", LOOKUP, *modules],
            capture_output=True,
            text=True,
            check=True,
        )
        print(f"trace lookup, {label}: {result.stdout.strip()} ns")


class Rendering:
    name = "rendering"
    min_level = 0

    def emit(self, event: object) -> None:
        event.json_line  # type: ignore[attr-defined]  # noqa: B018


def pipeline_costs() -> None:
    from runtime_logging import configure_logging, get_logger

    n = 200_000
    for label, options in (
        ("off", {}),
        ("on, passing", {"rate_limit": 1e9, "rate_limit_burst": 10**9}),
        ("on, suppressing", {"rate_limit": 0.001, "rate_limit_burst": 1}),
    ):
        service = configure_logging(
            env={},
            console="off",
            log_dir="off",
            handle_signals=False,
            sinks=[Rendering()],
            **options,
        )
        call = functools.partial(get_logger("app").info, "Cache miss", key="k", n=1)
        best = min(timeit.repeat(call, number=n, repeat=5)) / n * 1e9
        print(f"log call, rate limit {label}: {best:.0f} ns")
        service.shutdown()


if __name__ == "__main__":
    lookup_costs()
    pipeline_costs()
