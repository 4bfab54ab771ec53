"""Replacing the set-up while other threads log: no stray writes, no lost lines."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from runtime_logging import configure_logging
from runtime_logging._pipeline import LogEvent
from runtime_logging.sinks import file as file_module
from runtime_logging.sinks.file import FileSink

ROUNDS = 40


def test_reconfiguring_never_writes_into_the_applications_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logs, data = tmp_path / "logs", tmp_path / "data"
    data.mkdir()
    svc = configure_logging(log_dir=logs, console="off", handle_signals=False)
    stop = threading.Event()

    def writer() -> None:
        log = svc.get_logger("t")
        while not stop.is_set():
            log.info("x")

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for round_ in range(ROUNDS):
            configure_logging(log_dir="off", console="off", handle_signals=False)
            # The descriptor the file sink closed is the next one the OS hands out.
            with (data / f"user-{round_}.bin").open("wb") as user_file:
                user_file.write(b"USERDATA\n")
                stop.wait(0.002)
            svc = configure_logging(log_dir=logs, console="off", handle_signals=False)
    finally:
        stop.set()
        thread.join()
        svc.shutdown()
    assert [p.read_bytes() for p in sorted(data.iterdir())] == [b"USERDATA\n"] * ROUNDS
    assert "Bad file descriptor" not in capsys.readouterr().err


def test_lines_logged_while_reconfiguring_all_reach_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    svc = configure_logging(log_dir=tmp_path, console="off", handle_signals=False)
    stop = threading.Event()
    sent: list[int] = []

    def writer(number: int) -> None:
        log = svc.get_logger("t")
        i = 0
        while not stop.is_set():
            log.info("x", writer=number, i=i)
            i += 1
        sent.append(i)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(ROUNDS):
            stop.wait(0.003)
            svc = configure_logging(
                log_dir=tmp_path, console="off", handle_signals=False
            )
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        svc.shutdown()
    seen = [
        (line["writer"], line["i"])
        for line in map(json.loads, (tmp_path / "app.log").read_bytes().splitlines())
    ]
    assert len(seen) == len(set(seen)) == sum(sent)
    assert capsys.readouterr().err == ""


class _PausingOs:
    """The os module, except that the first write waits until released."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def __getattr__(self, name: str) -> object:
        return getattr(os, name)

    def write(self, fd: int, data: bytes) -> int:
        if not self.entered.is_set():
            self.entered.set()
            self.release.wait(10)
        return os.write(fd, data)


def test_close_waits_for_a_write_under_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = FileSink(tmp_path / "app.log")
    pausing = _PausingOs()
    monkeypatch.setattr(file_module, "os", pausing)
    event = LogEvent({"event": "x"}, 20, "t", time.time_ns(), None)
    writer = threading.Thread(target=sink.emit, args=(event,))
    writer.start()
    assert pausing.entered.wait(10)
    closer = threading.Thread(target=sink.close, args=(1.0,))
    closer.start()
    closer.join(0.2)
    # Opened while the write is under way: it must not get the log's descriptor.
    with (tmp_path / "user.bin").open("wb") as user_file:
        pausing.release.set()
        writer.join()
        closer.join()
        user_file.write(b"USERDATA\n")
    assert (tmp_path / "user.bin").read_bytes() == b"USERDATA\n"
    lines = (tmp_path / "app.log").read_bytes().splitlines()
    assert [json.loads(line)["event"] for line in lines] == ["x"]
    assert sink.health().delivered == 1
