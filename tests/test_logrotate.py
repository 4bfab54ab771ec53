"""The shipped logrotate configuration, run by the real logrotate (case C11)."""

from __future__ import annotations

import grp
import gzip
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from runtime_logging.config import load_settings

LOGROTATE_DIR = Path(__file__).parents[1] / "logrotate"
STANZA = LOGROTATE_DIR / "vscode_runtime"
BUILTIN = LOGROTATE_DIR / "builtin-rotation.toml"


def logrotate() -> str:
    found = shutil.which(
        "logrotate", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    )
    assert found, "logrotate is missing: `make system-tools` installs it"
    return found


def directives(text: str) -> list[str]:
    """The lines logrotate reads, without comments and blank lines."""
    return [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def stanza_for(tmp_path: Path, *, rotate: int | None = None) -> Path:
    """The shipped stanza pointed at *tmp_path*/logs, as the current user."""
    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    text = STANZA.read_text()
    replacements = [
        (r"^/var/log/vscode_runtime/\*\.log", f"{tmp_path}/logs/*.log"),
        (r"^(\s*create 0640) \S+ \S+$", rf"\1 {user} {group}"),
        (r"^(\s*su) \S+ \S+$", rf"\1 {user} {group}"),
    ]
    if rotate is not None:
        replacements.append((r"^(\s*rotate) \d+$", rf"\g<1> {rotate}"))
    for pattern, replacement in replacements:
        text, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
        assert count == 1, pattern
    (tmp_path / "logs").mkdir(mode=0o750, exist_ok=True)
    config = tmp_path / "vscode_runtime"
    config.write_text(text)
    config.chmod(0o644)
    return config


def run_logrotate(tmp_path: Path, config: Path, *flags: str) -> str:
    result = subprocess.run(
        [logrotate(), *flags, "--state", str(tmp_path / "state"), str(config)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert errors == [], result.stderr
    assert result.returncode == 0, result.stderr
    return result.stderr


class TestShippedStanza:
    def test_directives(self):
        """Daily and by size, kept, gzipped late, created 0640, never copied."""
        lines = directives(STANZA.read_text())

        assert lines[0] == "/var/log/vscode_runtime/*.log {"
        for expected in (
            "daily",
            "missingok",
            "notifempty",
            "compress",
            "delaycompress",
            "create 0640 vscode_runtime vscode_runtime",
            "su vscode_runtime vscode_runtime",
        ):
            assert expected in lines
        assert any(re.fullmatch(r"maxsize \d+[kMG]?", line) for line in lines)
        assert any(re.fullmatch(r"rotate \d+", line) for line in lines)
        assert not any("copytruncate" in line for line in lines)

    def test_debug_run_reports_no_error(self, tmp_path):
        """`logrotate -d` reads every directive and would rotate the file."""
        config = stanza_for(tmp_path)
        (tmp_path / "logs" / "app.log").write_text('{"event": "x"}\n')

        stderr = run_logrotate(tmp_path, config, "-d", "-f")

        assert f"considering log {tmp_path}/logs/app.log" in stderr
        assert "log needs rotating" in stderr

    def test_builtin_variant(self):
        """The built-in variant is valid settings and warns against both rotators."""
        settings = load_settings(BUILTIN, env={})

        assert settings.rotation == "builtin"
        assert settings.log_dir == Path("/var/log/vscode_runtime")
        assert "do not also install the logrotate stanza" in BUILTIN.read_text().lower()


WRITER = textwrap.dedent(
    """
    import os, sys, time
    from runtime_logging import configure_logging

    log_dir, stop = sys.argv[1], sys.argv[2]
    service = configure_logging(
        env={}, console="off", log_dir=log_dir, rotation="external",
        reopen_interval="20ms", handle_signals=False,
    )
    log = service.get_logger("writer")
    seq = 0
    while not os.path.exists(stop):
        log.info("tick", seq=seq)
        seq += 1
        time.sleep(0.001)
    service.shutdown()
    print(seq)
    """
)


def read_all(log_dir: Path) -> list[bytes]:
    """Every line of every file in *log_dir*, gzipped ones decompressed."""
    lines = []
    for path in sorted(log_dir.iterdir()):
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
        assert b"\0" not in data, path
        lines.extend(data.splitlines())
    return lines


@pytest.mark.slow
def test_c11_forced_rotations_while_writing(tmp_path):
    """C11: 20 forced rotations meanwhile; every line once, none torn, no NUL."""
    config = stanza_for(tmp_path, rotate=40)
    assert not any("copytruncate" in line for line in directives(config.read_text()))
    log_dir = tmp_path / "logs"
    stop = tmp_path / "stop"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(log_dir), str(stop)],
        stdout=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while (
        not (log_dir / "app.log").exists() or not (log_dir / "app.log").stat().st_size
    ):
        assert time.monotonic() < deadline, "the writer never wrote"
        time.sleep(0.01)

    for _ in range(20):
        run_logrotate(tmp_path, config, "-f")
        # Longer than reopen_interval: the writer leaves app.log.1 before the
        # next run compresses it, as it does within a day in production.
        time.sleep(0.2)
    stop.touch()
    out, _ = writer.communicate(timeout=60)

    written = int(out)
    seqs = [json.loads(line)["seq"] for line in read_all(log_dir)]
    assert writer.returncode == 0
    assert sorted(seqs) == list(range(written))
    assert len(list(log_dir.glob("app.log.*.gz"))) == 19
    assert (log_dir / "app.log.1").exists()
