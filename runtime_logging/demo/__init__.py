"""The reference workload: an installer that downloads and installs modules.

`run_demo()` starts a module service on 127.0.0.1 (a manifest and real
archives, with timeouts, dropped connections, 5xx answers and corrupted
bodies), and installs modules from it with urllib3: checksums, an on-disk
cache with expiry and a quota, retries with back-off, a circuit breaker per
service and a rate limiter. Every event it logs is in the README's table
"The demo's events".
"""

from __future__ import annotations

from runtime_logging.demo._run import DemoSummary, run_demo

__all__ = ["DemoSummary", "run_demo"]
