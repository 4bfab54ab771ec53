"""The examples run as a user runs them, each in a fresh directory."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _run_example(name, cwd, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNTIME_LOGGING")}
    env["NO_COLOR"] = "1"
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    return result


def _file_lines(cwd):
    return [
        json.loads(line) for line in (cwd / "logs" / "app.log").read_text().splitlines()
    ]


class TestStartup:
    def test_both_call_forms_and_the_exception(self, tmp_path):
        """Both call forms give the same event; the failure carries its exception."""
        result = _run_example("startup.py", tmp_path)

        first, second, failed = _file_lines(tmp_path)
        assert result.stdout == "wrote 3 lines to logs/app.log\n"
        fields = {"installationId": "inst-0001", "moduleCount": 3, "trigger": "user"}
        for line in (first, second):
            assert line["event"] == "Installation started"
            assert {k: line[k] for k in fields} == fields
        del first["timestamp"], second["timestamp"]
        assert first == second
        assert failed["level"] == "error"
        assert failed["exception"]["type"] == "OSError"
        assert failed["exception"]["frames"][-1]["function"] == "install"

    def test_console_lines_are_plain_and_readable(self, tmp_path):
        """The console shows one line per event, no colours, the traceback indented."""
        result = _run_example("startup.py", tmp_path)

        lines = result.stderr.splitlines()
        records = [line for line in lines if not line.startswith("  | ")]
        started = (
            "INFO     [vscode_runtime.installer] Installation started "
            "installationId=inst-0001 moduleCount=3 trigger=user"
        )
        failed = (
            "ERROR    [vscode_runtime.installer] Installation failed "
            "installationId=inst-0001"
        )
        assert [re.sub(r"^\S+ \S+ ", "", line) for line in records] == [
            started,
            started,
            failed,
        ]
        assert lines[-1].startswith("  | OSError: [Errno 28] No space left on device")
        assert "\x1b[" not in result.stderr


class TestInstaller:
    def test_runs_the_demo_and_prints_its_summary(self, tmp_path):
        """The installer example runs N installations and reports the file's lines."""
        result = _run_example("installer.py", tmp_path, "3")

        lines = _file_lines(tmp_path)
        counts = re.search(
            r"installations: (\d+) success, (\d+) failure, (\d+) cancelled",
            result.stdout,
        )
        assert sum(map(int, counts.groups())) == 3
        assert f"lines written: {len(lines)} to logs/app.log" in result.stdout
        started = [line for line in lines if line["event"] == "Installation started"]
        assert len(started) == 3
