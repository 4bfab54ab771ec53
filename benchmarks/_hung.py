"""A TCP server on 127.0.0.1 that accepts connections and never answers."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator


class HungServer:
    """Accepts every connection, reads nothing, answers nothing."""

    def __init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.port = self._listener.getsockname()[1]
        self._held: list[socket.socket] = []
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        self._listener.settimeout(0.2)
        while not self._stopped.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(connection)

    def close(self) -> None:
        self._stopped.set()
        self._thread.join()
        self._listener.close()
        for connection in self._held:
            connection.close()


@contextlib.contextmanager
def hung_server() -> Iterator[HungServer]:
    """A `HungServer` for the ``with`` block."""
    server = HungServer()
    try:
        yield server
    finally:
        server.close()
