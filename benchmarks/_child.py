"""The work a fresh benchmark process does; run by `_processes`.

``python _child.py startup runtime|structlog LOG_DIR``
``python _child.py write LOG_DIR COUNT MAX_BYTES``
``python _child.py memory LOKI_URL COUNT``

Each prints one JSON object on its last line of stdout.
"""

from __future__ import annotations

import sys
import time

START = time.perf_counter()

import json  # noqa: E402 - the clock starts before any import


def startup(kind: str, log_dir: str) -> dict[str, object]:
    if kind == "runtime":
        import runtime_logging

        runtime_logging.configure_logging(log_dir=log_dir)
    else:
        import logging

        import orjson
        import structlog

        stream = open(f"{log_dir}/app.log", "ab")  # noqa: SIM115 - lives on
        structlog.configure(
            processors=[
                structlog.contextvars.merge_contextvars,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.JSONRenderer(serializer=orjson.dumps),
            ],
            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
            logger_factory=structlog.BytesLoggerFactory(stream),
            cache_logger_on_first_use=True,
        )
    seconds = time.perf_counter() - START
    heavy = ("sentry_sdk", "prometheus_client", "urllib3", "requests", "httpx")
    return {"seconds": seconds, "imported": [m for m in heavy if m in sys.modules]}


def write(log_dir: str, count: int, max_bytes: int) -> dict[str, object]:
    from _event import CONTEXT, FIELDS, MESSAGE

    import runtime_logging

    service = runtime_logging.configure_logging(
        env={},
        log_dir=log_dir,
        console="off",
        rotation="builtin",
        max_bytes=max_bytes,
        backup_count=100_000,
        service=CONTEXT["service"],
        environment=CONTEXT["environment"],
    )
    log = service.get_logger("bench")
    print("ready", flush=True)
    sys.stdin.readline()
    begin = time.monotonic()
    for seq in range(count):
        log.info(MESSAGE, **FIELDS, seq=seq)
    service.shutdown()
    end = time.monotonic()
    return {"begin": begin, "end": end}


def _status_bytes(field: str) -> int:
    """A size from /proc/self/status: ``VmRSS`` now, ``VmHWM`` its peak."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    return 0


def memory(loki_url: str, count: int) -> dict[str, object]:
    import runtime_logging

    service = runtime_logging.configure_logging(
        env={}, log_dir="off", console="off", loki_url=loki_url
    )
    names = [sink.name for sink in service.sinks]
    log = service.get_logger("bench")
    payload = "x" * 800
    for seq in range(100):
        log.info("Chunk downloaded", seq=seq, payload=payload)
    baseline = _status_bytes("VmRSS")
    for seq in range(count):
        log.info("Chunk downloaded", seq=seq, payload=payload)
    # Not getrusage's ru_maxrss: Linux carries the parent's peak over the
    # fork and exec that started this process, so a parent that had grown
    # (the latency section before this one) would count as growth here.
    peak = _status_bytes("VmHWM")
    health = {
        name: {"delivered": h.delivered, "dropped": h.dropped, "queued": h.queue_depth}
        for name, h in service.health().items()
    }
    cap = service.settings.loki_max_buffer_bytes
    service.shutdown(timeout=1.0)
    return {
        "sinks": names,
        "baseline": baseline,
        "peak": peak,
        "cap": cap,
        "health": health,
    }


def main() -> None:
    mode, *args = sys.argv[1:]
    if mode == "startup":
        result = startup(args[0], args[1])
    elif mode == "write":
        result = write(args[0], int(args[1]), int(args[2]))
    else:
        result = memory(args[0], int(args[1]))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
