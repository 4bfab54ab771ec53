"""The JSON-lines file: the record of last resort.

Delivery contract:

- Every line is one ``write()`` to a descriptor opened with ``O_APPEND``, so
  processes sharing the file never interleave parts of lines and a rotator
  that truncates can't leave NUL holes.
- *External* rotation (logrotate with ``create``): the sink checks every
  ``reopen_interval`` whether the path still names the file it writes, and
  on SIGHUP (a flag, read at the next write); if not, it opens the new one.
- *Built-in* rotation by size and/or time: the process that sees the file
  past its threshold takes an exclusive lock on ``<file>.lock``, checks
  again, renames the file to a time-stamped backup and opens a new one;
  every other process sees the threshold too, takes the lock, finds a new
  file and moves to it. One rotation per threshold, whoever sees it.
  Backups are gzipped and pruned to ``backup_count`` off the caller's
  thread.
- A write that fails (full disk, deleted directory, revoked permission) is
  counted as dropped, reported at a bounded rate and turns the sink
  degraded; the sink reopens (recreating directory and file) at the next
  check and turns healthy when a write succeeds again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import gzip
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from runtime_logging._pipeline import LogEvent, internal_thread
from runtime_logging.sinks import Sink

FILE_MODE = 0o640
DIR_MODE = 0o750
_INTERVALS = {"none": 0, "hourly": 3600, "daily": 86400}
_OPEN_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC


def backup_name(path: Path, when: float) -> Path:
    """The name a rotated file gets: the file's name plus the UTC rotation time."""
    stamp = dt.datetime.fromtimestamp(when, dt.timezone.utc)
    return path.with_name(f"{path.name}.{stamp:%Y%m%dT%H%M%S.%fZ}")


def log_files(path: Path) -> list[Path]:
    """The file at *path* and its backups, oldest first (what a reader wants)."""
    backups = sorted(
        p for p in path.parent.glob(path.name + ".*") if not _is_auxiliary(p)
    )
    return [*backups, path] if path.exists() else backups


def _is_auxiliary(path: Path) -> bool:
    return path.suffix in {".lock", ".tmp"}


class FileSink(Sink):
    """Appends each event's JSON line to a file; see the module for the contract."""

    name = "file"

    def __init__(
        self,
        path: str | Path,
        *,
        rotation: str = "external",
        max_bytes: int = 0,
        rotate_interval: str = "none",
        backup_count: int = 7,
        compress: bool = True,
        reopen_interval: float = 1.0,
        min_level: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Open (creating with mode 0640, directories 0750) the file at *path*."""
        super().__init__(min_level)
        self.path = Path(path)
        self.builtin = rotation == "builtin"
        self.max_bytes = max_bytes if self.builtin else 0
        self.interval = _INTERVALS[rotate_interval] if self.builtin else 0
        self.backup_count = backup_count
        self.compress = compress
        self.reopen_interval = reopen_interval
        self.rotations = 0
        self._clock = clock
        self._reopen_requested = False
        self._lock = threading.Lock()
        self._fd = -1
        self._identity = (0, 0)
        self._next_check = 0.0
        self._period_end = 0.0
        self._maintenance: list[threading.Thread] = []
        self._open()

    # --- the hot path -------------------------------------------------------

    def emit(self, event: LogEvent) -> None:
        """Append *event* as one line in one ``write()``."""
        line = event.json_line
        now = event.time_ns / 1e9
        if now >= self._next_check or self._reopen_requested or self._fd < 0:
            self._check(now)
        if (self.max_bytes and self._size_now() >= self.max_bytes) or (
            self.interval and now >= self._period_end
        ):
            self._rotate(now)
        try:
            written = os.write(self._fd, line)
            if written != len(line):
                # XXX: a short write on a regular file means the disk filled up
                # mid-line; the rest follows it, so the line is whole, not atomic.
                os.write(self._fd, line[written:])
        except OSError as error:
            self.dropped += 1
            self._failed(f"write to {self.path}", error)
            self._close_fd()
            return
        self.delivered += 1
        if self._state != "healthy":
            self._recovered()

    def _size_now(self) -> int:
        # The end of an O_APPEND file is where every process's next line goes:
        # one cheap syscall tells the shared size, with no stat of the path.
        try:
            return os.lseek(self._fd, 0, os.SEEK_END)
        except OSError:
            return 0

    # --- opening and checking -----------------------------------------------

    def _open(self) -> None:
        self.path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
        fd = os.open(self.path, _OPEN_FLAGS, FILE_MODE)
        info = os.fstat(fd)
        old, self._fd = self._fd, fd
        self._identity = (info.st_dev, info.st_ino)
        if old >= 0:
            with contextlib.suppress(OSError):
                os.close(old)
        if self.interval:
            self._period_end = self._period_after(
                info.st_mtime if info.st_size else self._clock()
            )

    def _period_after(self, when: float) -> float:
        return (int(when) // self.interval + 1) * self.interval

    def _close_fd(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _check(self, now: float) -> None:
        """Reopen when the path no longer names the file written to."""
        with self._lock:
            self._next_check = now + self.reopen_interval
            self._reopen_requested = False
            try:
                info = os.stat(self.path)
                current = (info.st_dev, info.st_ino)
            except OSError:
                current = (-1, -1)
            if current == self._identity and self._fd >= 0:
                return
            try:
                self._open()
            except OSError as error:
                self._close_fd()
                self._failed(f"open {self.path}", error)

    def request_reopen(self) -> None:
        """Reopen at the next write; safe to call from a signal handler."""
        self._reopen_requested = True

    def reopen(self) -> None:
        """Reopen the file now."""
        self._reopen_requested = True
        self._check(self._clock())

    # --- built-in rotation --------------------------------------------------

    def _rotate(self, now: float) -> None:
        with self._lock, self._rotation_lock():
            try:
                info = os.stat(self.path)
            except OSError:
                info = None
            ours = info is not None and (info.st_dev, info.st_ino) == self._identity
            due = info is not None and (
                (self.max_bytes and info.st_size >= self.max_bytes)
                or (self.interval and now >= self._period_end and info.st_size > 0)
            )
            if ours and due:
                target = backup_name(self.path, now)
                os.rename(self.path, target)
                self.rotations += 1
                self._start_maintenance(target)
            try:
                self._open()
            except OSError as error:
                self._close_fd()
                self._failed(f"open {self.path}", error)
            if self.interval and now >= self._period_end:
                self._period_end = self._period_after(now)

    @contextlib.contextmanager
    def _rotation_lock(self) -> Iterator[None]:
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _start_maintenance(self, backup: Path) -> None:
        thread = threading.Thread(
            target=self._maintain,
            args=(backup,),
            name="runtime_logging-file",
            daemon=True,
        )
        self._maintenance = [t for t in self._maintenance if t.is_alive()]
        self._maintenance.append(thread)
        thread.start()

    def _maintain(self, backup: Path) -> None:
        internal_thread.active = True
        try:
            if self.compress:
                _gzip(backup)
            self._prune()
        except OSError as error:
            self._failed(f"compress or prune {backup}", error)

    def _prune(self) -> None:
        backups = [p for p in log_files(self.path) if p != self.path]
        for old in backups[: max(0, len(backups) - self.backup_count)]:
            with contextlib.suppress(FileNotFoundError):
                old.unlink()

    # --- lifecycle ----------------------------------------------------------

    def flush(self, timeout: float | None = None) -> None:
        """Wait for compression of rotated files (writes are never buffered)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in list(self._maintenance):
            remaining = (
                None if deadline is None else max(0.0, deadline - time.monotonic())
            )
            thread.join(remaining)

    def close(self, timeout: float | None = None) -> None:
        """Finish maintenance within *timeout* and close the file."""
        self.flush(timeout)
        self._close_fd()

    def after_fork(self) -> None:
        """Give the child its own locks; the inherited descriptor stays valid."""
        super().after_fork()
        self._lock = threading.Lock()
        self._maintenance = []


def _gzip(path: Path) -> None:
    target = path.with_name(path.name + ".gz")
    temporary = path.with_name(path.name + ".gz.tmp")
    with path.open("rb") as source, gzip.open(temporary, "wb") as sink:
        shutil.copyfileobj(source, sink, 1024 * 1024)
    os.chmod(temporary, FILE_MODE)
    os.replace(temporary, target)
    path.unlink()
