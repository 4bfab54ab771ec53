"""The toolkit's own voice.

Its failures are counted and told on stderr at a bounded rate, and never fed
back into its own sinks.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import Counter

#: The toolkit's own logger, for its DEBUG diagnostics. It does not propagate,
#: so nothing it says reaches the pipeline it is talking about.
internal_logger = logging.getLogger("runtime_logging")
internal_logger.propagate = False
internal_logger.addHandler(logging.NullHandler())

#: At most this many reports of one kind reach stderr in one window.
REPORTS_PER_WINDOW = 5
WINDOW_SECONDS = 60.0


class Diagnostics:
    """Counts the pipeline's own failures and reports them on stderr."""

    def __init__(self, window: float = WINDOW_SECONDS) -> None:
        """Start with nothing counted; reports per kind are limited per *window*."""
        self.counts: Counter[str] = Counter()
        self._lock = threading.RLock()
        self._window = window
        self._window_start: dict[str, float] = {}
        self._reported: Counter[str] = Counter()
        self._suppressed: Counter[str] = Counter()

    def failure(self, kind: str, message: str) -> None:
        """Count one failure of *kind* and report it unless reports are spent."""
        now = time.monotonic()
        with self._lock:
            self.counts[kind] += 1
            start = self._window_start.get(kind)
            if start is None or now - start >= self._window:
                suppressed = self._suppressed.pop(kind, 0)
                self._window_start[kind] = now
                self._reported[kind] = 0
                if suppressed:
                    message += f" ({suppressed} more like this were not shown)"
            if self._reported[kind] >= REPORTS_PER_WINDOW:
                self._suppressed[kind] += 1
                return
            self._reported[kind] += 1
        _write_stderr(f"runtime_logging: {kind}: {message}\n")

    def reset_after_fork(self) -> None:
        """Give a forked child a lock nobody holds."""
        self._lock = threading.RLock()


def _write_stderr(text: str) -> None:
    stream = sys.stderr or sys.__stderr__
    try:
        if stream is None:
            os.write(2, text.encode("utf-8", "backslashreplace"))
        else:
            stream.write(text)
            stream.flush()
    except Exception:  # noqa: S110 - stderr itself is gone: nowhere left to say it
        pass


#: The process's diagnostics; the metrics read its counts.
diagnostics = Diagnostics()
os.register_at_fork(after_in_child=diagnostics.reset_after_fork)
