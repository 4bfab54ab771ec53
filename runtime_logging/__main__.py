"""``python -m runtime_logging``: the same as the ``runtime-logging`` command."""

from __future__ import annotations

import sys

from runtime_logging.cli import main

sys.exit(main())
