"""The installer workload, run from Python: `run_demo()` and its summary.

``python examples/installer.py [INSTALLATIONS]`` runs the demo against its own
module service on 127.0.0.1 and writes ``logs/app.log`` in the current
directory. Every setting of `configure_logging()` can be passed to
`run_demo()`: ``loki_url=...``, ``metrics_address=...``, ``level="info"``.
"""

from __future__ import annotations

import sys

from runtime_logging.demo import run_demo


def main(argv: list[str]) -> int:
    """Run the demo; exit 1 if no line reached the file."""
    installations = int(argv[0]) if argv else 4
    summary = run_demo(installations=installations, log_dir="logs", console="off")
    print(summary.render())
    return 0 if summary.lines_written else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
