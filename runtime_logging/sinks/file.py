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
  file and moves to it. One rotation per threshold, whoever sees it, and
  no lock per line. Each process holds a shared ``flock`` on the file it
  writes for as long as it writes it; the rotating process gzips a backup
  once it can lock it exclusively, that is once every writer has moved on
  (a writer checks before every line, so at most the line it had under way
  lands in the backup), or after ``LEAVE_TIMEOUT``. Backups are gzipped and
  pruned to ``backup_count`` off the caller's thread. A rotation that fails
  (a read-only directory) leaves lines going into the file past its limit
  and the sink degraded until one succeeds; it is tried at each check.
- A write that fails (full disk, deleted directory, a directory where the
  file should be) is counted as dropped, reported at a bounded rate and
  turns the sink degraded; the sink reopens (recreating directory and file)
  at the next line and turns healthy when a write succeeds again. A file
  opened ending mid-line (a line cut by a full disk, maybe by another
  process) gets a newline before the sink's first line. A file
  deleted or replaced under the writer is found at the next check and
  reported with the number of lines written to it since the previous one.
- Each line is written under the sink's lock, so no descriptor is closed (and
  handed by the OS to the application's next file) while a thread is about to
  write to it. A line reaching the sink after ``close()`` (a call under way
  while the set-up was replaced) is appended by opening the file for it alone.
- A signal handler that logs while its thread holds the lock (checking,
  rotating, closing) writes straight to the open descriptor, or leaves its
  line for the lock's holder to write: it never waits for itself.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from runtime_logging._pipeline import LogEvent, background_thread
from runtime_logging.sinks import HEALTHY, Sink

FILE_MODE = 0o640
DIR_MODE = 0o750
_INTERVALS = {"none": 0, "hourly": 3600, "daily": 86400}
_OPEN_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
_TEMPORARY_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
#: How long compression waits for the last writer to leave a backup. A writer
#: checks the file before each line, so one still holding it after this long
#: is taken for idle: it will move before it writes again. One held up this
#: long between its check and its write loses that line (the README says so);
#: waiting without a limit would keep a backup an idle process holds for ever.
LEAVE_TIMEOUT = 2.0
_OPEN_ATTEMPTS = 10
#: How long a file's end must stay mid-line to be taken for a line cut short.
FRAGMENT_WAIT = 0.01


def backup_name(path: Path, when: float) -> Path:
    """The name a rotated file gets: the file's name plus the UTC rotation time."""
    stamp = dt.datetime.fromtimestamp(when, dt.timezone.utc)
    return path.with_name(f"{path.name}.{stamp:%Y%m%dT%H%M%S.%fZ}")


#: What `backup_name` appends; nothing else beside the file is a backup.
_STAMP = r"\.\d{8}T\d{6}\.\d{6}Z"


def log_files(path: Path) -> list[Path]:
    """The file at *path* and its backups, oldest first (what a reader wants).

    Backups are the names built-in rotation gives, plain or gzipped; another
    file whose name starts alike (``app.log.audit``, ``app.log.1``) is not one.
    """
    backup = re.compile(re.escape(path.name) + _STAMP + r"(?:\.gz)?")
    try:
        names = os.listdir(path.parent)
    except FileNotFoundError:
        names = []
    backups = sorted(path.with_name(n) for n in names if backup.fullmatch(n))
    return [*backups, path] if path.exists() else backups


def _identity(info: os.stat_result) -> tuple[int, int]:
    return (info.st_dev, info.st_ino)


def _stat(path: Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None


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
        self._lock = threading.RLock()
        #: The lock's holder is checking, rotating, writing or closing.
        self._inside = False
        #: Lines a signal handler logged while no descriptor was open.
        self._pending: list[bytes] = []
        self._closed = False
        self._fd = -1
        self._identity = (0, 0)
        self._next_check = 0.0
        self._period_end = 0.0
        self._written_since_check = 0
        self._partial = False
        #: When a rotation that failed (the file grows past its limit) is
        #: tried again; the sink stays degraded until one succeeds or is no
        #: longer due. 0 when none failed. (One attribute, not a flag more:
        #: past 29 an instance's attributes are slower to read in emit.)
        self._rotation_retry = 0.0
        self._maintenance: list[threading.Thread] = []
        self._open()

    # --- the hot path -------------------------------------------------------

    def emit(self, event: LogEvent) -> None:
        """Append *event* as one line in one ``write()``."""
        line = event.json_line
        now = event.time_ns / 1e9
        # ``with``, not acquire() and try: a signal handler that raises just
        # after acquire() returned would leave the lock held for good.
        with self._lock:
            if self._inside:
                self._write_reentered(line)
                return
            self._inside = True
            try:
                fd = self._fd
                max_bytes = self.max_bytes
                if (
                    # The usual case, spelled out: the descriptor is whole and
                    # current, and no threshold is reached. The end of an
                    # O_APPEND file is where every process's next line goes:
                    # one cheap syscall tells the shared size.
                    fd < 0
                    or now >= self._next_check
                    or self._reopen_requested
                    or self._partial
                    or self._pending
                    or self._closed
                    or self._state != HEALTHY
                    or (self.interval and now >= self._period_end)
                    or (max_bytes and os.lseek(fd, 0, os.SEEK_END) >= max_bytes)
                ):
                    self._emit_checked(line, now)
                    return
                written = os.write(fd, line)
                if written != len(line):
                    self._write(line, written)
                self.delivered += 1
                self._written_since_check += 1
            except OSError as error:
                self.dropped += 1
                self._failed(f"write to {self.path}", error)
                self._close_fd()
            finally:
                self._inside = False

    def _emit_checked(self, line: bytes, now: float) -> None:
        """`emit` when the file is to be checked, rotated or mended first."""
        if self._closed:
            self._write_after_close(line)
            return
        self._append(line, now)
        if self._pending:
            self._write_pending()

    def _append(self, line: bytes, now: float) -> None:
        if now >= self._next_check or self._reopen_requested or self._fd < 0:
            self._check(now)
        if not (
            (self.max_bytes and self._size_now() >= self.max_bytes)
            or (self.interval and now >= self._period_end)
        ):
            self._rotation_retry = 0.0
        elif now >= self._rotation_retry:
            self._rotate(now)
        if self._fd < 0:
            # The file can't be opened; the check or the rotation reported why.
            self.dropped += 1
            return
        try:
            if self._partial:
                self._write(line, 0)
            else:
                # The usual case: one write, without the view a short one needs.
                written = os.write(self._fd, line)
                if written != len(line):
                    self._write(line, written)
        except OSError as error:
            self.dropped += 1
            self._failed(f"write to {self.path}", error)
            self._close_fd()
            return
        self.delivered += 1
        self._written_since_check += 1
        if self._state != "healthy" and not self._rotation_retry:
            self._recovered()

    def _write_reentered(self, line: bytes) -> None:
        """Write *line* from a signal handler that interrupted this sink's work."""
        # The interrupted code may be mid-rotation: no check, no rotation, no
        # wait; the descriptor it holds is whole, or the line waits for it.
        if self._fd >= 0 and not self._partial:
            try:
                written = os.write(self._fd, line)
            except OSError:
                pass
            else:
                if written == len(line):
                    self.delivered += 1
                    return
                line = line[written:]
        self._pending.append(line)

    def _write_pending(self) -> None:
        lines, self._pending = self._pending, []
        for line in lines:
            self._append(line, self._clock())

    def _write_after_close(self, line: bytes) -> None:
        """Append *line* to the file on its own descriptor, closed right after."""
        try:
            fd = os.open(self.path, _OPEN_FLAGS, FILE_MODE)
            try:
                if _ends_mid_line(self.path, os.fstat(fd)):
                    line = b"\n" + line
                self._write_all(fd, line)
            finally:
                os.close(fd)
        except OSError as error:
            self.dropped += 1
            self._failed(f"write to {self.path} after close", error)
        else:
            self.delivered += 1

    @staticmethod
    def _write_all(fd: int, line: bytes) -> None:
        view = memoryview(line)
        written = 0
        while written < len(view):
            written += os.write(fd, view[written:])

    def _write(self, line: bytes, written: int) -> None:
        """Write the rest of *line*, after a short or a failed write."""
        if self._partial:
            # End the line a failed write left half done, so this one parses.
            line = b"\n" + line
            written = os.write(self._fd, line)
        view = memoryview(line)
        try:
            while written < len(view):
                # Short writes to a regular file happen when the disk fills
                # mid-line: the rest follows in order, the line stays whole.
                written += os.write(self._fd, view[written:])
        except OSError:
            self._partial = True
            raise
        self._partial = False

    def _size_now(self) -> int:
        # The end of an O_APPEND file is where every process's next line goes:
        # one cheap syscall tells the shared size, with no stat of the path.
        try:
            return os.lseek(self._fd, 0, os.SEEK_END)
        except OSError:
            return 0

    # --- opening and checking -----------------------------------------------

    def _open(self) -> None:
        self.path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        for _ in range(_OPEN_ATTEMPTS):
            fd = os.open(self.path, _OPEN_FLAGS, FILE_MODE)
            if not self.builtin or _share(fd, self.path):
                break
            os.close(fd)
        else:
            raise OSError(f"{self.path} was rotated or locked {_OPEN_ATTEMPTS} times")
        info = os.fstat(fd)
        old, self._fd = self._fd, fd
        self._identity = _identity(info)
        # A line another writer left cut (a full disk) is ended before ours.
        self._partial = _ends_mid_line(self.path, info)
        if old >= 0:
            with contextlib.suppress(OSError):
                os.close(old)
        if self.interval:
            self._period_end = self._period_after(
                info.st_mtime if info.st_size else self._clock()
            )

    def _reopen(self) -> None:
        try:
            self._open()
        except OSError as error:
            self._close_fd()
            self._failed(f"open {self.path}", error)

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
            written, self._written_since_check = self._written_since_check, 0
            info = _stat(self.path)
            if self._fd >= 0:
                if info is not None and _identity(info) == self._identity:
                    return
                # Built-in rotation gzips and deletes backups once every writer
                # has left them, so there only a missing path means deletion.
                if written and (info is None or not self.builtin):
                    self._report_if_deleted(written)
            self._reopen()

    def _report_if_deleted(self, written: int) -> None:
        # A renamed file keeps its name elsewhere; a deleted one has none, and
        # the lines written since the last check went with it.
        with contextlib.suppress(OSError):
            if os.fstat(self._fd).st_nlink == 0:
                self._failed(
                    f"write to {self.path}",
                    f"the file was deleted; up to {written} line(s) written to "
                    "it since the last check are gone",
                )

    def request_reopen(self) -> None:
        """Reopen at the next write; safe to call from a signal handler."""
        self._reopen_requested = True

    def reopen(self) -> None:
        """Reopen the file now."""
        with self._lock:
            if self._closed or self._inside:
                self._reopen_requested = not self._closed
                return
            self._inside = True
            try:
                self._reopen_requested = True
                self._check(self._clock())
            finally:
                self._inside = False

    # --- built-in rotation --------------------------------------------------

    def _rotate(self, now: float) -> None:
        with self._lock:
            try:
                with self._rotation_lock():
                    if self._rotation_due(now):
                        target = self._backup_target()
                        os.rename(self.path, target)
                        self.rotations += 1
                        self._start_maintenance(target)
                    self._reopen()
            except OSError as error:
                # Lines go on into the file, past its limit, rather than
                # nowhere; the next check tries again.
                self._rotation_retry = max(now + self.reopen_interval, 1e-9)
                self._failed(f"rotate {self.path}", error)
                return
            self._rotation_retry = 0.0
            if self.interval and now >= self._period_end:
                self._period_end = self._period_after(now)

    def _rotation_due(self, now: float) -> bool:
        """Whether the file at the path is ours and past a threshold."""
        info = _stat(self.path)
        if info is None or _identity(info) != self._identity:
            return False
        return bool(
            (self.max_bytes and info.st_size >= self.max_bytes)
            or (self.interval and now >= self._period_end and info.st_size > 0)
        )

    def _backup_target(self) -> Path:
        when = self._clock()
        target = backup_name(self.path, when)
        while target.exists() or target.with_name(target.name + ".gz").exists():
            when += 1e-6
            target = backup_name(self.path, when)
        return target

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
        background_thread()
        try:
            # A process that ended mid-compression left its temporary file.
            _remove_abandoned(self.path)
            if self.compress:
                _compress(backup, LEAVE_TIMEOUT)
                # A process that ended before it compressed its backup leaves
                # the work to the next rotation, whoever does it.
                for older in self._backups():
                    if older.suffix != ".gz" and older != backup:
                        _compress(older, None)
        except OSError as error:
            self._failed(f"compress backups of {self.path}", error)
        # Pruning frees space even when compression failed for the lack of it.
        try:
            self._prune()
        except OSError as error:
            self._failed(f"prune backups of {self.path}", error)

    def _backups(self) -> list[Path]:
        return [p for p in log_files(self.path) if p != self.path]

    def _prune(self) -> None:
        # A backup seen both plain and gzipped (mid-compression) counts once.
        kept: dict[str, list[Path]] = {}
        for backup in self._backups():
            kept.setdefault(backup.name.removesuffix(".gz"), []).append(backup)
        names = sorted(kept)
        for name in names[: max(0, len(names) - self.backup_count)]:
            for old in kept[name]:
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
        with self._lock:
            if self._closed:
                return
            self._inside = True
            try:
                if self._pending:
                    self._write_pending()
                self._closed = True
                self._close_fd()
            finally:
                self._inside = False
            # A handler that logged in between still gets its line written.
            lines, self._pending = self._pending, []
            for line in lines:
                self._write_after_close(line)

    def after_fork(self) -> None:
        """Give the child its own locks; the inherited descriptor stays valid."""
        super().after_fork()
        self._lock = threading.RLock()
        self._inside = False
        self._maintenance = []


def _ends_mid_line(path: Path, info: os.stat_result) -> bool:
    """Whether the file opened as *info* ends with a line cut short.

    Read through the path (the sink's descriptor is write-only), and only
    when the path still names that file; an unreadable file counts as whole.
    """
    if info.st_size == 0:
        return False
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if _identity(os.fstat(fd)) != _identity(info):
            return False
        return _cut_short(fd)
    except OSError:
        return False
    finally:
        os.close(fd)


def _cut_short(fd: int) -> bool:
    # Another process's line grows the file a page at a time: its end may be
    # seen mid-line for a moment. A line cut short stays so; one being written
    # is ended at once, and a file written all the time has no cut line left
    # to end (the next writer's line went onto it).
    size = os.fstat(fd).st_size
    changed = time.monotonic()
    give_up = changed + FRAGMENT_WAIT * 10
    while size and os.pread(fd, 1, size - 1) != b"\n":
        now = time.monotonic()
        if now - changed >= FRAGMENT_WAIT:
            return True
        if now >= give_up:
            return False
        time.sleep(FRAGMENT_WAIT / 10)
        if (grown := os.fstat(fd).st_size) != size:
            size, changed = grown, time.monotonic()
    return False


def _share(fd: int, path: Path) -> bool:
    """Hold a shared lock on the file at *fd*: it tells rotators it is written.

    False when the file is a backup being compressed, or was rotated away
    between the open and the lock.
    """
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    info = _stat(path)
    return info is not None and _identity(info) == _identity(os.fstat(fd))


def _compress(path: Path, leave_timeout: float | None) -> None:
    """Gzip the backup at *path* once no process writes to it any more.

    A writer still holding it after *leave_timeout* seconds is idle, and
    moves before its next line: the backup is compressed all the same. With
    None, a backup still held is left for later.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    with os.fdopen(fd, "rb") as source:
        if not _writers_left(fd, leave_timeout):
            return
        info = _stat(path)
        if info is None or _identity(info) != _identity(os.fstat(fd)):
            return
        # Two threads compress one backup only when a writer outstayed the
        # timeout; each writes its own temporary file.
        target = path.with_name(path.name + ".gz")
        temporary = path.with_name(
            f"{path.name}.{os.getpid()}-{threading.get_ident()}.gz.tmp"
        )
        out = os.open(temporary, _TEMPORARY_FLAGS, FILE_MODE)
        try:
            # Locked while written: only one nobody writes is abandoned.
            fcntl.flock(out, fcntl.LOCK_EX)
            _gzip(source, out)
            os.fchmod(out, FILE_MODE)
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
            raise
        finally:
            os.close(out)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _gzip(source: BinaryIO, out: int) -> None:
    import gzip  # noqa: PLC0415 - only compressed backups need it

    with (
        open(out, "wb", closefd=False) as raw,
        gzip.GzipFile(fileobj=raw, mode="wb") as sink,
    ):
        shutil.copyfileobj(source, sink, 1024 * 1024)


def _remove_abandoned(path: Path) -> None:
    """Delete the temporary files of compressions whose process ended.

    A compression locks its temporary file while it writes it; one that can
    be locked is abandoned (the grace period covers the moment between its
    creation and its lock).
    """
    abandoned = re.compile(re.escape(path.name) + _STAMP + r"\.\d+-\d+\.gz\.tmp")
    try:
        names = os.listdir(path.parent)
    except FileNotFoundError:
        return
    for name in filter(abandoned.fullmatch, names):
        temporary = path.with_name(name)
        try:
            fd = os.open(temporary, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            info = os.fstat(fd)
            if time.time() - info.st_mtime < LEAVE_TIMEOUT:
                continue
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if _identity(info) == _identity(os.stat(temporary)):
                temporary.unlink()
        except (BlockingIOError, FileNotFoundError):
            continue
        finally:
            os.close(fd)


def _writers_left(fd: int, timeout: float | None) -> bool:
    """Whether every writer left *fd*'s file, or *timeout* passed waiting.

    An exclusive lock says it; with a *timeout* of None, only if it does now.
    """
    deadline = time.monotonic() + (timeout or 0.0)
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if timeout is None:
                return False
            if time.monotonic() >= deadline:
                return True
            time.sleep(0.005)
        else:
            return True
