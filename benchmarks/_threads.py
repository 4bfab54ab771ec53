"""The CPU time of one of the toolkit's background threads."""

from __future__ import annotations

import threading
import time


def thread_cpu_ns(name: str) -> int:
    """CPU time so far of the live thread called *name* (0 if there is none)."""
    for thread in threading.enumerate():
        if thread.name == name and thread.ident is not None:
            return time.clock_gettime_ns(time.pthread_getcpuclockid(thread.ident))
    return 0
