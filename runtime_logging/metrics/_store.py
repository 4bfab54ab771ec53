"""Where the counts live: in the process, and in per-pid files for pre-fork workers.

In one process the values are plain numbers read at scrape time. With a
metrics directory (prometheus_client's multiprocess mode), every update is
also written to this process's own ``<kind>_<pid>.db`` file in
prometheus_client's format, and a scrape merges the files of every process.

The directory stays bounded (client_python #275, #367, #127): the files of a
dead worker are merged into ``counter_archive.db`` and
``histogram_archive.db`` and removed, and its live-gauge files are removed by
`prometheus_client.multiprocess.mark_process_dead`. Merging and scraping
hold a lock on ``<dir>/lock`` (exclusive and shared), so a scrape never sees
a worker's counts both in its file and in the archive, or in neither: totals
never go backwards.
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import functools
import glob
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from prometheus_client.metrics_core import Metric
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.utils import floatToGoString

from runtime_logging.metrics._errors import ErrorWindow, rates_from_slots
from runtime_logging.metrics._rules import Family

ARCHIVE = "archive"
_PID_FILE = re.compile(r"(counter|histogram|gauge_live[a-z]+)_(\d+)\.db$")
_WINDOW_SUFFIX = ".slots"

Labels = tuple[str, ...]


class Recorder:
    """The values of every family, updated by the metrics sink's hot path."""

    def __init__(
        self, families: Iterable[Family], directory: Path | None, window: int
    ) -> None:
        """Hold *families*; with *directory*, also write per-pid files there."""
        self.families = tuple(families)
        self.directory = directory
        self.window = ErrorWindow(window)
        self._lock = threading.RLock()
        self._values: dict[tuple[Family, Labels], float] = {}
        self._histograms: dict[tuple[Family, Labels], list[float]] = {}
        self._files: dict[str, MmapedDict] = {}
        self._keys: dict[tuple[Family, str, Labels], tuple[MmapedDict, str]] = {}
        self._pid = os.getpid()
        self._start()

    def _start(self) -> None:
        for family in self.families:
            for labels in family.known:
                if family.kind == "histogram":
                    continue
                self.add(family, labels, 0.0)

    def after_fork(self) -> None:
        """Start this process's own values and files; the parent keeps its own."""
        self._lock = threading.RLock()
        for mapped in self._files.values():
            # The child's copy of the parent's mapping: unmap it, never write.
            with contextlib.suppress(Exception):
                mapped.close()
        self._files.clear()
        self._keys.clear()
        self._values.clear()
        self._histograms.clear()
        self.window = ErrorWindow(self.window.window)
        self._pid = os.getpid()
        self._start()

    # The hot path. The sink takes `lock` once per event and calls the
    # ``*_unlocked`` methods; the others take it themselves.

    @property
    def lock(self) -> threading.RLock:
        """The lock every update holds."""
        return self._lock

    def add(self, family: Family, labels: Labels, amount: float) -> None:
        """Add *amount* to the series *labels* of a counter or gauge."""
        with self._lock:
            self.add_unlocked(family, labels, amount)

    def observe(self, family: Family, labels: Labels, value: float) -> None:
        """Count *value* in the histogram series *labels*."""
        with self._lock:
            self.observe_unlocked(family, labels, value)

    def add_unlocked(self, family: Family, labels: Labels, amount: float) -> None:
        """`add`, while the caller holds `lock`."""
        key = (family, labels)
        value = self._values.get(key)
        if value is None:
            value = self._initial(family, family.name, labels)
        value += amount
        self._values[key] = value
        if self.directory is not None:
            self._write(family, family.name, labels, value)

    def set_unlocked(self, family: Family, labels: Labels, value: float) -> None:
        """Set the gauge series *labels* to *value*; the caller holds `lock`."""
        self._values[family, labels] = value
        if self.directory is not None:
            self._write(family, family.name, labels, value, time.time())

    def observe_unlocked(self, family: Family, labels: Labels, value: float) -> None:
        """`observe`, while the caller holds `lock`."""
        key = (family, labels)
        index = bisect.bisect_left(family.buckets, value)
        series = self._histograms.get(key)
        if series is None:
            series = self._initial_histogram(family, labels)
            self._histograms[key] = series
        series[index] += 1.0
        series[-1] += value
        if self.directory is not None:
            bucket_sample, sum_sample = _histogram_samples(family)
            bucket = _bucket_names(family)[index]
            self._write(family, bucket_sample, (*labels, bucket), series[index])
            self._write(family, sum_sample, labels, series[-1])

    def count_error_unlocked(
        self, family: Family, error_type: str, severity: str, second: int
    ) -> None:
        """Count one error in *family* and the error-rate window; holding `lock`."""
        self.add_unlocked(family, (error_type,), 1.0)
        count = self.window.add(severity, second)
        if self.directory is not None:
            slot = second % self.window.window
            mapped = self._file(f"window_{self._pid}{_WINDOW_SUFFIX}")
            mapped.write_value(f"{severity} {slot}", float(count), float(second))

    # Values in this process, and values of files.

    def _initial(self, family: Family, sample: str, labels: Labels) -> float:
        if self.directory is None:
            return 0.0
        mapped, key = self._key(family, sample, labels)
        return float(mapped.read_value(key)[0])

    def _initial_histogram(self, family: Family, labels: Labels) -> list[float]:
        buckets = _bucket_names(family)
        series = [
            self._initial(family, family.name + "_bucket", (*labels, bucket))
            for bucket in buckets
        ]
        series.append(self._initial(family, family.name + "_sum", labels))
        return series

    def _file(self, name: str) -> MmapedDict:
        mapped = self._files.get(name)
        if mapped is None:
            assert self.directory is not None
            mapped = self._files[name] = _new_file(self.directory / name)
        return mapped

    def _key(
        self, family: Family, sample: str, labels: Labels
    ) -> tuple[MmapedDict, str]:
        cached = self._keys.get((family, sample, labels))
        if cached is None:
            kind = family.kind
            prefix = f"gauge_{family.aggregate}" if kind == "gauge" else kind
            mapped = self._file(f"{prefix}_{self._pid}.db")
            names = family.labelnames
            if sample.endswith("_bucket"):
                names = (*names, "le")
            metric = (
                family.name.removesuffix("_total") if kind == "counter" else family.name
            )
            key = mmap_key(metric, sample, list(names), list(labels), family.help)
            cached = self._keys[family, sample, labels] = (mapped, key)
        return cached

    def _write(
        self,
        family: Family,
        sample: str,
        labels: Labels,
        value: float,
        timestamp: float = 0.0,
    ) -> None:
        mapped, key = self._key(family, sample, labels)
        mapped.write_value(key, value, timestamp)

    # Scrapes.

    def collect(self) -> list[Metric]:
        """Every family with its samples, merged over processes when needed."""
        if self.directory is None:
            with self._lock:
                return _families(
                    self.families,
                    dict(self._values),
                    {key: list(series) for key, series in self._histograms.items()},
                )
        compact(self.directory)
        with _locked(self.directory, fcntl.LOCK_SH):
            return list(MultiProcessCollector(None, str(self.directory)).collect())

    def error_rates(self, now: int) -> dict[str, float]:
        """Errors per second of each severity, over every process when needed."""
        if self.directory is None:
            with self._lock:
                return self.window.rates(now)
        slots: list[tuple[str, int, float]] = []
        for path in glob.glob(str(self.directory / f"window_*{_WINDOW_SUFFIX}")):
            with contextlib.suppress(FileNotFoundError, ValueError):
                slots.extend(_window_slots(path))
        return rates_from_slots(slots, now, self.window.window)

    def close(self) -> None:
        """Unmap this process's files."""
        with self._lock:
            for mapped in self._files.values():
                mapped.close()
            self._files.clear()
            self._keys.clear()


def _new_file(path: Path) -> MmapedDict:
    """Map *path*, made under another name first: a scrape never reads it empty."""
    if path.exists():
        return MmapedDict(str(path))
    # A new file is empty until MmapedDict writes its header, and a scrape in
    # another process that reads it then fails: only a whole file gets the name.
    partial = path.with_name(f".{path.name}.new")
    mapped = MmapedDict(str(partial))
    os.replace(partial, path)
    return mapped


@functools.lru_cache(maxsize=256)
def _histogram_samples(family: Family) -> tuple[str, str]:
    return family.name + "_bucket", family.name + "_sum"


@functools.lru_cache(maxsize=256)
def _bucket_names(family: Family) -> tuple[str, ...]:
    # Cached: a histogram update in a metrics directory names its bucket.
    return (*map(floatToGoString, family.buckets), "+Inf")


def _families(
    families: Iterable[Family],
    values: dict[tuple[Family, Labels], float],
    histograms: dict[tuple[Family, Labels], list[float]],
) -> list[Metric]:
    out = []
    for family in families:
        name = (
            family.name.removesuffix("_total")
            if family.kind == "counter"
            else family.name
        )
        metric = Metric(name, family.help, family.kind)
        if family.kind == "histogram":
            for (owner, labels), series in histograms.items():
                if owner is not family:
                    continue
                base = dict(zip(family.labelnames, labels, strict=True))
                running = 0.0
                for bucket, count in zip(_bucket_names(family), series, strict=False):
                    running += count
                    metric.add_sample(
                        family.name + "_bucket", {**base, "le": bucket}, running
                    )
                metric.add_sample(family.name + "_count", base, running)
                metric.add_sample(family.name + "_sum", base, series[-1])
        else:
            for (owner, labels), value in values.items():
                if owner is family:
                    metric.add_sample(
                        family.name,
                        dict(zip(family.labelnames, labels, strict=True)),
                        value,
                    )
        out.append(metric)
    return out


def _window_slots(path: str) -> Iterator[tuple[str, int, float]]:
    for key, value, second, _ in MmapedDict.read_all_values_from_file(path):
        severity = key.partition(" ")[0]
        yield severity, int(second), value


@contextlib.contextmanager
def _locked(directory: Path, mode: int) -> Iterator[None]:
    fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def compact(directory: Path) -> None:
    """Merge and remove the files of every process that is no longer running."""
    dead: set[int] = set()
    for name in os.listdir(directory):
        found = _pid_of(name)
        if found is not None:
            pid = int(found)
            if pid != os.getpid() and not _alive(pid):
                dead.add(pid)
    for pid in dead:
        merge_dead_process(pid, directory)


def _match_window(name: str) -> str | None:
    if name.startswith("window_") and name.endswith(_WINDOW_SUFFIX):
        pid = name[len("window_") : -len(_WINDOW_SUFFIX)]
        return pid if pid.isdigit() else None
    return None


def _pid_of(name: str) -> str | None:
    match = _PID_FILE.match(name)
    return match.group(2) if match else _match_window(name)


def merge_dead_process(pid: int, directory: Path) -> None:
    """Fold a dead worker's counters and histograms into the archive; drop the rest.

    Call it when a worker exits (gunicorn's ``child_exit`` hook); scrapes
    also call it for every dead process they find.
    """
    with _locked(directory, fcntl.LOCK_EX):
        for kind in ("counter", "histogram"):
            path = directory / f"{kind}_{pid}.db"
            if not path.exists():
                continue
            archive = directory / f"{kind}_{ARCHIVE}.db"
            _merge_into(archive, path)
            path.unlink()
        mark_process_dead(pid, str(directory))
        slots = directory / f"window_{pid}{_WINDOW_SUFFIX}"
        if slots.exists():
            _merge_into(directory / f"window_{ARCHIVE}{_WINDOW_SUFFIX}", slots, _newer)
            slots.unlink()


Entry = tuple[float, float]


def _add(old: Entry, new: Entry) -> Entry:
    return old[0] + new[0], 0.0


def _newer(old: Entry, new: Entry) -> Entry:
    # A slot holds one second; two seconds in one slot are a window apart, so
    # the older one is outside every window that the newer one is in.
    if old[1] == new[1]:
        return old[0] + new[0], old[1]
    return max(old, new, key=lambda entry: entry[1])


def _merge_into(
    archive: Path,
    source: Path,
    combine: Callable[[Entry, Entry], Entry] = _add,
) -> None:
    totals: dict[str, Entry] = {}
    if archive.exists():
        for key, value, stamp, _ in MmapedDict.read_all_values_from_file(str(archive)):
            totals[key] = (value, stamp)
    for key, value, stamp, _ in MmapedDict.read_all_values_from_file(str(source)):
        known = totals.get(key)
        totals[key] = (
            (value, stamp) if known is None else combine(known, (value, stamp))
        )
    # Written aside and renamed, so the archive is either old or new, never half.
    temporary = archive.with_suffix(".tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    mapped = MmapedDict(str(temporary))
    try:
        for key, (value, stamp) in totals.items():
            mapped.write_value(key, value, stamp)
    finally:
        mapped.close()
    os.replace(temporary, archive)
