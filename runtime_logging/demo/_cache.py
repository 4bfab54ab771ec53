"""The on-disk download cache, written like a library: it logs with stdlib.

Entries are the archive and a small JSON file with its expiry, kept under
the module's name and the archive's SHA-256. The cache has a quota: a write
that would take it past the quota fails the way a full disk does, with
``OSError(ENOSPC)`` from the write path, and leaves no partial file.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger("vscode_runtime.cache")

_CHUNK = 16 * 1024


class ModuleCache:
    """Downloaded archives on disk, by module and checksum, with expiry."""

    def __init__(
        self,
        directory: Path,
        quota_bytes: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """A cache in *directory* that holds at most *quota_bytes* of archives."""
        self.directory = directory
        self.quota_bytes = quota_bytes
        self._clock = clock
        self._lock = threading.Lock()
        directory.mkdir(parents=True, exist_ok=True)
        self._used = sum(path.stat().st_size for path in self._archives())

    def get(self, module: str, sha256: str) -> bytes | None:
        """The cached archive of *module* with checksum *sha256*, or None."""
        data = self._read_valid(module, sha256)
        logger.debug(
            "Cache lookup",
            # `module` is a LogRecord attribute too; the toolkit keeps the field.
            extra={"module": module, "result": "miss" if data is None else "hit"},  # noqa: G101
        )
        return data

    def put(self, module: str, sha256: str, data: bytes, max_age: float) -> bool:
        """Keep *data* for *max_age* seconds; False (and logged) when it can't."""
        path = self._archive_path(module, sha256)
        try:
            with self._lock:
                self._write(path, data)
                expiry = {"expiresAt": self._clock() + max_age, "sha256": sha256}
                path.with_suffix(".json").write_text(json.dumps(expiry))
        except OSError:
            # A full cache costs speed, not the installation: report it, make
            # room for the next write, and go on without caching this one.
            logger.exception(
                "Cache write failed",
                extra={"module": module, "path": str(path)},  # noqa: G101
            )
            self.evict_expired()
            return False
        return True

    def evict_expired(self) -> int:
        """Delete every expired entry; returns how many were deleted."""
        evicted = 0
        with self._lock:
            for archive in self._archives():
                if not self._is_valid(archive):
                    self._used -= archive.stat().st_size
                    archive.unlink()
                    archive.with_suffix(".json").unlink(missing_ok=True)
                    evicted += 1
        return evicted

    def log_state(self) -> None:
        """Log how many entries are valid and expired, and their size."""
        valid = expired = size = 0
        with self._lock:
            for archive in self._archives():
                size += archive.stat().st_size
                if self._is_valid(archive):
                    valid += 1
                else:
                    expired += 1
        logger.debug(
            "Cache state",
            extra={"validEntries": valid, "expiredEntries": expired, "sizeBytes": size},
        )

    def _read_valid(self, module: str, sha256: str) -> bytes | None:
        path = self._archive_path(module, sha256)
        with self._lock:
            if not path.exists() or not self._is_valid(path):
                return None
            data = path.read_bytes()
        # A cache file damaged on disk is a miss, not an installed corruption.
        return data if hashlib.sha256(data).hexdigest() == sha256 else None

    def _is_valid(self, archive: Path) -> bool:
        try:
            expiry = json.loads(archive.with_suffix(".json").read_text())
        except (OSError, ValueError):
            return False
        return bool(expiry.get("expiresAt", 0) > self._clock())

    def _write(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(exist_ok=True)
        partial = path.with_suffix(".part")
        written = 0
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        try:
            for start in range(0, len(data), _CHUNK):
                chunk = data[start : start + _CHUNK]
                self._check_quota(len(chunk), path)
                os.write(fd, chunk)
                self._used += len(chunk)
                written += len(chunk)
        except OSError:
            os.close(fd)
            partial.unlink()
            self._used -= written
            raise
        os.close(fd)
        if path.exists():
            self._used -= path.stat().st_size
        os.replace(partial, path)

    def _check_quota(self, size: int, path: Path) -> None:
        # The quota stands in for a full disk, and fails the same way.
        if self._used + size > self.quota_bytes:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    def _archive_path(self, module: str, sha256: str) -> Path:
        return self.directory / module / f"{sha256}.tar.gz"

    def _archives(self) -> list[Path]:
        return sorted(self.directory.glob("*/*.tar.gz"))
