"""One run of the demo: the service, the installations, the summary."""

from __future__ import annotations

import dataclasses
import os
import random
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from runtime_logging._pipeline import LogEvent, level_name
from runtime_logging._service import configure_logging
from runtime_logging.config import ENV_PREFIX, LEVELS, load_settings
from runtime_logging.config import _from_file as read_config_file
from runtime_logging.demo._cache import ModuleCache
from runtime_logging.demo._installer import (
    InstallationCancelledError,
    Installer,
    ServiceClient,
)
from runtime_logging.demo._resilience import CircuitBreaker, DemoClock, RateLimiter
from runtime_logging.demo._server import FaultPlan, ModuleServer, build_catalog
from runtime_logging.errors import ConfigurationError
from runtime_logging.sinks import Sink

#: The demo's own defaults, below the file, the environment and keywords:
#: it shows every event of the workload, down to debug.
DEMO_DEFAULTS = {"level": "debug"}

#: Levels counted as errors in the summary.
ERROR_LEVELS = ("warning", "error", "critical")


class Tally(Sink):
    """Counts what the file receives: events by name and field, errors by level."""

    name = "demo-summary"

    def __init__(self) -> None:
        """Start with nothing counted."""
        super().__init__()
        self.lines = 0
        self.installations: Counter[str] = Counter()
        self.downloads: Counter[str] = Counter()
        self.cache: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.urllib3_loggers: Counter[str] = Counter()
        self._lock = threading.Lock()

    def emit(self, event: LogEvent) -> None:
        """Count *event*."""
        fields = event.fields
        name = fields["event"]
        with self._lock:
            self.lines += 1
            self.delivered += 1
            if event.level >= LEVELS["warning"]:
                self.errors[level_name(event.level)] += 1
            if name == "Installation finished":
                self.installations[str(fields.get("status"))] += 1
            elif name == "Download finished":
                self.downloads[str(fields.get("status"))] += 1
            elif name == "Cache lookup":
                self.cache[str(fields.get("result"))] += 1
            if event.logger.startswith("urllib3"):
                self.urllib3_loggers[event.logger] += 1


@dataclasses.dataclass(frozen=True)
class DemoSummary:
    """What a demo run did, counted from the events its log file received."""

    installations: dict[str, int]
    downloads: dict[str, int]
    cache_hits: int
    cache_misses: int
    errors: dict[str, int]
    lines_written: int
    urllib3_lines: int
    faults: dict[str, int]
    log_file: Path | None
    seconds: float

    def render(self) -> str:
        """The summary as a few lines of text for a person."""

        def counts(counter: dict[str, int], keys: tuple[str, ...]) -> str:
            return ", ".join(f"{counter.get(key, 0)} {key}" for key in keys)

        where = str(self.log_file) if self.log_file is not None else "no file"
        return "\n".join(
            [
                f"demo finished in {self.seconds:.1f}s",
                "  installations: "
                + counts(self.installations, ("success", "failure", "cancelled")),
                "  downloads:     " + counts(self.downloads, ("success", "failure")),
                f"  cache:         {self.cache_hits} hits, {self.cache_misses} misses",
                "  errors:        " + counts(self.errors, ERROR_LEVELS),
                "  faults met:    "
                + counts(self.faults, ("timeout", "reset", "5xx", "corrupt")),
                (
                    f"  lines written: {self.lines_written} to {where} "
                    f"({self.urllib3_lines} from urllib3)"
                ),
            ]
        )


def run_demo(
    config_file: str | Path | None = None,
    *,
    installations: int = 12,
    seed: int = 7,
    env: Mapping[str, str] | None = None,
    sinks: Iterable[Sink] = (),
    **settings: Any,
) -> DemoSummary:
    """Run the installer workload against a local module service; return its summary.

    Logging is configured once from *config_file*, *env* (`os.environ` when
    None), *settings* (any setting of `configure_logging()`, so Sentry, Loki
    and metrics switch on when given) and *sinks* (more sinks to deliver to),
    and shut down at the end. The demo's one default of its own is
    ``level="debug"``, so the file holds every event of the workload; the
    console then shows info and up. *seed* fixes the faults and the choice
    of modules.

    Raises:
        ConfigurationError: a setting is bad, or stdlib capture is off (the
            cache and urllib3 log through stdlib ``logging``).
    """
    env = os.environ if env is None else env
    defaults = _demo_defaults(config_file, env, settings)
    settings = {**defaults, **settings}
    if installations < 1:
        raise ConfigurationError(
            f"`installations` is {installations!r}; expected 1 or more."
        )
    resolved = load_settings(config_file, env, **settings)
    if not resolved.capture_stdlib:
        raise ConfigurationError(
            "`capture_stdlib` is False, but the demo's cache and urllib3 log "
            "through stdlib logging; leave `capture_stdlib` on for the demo."
        )

    started = time.perf_counter()
    tally = Tally()
    service = configure_logging(config_file, env=env, sinks=[tally, *sinks], **settings)
    if "level" in defaults:
        # The file takes every event; a person at the console reads info and up.
        _quiet_console(service)
    catalog = build_catalog(seed)
    plan = FaultPlan(seed)
    try:
        server = ModuleServer(catalog, plan).start()
        try:
            with tempfile.TemporaryDirectory(prefix="runtime-logging-demo-") as tmp:
                _install_all(server, catalog, Path(tmp), installations, seed)
        finally:
            server.stop()
    finally:
        service.shutdown()
    file_sink = _find(service.sinks, "file")

    return DemoSummary(
        installations=dict(tally.installations),
        downloads=dict(tally.downloads),
        cache_hits=tally.cache["hit"],
        cache_misses=tally.cache["miss"],
        errors=dict(tally.errors),
        lines_written=file_sink.delivered if file_sink is not None else 0,
        urllib3_lines=sum(tally.urllib3_loggers.values()),
        faults=dict(plan.faults),
        log_file=resolved.log_path,
        seconds=time.perf_counter() - started,
    )


def _install_all(
    server: ModuleServer,
    catalog: dict[str, Any],
    scratch: Path,
    installations: int,
    seed: int,
) -> None:
    clock = DemoClock()
    breakers = {
        name: CircuitBreaker(name, clock=clock) for name in ("manifest", "download")
    }
    limiter = RateLimiter()
    client = ServiceClient(
        server.url, breakers, in_flight=limiter.max_active, seed=seed, sleep=clock.sleep
    )
    # All archives but about half of the smallest fit: the first installation
    # fills the cache, and the nightly builds' expired entries make room.
    sizes = [len(m.archive) for m in catalog.values()]
    quota = sum(sizes) - min(sizes) // 2
    cache = ModuleCache(scratch / "cache", quota_bytes=quota)
    installer = Installer(client, cache, limiter, scratch / "installed")
    try:
        for index, (modules, trigger) in enumerate(
            _schedule(list(catalog), installations, seed)
        ):
            if index == _outage_at(installations):
                server.plan.start_outage("download", requests=3)
            # New installations wait while a circuit is open, as a scheduler
            # would; they would only fail at once.
            clock.sleep(max(b.retry_after() for b in breakers.values()))
            on_installed = _cancel_after_first if index == 1 else None
            installer.install(f"inst-{index:04d}", modules, trigger, on_installed)
    finally:
        installer.close()


def _schedule(
    names: list[str], installations: int, seed: int
) -> list[tuple[list[str], str]]:
    rng = random.Random(seed)  # noqa: S311 - a repeatable choice, not a secret
    nightly = names[-2:]
    plan: list[tuple[list[str], str]] = [(list(names), "update")]
    for index in range(1, installations):
        modules = rng.sample(names, k=rng.randint(2, 5))
        # Nightly builds are never cached, so the outage meets a download, and
        # so does the installation after it, which tries the circuit again.
        # One download each: the circuit then opens, and is tried, at the same
        # request on every run, not at whichever of two requests fails first.
        after_outage = index - _outage_at(installations)
        if after_outage in {0, 1}:
            modules = [m for m in modules if m not in nightly]
            modules.append(nightly[after_outage])
        plan.append((modules, rng.choice(("user", "schedule"))))
    return plan[:installations]


def _outage_at(installations: int) -> int:
    return max(2, installations // 2)


def _cancel_after_first(module: str) -> None:
    del module
    raise InstallationCancelledError


def _demo_defaults(
    config_file: str | Path | None, env: Mapping[str, str], settings: dict[str, Any]
) -> dict[str, Any]:
    """The demo's defaults for the settings no keyword, variable or file sets."""
    path = config_file or env.get(f"{ENV_PREFIX}CONFIG")
    in_file = set(read_config_file(Path(path))) if path else set()
    return {
        name: value
        for name, value in DEMO_DEFAULTS.items()
        if name not in settings
        and f"{ENV_PREFIX}{name.upper()}" not in env
        and name not in in_file
    }


def _quiet_console(service: Any) -> None:
    console = _find(service.sinks, "console")
    if console is not None:
        console.min_level = LEVELS["info"]


def _find(sinks: Any, name: str) -> Any:
    return next((sink for sink in sinks if sink.name == name), None)
