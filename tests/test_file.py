"""The file sink with several processes, and under faults (C9, C10)."""

from __future__ import annotations

import collections
import contextlib
import fcntl
import gzip
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from scripts import run_script

from runtime_logging._pipeline import LogEvent
from runtime_logging.sinks.file import FileSink, _compress, backup_name, log_files


def read_files(path: Path) -> list[tuple[Path, bytes]]:
    """The file at *path* and its backups, oldest first, decompressed."""
    return [
        (p, gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes())
        for p in log_files(path)
    ]


def aux_files(path: Path) -> list[str]:
    """Files beside the log that are neither the log, a backup, nor the lock."""
    known = {p.name for p in log_files(path)} | {path.name + ".lock"}
    return sorted(p.name for p in path.parent.iterdir() if p.name not in known)


C9_WRITERS = """
    import os, sys
    from runtime_logging import configure_logging
    from runtime_logging._encoding import dumps_line

    log_dir, processes, count, size = sys.argv[1], *map(int, sys.argv[2:])

    def pad_to_size(logger, method, event):
        # The fixed 'pad' key and its quotes: the rest is the pad itself.
        event["pad"] = "x" * (size - len(dumps_line(event)) - len(',"pad":""'))
        return event

    service = configure_logging(
        env={}, console="off", log_dir=log_dir, rotation="builtin",
        max_bytes="64KB", backup_count=100_000, handle_signals=False,
        service="c9", environment="test", release="1",
        processors={"fields": [pad_to_size]},
    )
    log = service.get_logger("c9")
    children = []
    for _ in range(processes):
        pid = os.fork()
        if pid == 0:
            for seq in range(count):
                log.info("line", seq=seq)
            service.shutdown()
            os._exit(0)
        children.append(pid)
    statuses = [os.waitpid(pid, 0)[1] for pid in children]
    service.shutdown()
    assert statuses == [0] * processes, statuses
    print(" ".join(map(str, children)))
"""


@pytest.mark.slow
def test_c9_several_processes_share_builtin_rotation(tmp_path):
    """C9: 4 processes, 64 KB rotation: every line once, whole, in order."""
    path = tmp_path / "logs" / "app.log"
    line_size, limit, processes, count = 200, 64_000, 4, 5000

    pids = run_script(C9_WRITERS, path.parent, processes, count, line_size).split()

    files = read_files(path)
    seen = collections.defaultdict(list)
    for _, data in files:
        for line in data.splitlines(keepends=True):
            assert len(line) == line_size, line
            fields = json.loads(line)
            seen[str(fields["pid"])].append(fields["seq"])
    # Each writer's lines, read file after file in rotation order, are in the
    # order it wrote them: no writer went back to a file once it had moved on.
    assert sorted(seen) == sorted(pids)
    for pid in pids:
        assert seen[pid] == list(range(count)), pid
    # One rotation per threshold: every backup holds one file's worth, plus
    # at most the line each writer had under way when the limit was crossed.
    backups = [(p, data) for p, data in files if p != path]
    assert all(p.suffix == ".gz" for p, _ in backups)
    assert all(
        limit <= len(data) <= limit + processes * line_size for _, data in backups
    )
    assert len(files[-1][1]) <= limit + processes * line_size
    assert len(backups) == processes * count * line_size // (limit + line_size)
    assert aux_files(path) == []


C10_POOL = """
    import multiprocessing, sys
    from runtime_logging import configure_logging

    log_dir, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    service = configure_logging(
        env={}, console="off", log_dir=log_dir, handle_signals=False
    )
    log = service.get_logger("c10")

    def write(seq):
        log.info("long", seq=seq, text=str(seq % 10) * size)

    with multiprocessing.get_context("fork").Pool(4) as pool:
        pool.map(write, range(count), chunksize=25)
        pool.close()
        pool.join()
    service.shutdown()
"""


@pytest.mark.slow
def test_c10_pool_inherits_the_parents_sink(tmp_path):
    """C10: a fork pool writes 2000 lines of 10000 characters; all whole."""
    path = tmp_path / "logs" / "app.log"

    run_script(C10_POOL, path.parent, 2000, 10_000)

    lines = path.read_bytes().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(lines) == 2000
    assert sorted(r["seq"] for r in records) == list(range(2000))
    assert all(r["text"] == str(r["seq"] % 10) * 10_000 for r in records)
    assert len({r["pid"] for r in records}) > 1


@pytest.mark.slow
def test_emit_command_with_processes_and_builtin_rotation(tmp_path):
    """`emit --processes 4 --count 50000` at 1 MB: 200000 distinct lines."""
    log_dir = tmp_path / "logs"
    command = [sys.executable, "-m", "runtime_logging", "emit"]
    command += ["--processes", "4", "--count", "50000", "--rotation", "builtin"]
    command += ["--max-bytes", "1MB", "--backup-count", "1000", "--console", "off"]
    command += ["--log-dir", str(log_dir), "--handle-signals", "false"]

    result = subprocess.run(
        command, capture_output=True, text=True, timeout=300, check=False
    )

    assert result.returncode == 0, result.stderr
    pairs = collections.Counter()
    for _, data in read_files(log_dir / "app.log"):
        for line in data.splitlines():
            fields = orjson.loads(line)
            pairs[fields["pid"], fields["seq"]] += 1
    assert len(pairs) == 200_000
    assert set(pairs.values()) == {1}
    assert len({pid for pid, _ in pairs}) == 4
    assert aux_files(log_dir / "app.log") == []


@pytest.fixture
def fresh_diagnostics(monkeypatch):
    """Failure reports counted and rate-bounded from zero for this test."""
    from runtime_logging import sinks
    from runtime_logging._diagnostics import Diagnostics

    diagnostics = Diagnostics()
    monkeypatch.setattr(sinks, "diagnostics", diagnostics)
    return diagnostics


@contextlib.contextmanager
def read_only(directory: Path):
    """No file can be made, renamed or deleted in *directory* for a while."""
    if os.geteuid() == 0:
        # Permissions don't bind root; an immutable directory does.
        subprocess.run(["chattr", "+i", directory], check=True)
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", directory], check=True)
    else:
        directory.chmod(0o555)
        try:
            yield
        finally:
            directory.chmod(0o750)


def reports(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "sink file:" in line]


class TestFaults:
    @pytest.mark.parametrize("rotation", ["external", "builtin"])
    def test_full_disk(self, make_log_file, capfd, fresh_diagnostics, rotation):
        """A full disk: lines dropped and counted, reports bounded, then recovery."""
        from runtime_logging._diagnostics import REPORTS_PER_WINDOW

        setup = make_log_file(rotation=rotation, reopen_interval=0)
        log = setup.service.get_logger("faults")
        sink = setup.service.sink("file")
        setup.path.unlink()
        setup.path.symlink_to("/dev/full")

        for seq in range(20):
            log.info("lost", seq=seq)
        during = sink.health()
        setup.path.unlink()
        log.info("kept")

        assert (during.state, during.dropped) == ("degraded", 20)
        assert during.failures >= 20
        stderr = capfd.readouterr().err
        assert "No space left on device" in stderr
        assert len(reports(stderr)) == REPORTS_PER_WINDOW
        assert sink.health().state == "healthy"
        assert [line["event"] for line in setup.lines()] == ["kept"]

    def test_deleted_directory(self, make_log_file, capfd, fresh_diagnostics):
        """A deleted directory is recreated; the lines that went with it are told."""
        setup = make_log_file(reopen_interval=0)
        log = setup.service.get_logger("faults")
        log.info("before")
        shutil.rmtree(setup.dir)

        log.info("after")

        assert [line["event"] for line in setup.lines()] == ["after"]
        assert "the file was deleted; up to 1 line(s)" in capfd.readouterr().err
        assert setup.service.sink("file").health().failures == 1
        assert stat.S_IMODE(setup.dir.stat().st_mode) == 0o750
        assert stat.S_IMODE(setup.path.stat().st_mode) == 0o640

    def test_deleted_directory_recreated_by_another_writer(
        self, tmp_path, capfd, fresh_diagnostics
    ):
        """The second writer to find it tells its lost lines too."""
        path = tmp_path / "logs" / "app.log"
        first, second = FileSink(path, reopen_interval=0), FileSink(path)
        first.emit(event(0))
        second.emit(event(1))
        shutil.rmtree(path.parent)

        first.emit(event(2))
        second.reopen()
        second.emit(event(3))
        first.close()
        second.close()

        assert seqs(path) == [2, 3]
        assert (first.failures, second.failures) == (1, 1)
        assert len(reports(capfd.readouterr().err)) == 2

    def test_directory_replaced_by_a_file(
        self, make_log_file, capfd, fresh_diagnostics
    ):
        """No directory can be made: degraded and counted until it can."""
        setup = make_log_file(reopen_interval=0)
        log = setup.service.get_logger("faults")
        sink = setup.service.sink("file")
        shutil.rmtree(setup.dir)
        setup.dir.write_text("not a directory")

        for seq in range(10):
            log.info("lost", seq=seq)
        during = sink.health()
        setup.dir.unlink()
        log.info("kept")

        assert (during.state, during.dropped) == ("degraded", 10)
        assert "open" in during.detail
        assert len(reports(capfd.readouterr().err)) == 5
        assert sink.health().state == "healthy"
        assert [line["event"] for line in setup.lines()] == ["kept"]

    def test_file_replaced_under_the_writer(
        self, make_log_file, capfd, fresh_diagnostics
    ):
        """Another file put in its place is written from the next check on."""
        setup = make_log_file(reopen_interval=0)
        log = setup.service.get_logger("faults")
        log.info("first")
        aside = setup.dir / "aside.log"
        aside.write_text("")
        os.replace(aside, setup.path)

        log.info("second")

        assert [line["event"] for line in setup.lines()] == ["second"]
        # The replaced file, and the line in it, are gone: that is told.
        assert setup.service.sink("file").health().failures == 1
        assert "up to 1 line(s)" in capfd.readouterr().err

    def test_file_renamed_under_the_writer(self, make_log_file):
        """A rotator's rename loses nothing, and nothing is reported."""
        setup = make_log_file(reopen_interval=0)
        log = setup.service.get_logger("faults")
        log.info("first")
        setup.path.rename(setup.dir / "app.log.1")
        setup.path.write_text("")

        log.info("second")

        assert [line["event"] for line in setup.lines()] == ["second"]
        assert (setup.dir / "app.log.1").read_text().count("first") == 1
        assert setup.service.sink("file").health().failures == 0

    def test_directory_where_the_file_was(
        self, make_log_file, capfd, fresh_diagnostics
    ):
        """A directory in the file's place: degraded until it is gone."""
        setup = make_log_file(reopen_interval=0)
        log = setup.service.get_logger("faults")
        sink = setup.service.sink("file")
        setup.path.unlink()
        setup.path.mkdir()

        log.info("lost")
        during = sink.health()
        setup.path.rmdir()
        log.info("kept")

        assert (during.state, during.dropped) == ("degraded", 1)
        assert "Is a directory" in capfd.readouterr().err
        assert [line["event"] for line in setup.lines()] == ["kept"]
        assert sink.health().state == "healthy"


HOUR = 3600 * 10**9


def event(seq: int, time_ns: int | None = None, **fields) -> LogEvent:
    """A finished event numbered *seq*, at *time_ns* (now when None)."""
    when = time.time_ns() if time_ns is None else time_ns
    return LogEvent({"event": "line", "seq": seq, **fields}, 20, "t", when, None)


def seqs(path: Path) -> list[int]:
    return [
        json.loads(line)["seq"]
        for _, data in read_files(path)
        for line in data.splitlines()
    ]


class TestBuiltinRotation:
    def test_by_size(self, tmp_path):
        """Past max_bytes the file is renamed, gzipped, and a new one started."""
        path = tmp_path / "app.log"
        sink = FileSink(path, rotation="builtin", max_bytes=1000, backup_count=100)

        for seq in range(100):
            sink.emit(event(seq, pad="x" * 80))
        sink.close()

        backups = [p for p in log_files(path) if p != path]
        assert seqs(path) == list(range(100))
        assert sink.rotations == len(backups) > 5
        assert all(p.suffix == ".gz" for p in backups)
        assert all(len(data) >= 1000 for p, data in read_files(path) if p != path)
        assert aux_files(path) == []

    def test_by_time_with_a_frozen_clock(self, tmp_path):
        """An event past the hour starts a new file; an empty file is kept."""
        path = tmp_path / "app.log"
        start = 1_800_000_000 // 3600 * 3600
        sink = FileSink(
            path,
            rotation="builtin",
            rotate_interval="hourly",
            compress=False,
            clock=lambda: start + 10.0,
        )

        sink.emit(event(0, (start + 10) * 10**9))
        sink.emit(event(1, (start + 20) * 10**9))
        sink.emit(event(2, (start + 10) * 10**9 + HOUR))
        sink.emit(event(3, (start + 10) * 10**9 + 3 * HOUR))
        sink.close()

        names = [p.name for p in log_files(path)]
        assert names == [
            "app.log.20270115T080010.000000Z",
            "app.log.20270115T080010.000001Z",
            "app.log",
        ]
        assert [len(data.splitlines()) for _, data in read_files(path)] == [2, 1, 1]

    def test_backup_count_and_no_compression(self, tmp_path):
        """Only the newest backup_count backups are kept."""
        path = tmp_path / "app.log"
        sink = FileSink(
            path, rotation="builtin", max_bytes=100, backup_count=2, compress=False
        )

        for seq in range(10):
            sink.emit(event(seq, pad="x" * 100))
        sink.close()

        assert sink.rotations == 9
        assert seqs(path) == [7, 8, 9]

    def test_older_uncompressed_backups_are_compressed_later(self, tmp_path):
        """A backup left plain by a process that ended is gzipped by the next."""
        path = tmp_path / "app.log"
        left = backup_name(path, 1_700_000_000)
        left.write_bytes(b'{"seq": -1}\n')
        sink = FileSink(path, rotation="builtin", max_bytes=10)

        sink.emit(event(0))
        sink.emit(event(1))
        sink.close()

        assert [p.name for p in log_files(path)] == [
            left.name + ".gz",
            log_files(path)[1].name,
            "app.log",
        ]
        assert seqs(path) == [-1, 0, 1]

    def test_a_backup_still_written_waits(self, tmp_path):
        """Compression waits for the last writer, and goes on once it is idle."""
        backup = tmp_path / "app.log.1"
        backup.write_bytes(b"line\n")
        writer = os.open(backup, os.O_WRONLY | os.O_APPEND)
        fcntl.flock(writer, fcntl.LOCK_SH)

        _compress(backup, None)
        left_alone = sorted(p.name for p in tmp_path.iterdir())
        _compress(backup, 0.05)
        os.close(writer)

        assert left_alone == ["app.log.1"]
        assert sorted(p.name for p in tmp_path.iterdir()) == ["app.log.1.gz"]
        assert gzip.decompress((tmp_path / "app.log.1.gz").read_bytes()) == b"line\n"

    def test_failed_rotation_keeps_writing(self, tmp_path, capfd, fresh_diagnostics):
        """When the lock file can't be opened, lines stay in the current file."""
        path = tmp_path / "app.log"
        sink = FileSink(path, rotation="builtin", max_bytes=10, reopen_interval=0)
        (tmp_path / "app.log.lock").mkdir()

        for seq in range(3):
            sink.emit(event(seq))
        during = sink.health()
        (tmp_path / "app.log.lock").rmdir()
        sink.emit(event(3))
        sink.close()

        assert (during.failures, during.delivered, during.dropped) == (2, 3, 0)
        assert during.state == "degraded"
        assert "rotate" in capfd.readouterr().err
        assert sink.health().state == "healthy"
        assert seqs(path) == [0, 1, 2, 3]
        assert sink.rotations == 1

    def test_read_only_directory(self, tmp_path, capfd, fresh_diagnostics):
        """Rotation impossible: lines go on into the file; degraded, and told."""
        from runtime_logging._diagnostics import REPORTS_PER_WINDOW

        path = tmp_path / "logs" / "app.log"
        sink = FileSink(path, rotation="builtin", max_bytes=100, reopen_interval=0)

        with read_only(path.parent):
            for seq in range(20):
                sink.emit(event(seq, pad="x" * 50))
            during = sink.health()
        sink.emit(event(20))
        sink.close()

        assert (during.state, during.delivered, during.dropped) == ("degraded", 20, 0)
        assert during.detail.startswith(f"rotate {path}: ")
        assert len(reports(capfd.readouterr().err)) == REPORTS_PER_WINDOW
        assert sink.health().state == "healthy"
        assert sink.rotations == 1
        assert seqs(path) == list(range(21))

    def test_only_its_own_backups_are_touched(self, tmp_path):
        """Another service's app.log.audit, or logrotate's app.log.1, stay."""
        path = tmp_path / "app.log"
        audit = FileSink(tmp_path / "app.log.audit")
        others = {
            name: (tmp_path / name).write_bytes(b'{"seq": -1}\n')
            for name in ["app.log.1", "app.log.2.gz", "app.log.old"]
        }
        sink = FileSink(path, rotation="builtin", max_bytes=100, backup_count=1)

        for seq in range(10):
            sink.emit(event(seq, pad="x" * 100))
            audit.emit(event(seq))
        sink.close()
        audit.close()

        assert seqs(tmp_path / "app.log.audit") == list(range(10))
        assert all(
            (tmp_path / name).read_bytes() == b'{"seq": -1}\n' for name in others
        )
        backup, _ = log_files(path)
        assert backup.suffix == ".gz"
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            [*others, "app.log", "app.log.audit", "app.log.lock", backup.name]
        )
        assert seqs(path) == [8, 9]


FAILED_GZIP = """
    import base64, os, resource, signal, sys
    from runtime_logging._pipeline import LogEvent
    from runtime_logging.sinks.file import FileSink, backup_name

    path = sys.argv[1]
    # A backup left plain by a process that ended; it does not compress well.
    left = backup_name(FileSink(path).path, 1_700_000_000)
    left.write_bytes(base64.b64encode(os.urandom(150_000)) + b"\\n")
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    # No file may grow past 64 KB: gzipping the old backup fails half done.
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64_000, hard))
    sink = FileSink(path, rotation="builtin", max_bytes=10)
    for seq in range(2):
        sink.emit(LogEvent({"event": "line", "seq": seq}, 20, "t", 0, None))
    sink.close()
    print(sink.health().detail)
"""


class TestCompressionLeftovers:
    def test_a_failed_gzip_leaves_no_temporary_file(self, tmp_path):
        path = tmp_path / "app.log"

        detail = run_script(FAILED_GZIP, path)

        assert "File too large" in detail
        assert not [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"]
        assert len(log_files(path)) == 3

    def test_stale_temporary_files_are_removed(self, tmp_path):
        """One a process left when it ended goes; one being written stays."""
        path = tmp_path / "app.log"
        backup = backup_name(path, 1_700_000_000)
        stale, live, other = (
            tmp_path / f"{backup.name}.4242-1.gz.tmp",
            tmp_path / f"{backup.name}.4343-1.gz.tmp",
            tmp_path / "app.log.audit.4242-1.gz.tmp",
        )
        for temporary in (stale, live, other):
            temporary.write_bytes(b"half a gzip")
            os.utime(temporary, (1_700_000_000, 1_700_000_000))
        writing = os.open(live, os.O_WRONLY)
        fcntl.flock(writing, fcntl.LOCK_EX)
        sink = FileSink(path, rotation="builtin", max_bytes=10)

        sink.emit(event(0))
        sink.emit(event(1))
        sink.close()
        os.close(writing)

        assert not stale.exists()
        assert live.read_bytes() == other.read_bytes() == b"half a gzip"


class TestExternalRotation:
    def test_reopen_after_rename(self, tmp_path):
        """reopen() moves to a new file at once; without it, at the next check."""
        path = tmp_path / "app.log"
        sink = FileSink(path, reopen_interval=3600)
        sink.emit(event(0))
        path.rename(tmp_path / "app.log.1")

        sink.emit(event(1))
        sink.reopen()
        sink.emit(event(2))
        sink.close()

        assert seqs(tmp_path / "app.log.1") == [0, 1]
        assert [json.loads(line)["seq"] for line in path.read_bytes().splitlines()] == [
            2
        ]


SHORT_WRITE = """
    import resource, signal, sys
    from runtime_logging import configure_logging

    log_dir = sys.argv[1]
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    service = configure_logging(
        env={}, console="off", log_dir=log_dir, handle_signals=False
    )
    log = service.get_logger("short")
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    # The file may not grow past 1000 bytes: the line crossing it is cut.
    resource.setrlimit(resource.RLIMIT_FSIZE, (1000, hard))
    for seq in range(10):
        log.info("line", seq=seq, pad="x" * 100)
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    for seq in range(10, 13):
        log.info("line", seq=seq)
    health = service.sink("file").health()
    print(health.delivered, health.dropped)
"""


def test_a_line_cut_by_a_full_disk_is_ended(tmp_path):
    """After a short write, the next line starts on a line of its own."""
    path = tmp_path / "logs" / "app.log"

    delivered, dropped = map(int, run_script(SHORT_WRITE, path.parent).split())

    lines = path.read_bytes().splitlines()
    parsed = []
    for line in lines:
        with contextlib.suppress(ValueError):
            parsed.append(json.loads(line)["seq"])
    assert len(lines) == len(parsed) + 1
    assert parsed[-3:] == [10, 11, 12]
    assert delivered == len(parsed)
    assert delivered + dropped == 13


class TestFragmentLeftByAnotherWriter:
    """A file ending mid-line (a line cut by a full disk) gets no line glued on."""

    def test_a_new_sink_starts_on_a_line_of_its_own(self, tmp_path):
        path = tmp_path / "app.log"
        path.write_bytes(b'{"seq": 0}\n{"seq": 1, "pad": "xx')

        sink = FileSink(path)
        sink.emit(event(2))
        sink.emit(event(3))
        sink.close()

        lines = path.read_bytes().split(b"\n")
        assert lines[:2] == [b'{"seq": 0}', b'{"seq": 1, "pad": "xx']
        assert [json.loads(line)["seq"] for line in lines[2:-1]] == [2, 3]
        assert lines[-1] == b""

    def test_a_reopened_file_is_checked_too(self, tmp_path):
        """After an external rotation the new file may hold a fragment too."""
        path = tmp_path / "app.log"
        sink = FileSink(path, reopen_interval=3600)
        sink.emit(event(0))
        path.rename(tmp_path / "app.log.1")
        path.write_bytes(b'{"seq": 1, "pad": "xx')

        sink.reopen()
        sink.emit(event(2))
        sink.close()

        assert path.read_bytes().split(b"\n")[0] == b'{"seq": 1, "pad": "xx'
        assert json.loads(path.read_bytes().split(b"\n")[1])["seq"] == 2

    def test_a_line_after_close_is_not_glued_either(self, tmp_path):
        path = tmp_path / "app.log"
        sink = FileSink(path)
        sink.close()
        path.write_bytes(b'{"seq": 0, "pad": "xx')
        line = event(1)

        sink.emit(line)

        assert path.read_bytes() == b'{"seq": 0, "pad": "xx\n' + line.json_line

    @pytest.mark.parametrize("content", [b"", b'{"seq": 0}\n'])
    def test_a_file_ending_a_line_gets_no_empty_line(self, tmp_path, content):
        path = tmp_path / "app.log"
        path.write_bytes(content)
        line = event(1)

        sink = FileSink(path)
        sink.emit(line)
        sink.close()

        assert path.read_bytes() == content + line.json_line
