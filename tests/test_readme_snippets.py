"""The README's snippets for configuration files, traces, noisy logs, tests."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def snippet(name):
    readme = (ROOT / "README.md").read_text()
    match = re.search(
        rf"<!-- snippet: {name} -->\n```python\n(.*?)```", readme, re.DOTALL
    )
    assert match, f"no snippet {name!r} in the README"
    return match.group(1)


def run(name, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNTIME_LOGGING")}
    result = subprocess.run(
        [sys.executable, "-c", snippet(name)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result


def json_lines(text):
    return [json.loads(line) for line in text.splitlines()]


def test_dictconfig(tmp_path):
    """One JSON line in the schema on stdout, the password redacted."""
    result = run("dictconfig", tmp_path)

    [line] = json_lines(result.stdout)
    assert (line["logger"], line["event"], line["order_id"]) == (
        "shop",
        "Order placed",
        42,
    )
    assert line["password"] == "[REDACTED:password]"
    assert result.stderr == ""


def test_trace(tmp_path):
    """The line carries the span's ids."""
    result = run("trace", tmp_path)

    [line] = json_lines(result.stderr)
    assert re.fullmatch(r"[0-9a-f]{32}", line["trace_id"])
    assert re.fullmatch(r"[0-9a-f]{16}", line["span_id"])


def test_rate_limit(tmp_path):
    """The burst, then one summary whose count is the printed one."""
    result = run("rate-limit", tmp_path)

    lines = json_lines(result.stderr)
    *passed, summary = lines
    suppressed = int(result.stdout)
    assert summary["event"] == "Log events suppressed"
    assert summary["suppressed"] == suppressed
    assert len(passed) + suppressed == 1000
    assert 20 <= len(passed) < 40
    assert {line["event"] for line in passed} == {"Cache unavailable"}


def test_testing(pytester):
    """The snippet is a passing test in a user's project."""
    pytester.makepyfile(test_checkout=snippet("testing"))

    result = pytester.runpytest_subprocess()

    result.assert_outcomes(passed=1)
