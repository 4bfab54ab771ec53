"""Measurements that need fresh processes: start-up, memory, shared files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _event import CONTEXT, FIELDS, CheckError, check_lines
from _hung import hung_server

CHILD = str(Path(__file__).with_name("_child.py"))


def _environment() -> dict[str, str]:
    """The caller's environment without settings that would change the set-up."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("RUNTIME_LOGGING_", "SENTRY_", "COV_CORE_"))
    }


def _last_json(output: str) -> dict[str, Any]:
    return json.loads(output.strip().splitlines()[-1])  # type: ignore[no-any-return]


def startup(kind: str, directory: Path) -> dict[str, Any]:
    """One fresh process: import and configure *kind*, timed from its first line.

    Bytecode is cached, as it is for an installed package (the installed
    structlog has its own from pip), whatever PYTHONDONTWRITEBYTECODE says;
    the caller runs each kind once untimed first.
    """
    directory.mkdir(parents=True, exist_ok=True)
    environment = _environment()
    environment.pop("PYTHONDONTWRITEBYTECODE", None)
    done = subprocess.run(
        [sys.executable, CHILD, "startup", kind, str(directory)],
        capture_output=True,
        text=True,
        env=environment,
        check=False,
        timeout=120,
    )
    if done.returncode != 0:
        raise CheckError(f"start-up of {kind} failed: {done.stderr[-2000:]}")
    return _last_json(done.stdout)


def shared_file(
    directory: Path, processes: int, count: int, max_bytes: int, *, shared: bool
) -> float:
    """Records per second of *processes* writers on one file or one file each."""
    directories = [
        directory if shared else directory / f"writer{index}"
        for index in range(processes)
    ]
    children = [
        subprocess.Popen(
            [sys.executable, CHILD, "write", str(path), str(count), str(max_bytes)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_environment(),
        )
        for path in directories
    ]
    for child in children:
        assert child.stdout is not None
        if child.stdout.readline().strip() != "ready":
            child.wait(timeout=60)
            raise CheckError(f"a writer failed to start: {child.stderr.read()}")  # type: ignore[union-attr]
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    results = []
    for child in children:
        output, errors = child.communicate(timeout=600)
        if child.returncode != 0:
            raise CheckError(f"a writer failed: {errors[-2000:]}")
        results.append(_last_json(output))
    elapsed = max(r["end"] for r in results) - min(r["begin"] for r in results)
    seen: set[tuple[int, int]] = set()

    def unique(record: Any) -> None:
        key = (record["pid"], record["seq"])
        if key in seen:
            raise CheckError(f"shared file: line {key} written twice")
        seen.add(key)

    files = sorted(
        p
        for path in set(directories)
        for p in path.iterdir()
        if p.name.startswith("app.log") and not p.name.endswith((".lock", ".tmp"))
    )
    label = "one shared file" if shared else "one file each"
    check_lines(
        f"{processes} writers, {label}",
        files,
        processes * count,
        "event",
        fields=FIELDS,
        on_line=unique,
    )
    return processes * count / elapsed


def memory(count: int) -> dict[str, Any]:
    """Peak memory growth of a process logging *count* 1 KB events, Loki hung."""
    with hung_server() as loki:
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, CHILD, "memory", loki.url, str(count)],
            capture_output=True,
            text=True,
            env=_environment(),
            check=False,
            timeout=1200,
        )
        seconds = time.monotonic() - started
    if done.returncode != 0:
        raise CheckError(f"the memory child failed: {done.stderr[-2000:]}")
    result = _last_json(done.stdout)
    result["seconds"] = seconds
    result["context"] = CONTEXT
    return result
