"""Running a test's script in a new interpreter."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run_script(script: str, *args: object, timeout: float = 120) -> str:
    """Run *script* in a new interpreter; its stdout, or the failure shown."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout
