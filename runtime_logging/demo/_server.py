"""The module service the installer talks to: a manifest and downloads.

It listens on 127.0.0.1 on a port the system picks, serves real gzipped
tar archives, and meets requests with the faults of a real service: answers
that never come (the client's read times out), dropped connections, 5xx
answers and corrupted bodies. Which request meets which fault is decided by
the seed, the file asked for and how often it was asked for before, never by
which of two requests in flight arrived first, so a run can be repeated.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import random
import select
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: The modules the service offers; those with ``max_age`` 0 are nightly builds
#: that must not be served from a cache.
MODULES = {
    "python-tools": 3600.0,
    "pylance": 3600.0,
    "debugpy": 3600.0,
    "jupyter": 3600.0,
    "gitlens": 3600.0,
    "docker": 3600.0,
    "eslint": 3600.0,
    "prettier": 3600.0,
    "clangd": 3600.0,
    "go-tools": 3600.0,
    "rust-analyzer": 0.0,
    "copilot-nightly": 0.0,
}

#: The faults each service can meet.
FAULT_KINDS = {
    "manifest": ("timeout", "reset", "5xx"),
    "download": ("timeout", "reset", "5xx", "corrupt"),
}

#: Faults at fixed requests (the file and how often it was asked for), so
#: that even a short run meets each kind: the first installation, which
#: downloads every module, meets the download faults.
SCRIPTED_FAULTS = {
    ("manifest", 2): "5xx",
    ("pylance", 1): "timeout",
    ("jupyter", 1): "5xx",
    ("gitlens", 1): "corrupt",
    ("prettier", 1): "reset",
}


@dataclasses.dataclass(frozen=True)
class Module:
    """One downloadable module: its archive and what the manifest says of it."""

    name: str
    version: str
    archive: bytes
    max_age: float

    @property
    def sha256(self) -> str:
        """The archive's SHA-256, as the manifest announces it."""
        return hashlib.sha256(self.archive).hexdigest()

    def manifest_entry(self) -> dict[str, Any]:
        """The module's entry in the manifest."""
        return {
            "name": self.name,
            "version": self.version,
            "sizeBytes": len(self.archive),
            "sha256": self.sha256,
            "url": f"/modules/{self.name}-{self.version}.tar.gz",
            "maxAgeSeconds": self.max_age,
        }


def build_catalog(seed: int) -> dict[str, Module]:
    """The modules of the service: small real archives, the same for one seed."""
    rng = random.Random(seed)  # noqa: S311 - repeatable test data, not a secret
    catalog = {}
    for name, max_age in MODULES.items():
        version = f"1.{rng.randint(0, 20)}.{rng.randint(0, 9)}"
        files: dict[str, str | bytes] = {
            f"{name}/package.json": json.dumps({"name": name, "version": version}),
            f"{name}/lib/{name}.bin": rng.randbytes(rng.randint(8_000, 60_000)),
        }
        catalog[name] = Module(name, version, _archive(files), max_age)
    return catalog


def _archive(files: dict[str, str | bytes]) -> bytes:
    buffer = io.BytesIO()
    # A fixed mtime keeps the archive, and so its checksum, the same per seed.
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for path, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mtime = 1_700_000_000
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class FaultPlan:
    """Which request meets which fault: scripted ones, an outage, then chance."""

    def __init__(self, seed: int, rate: float = 0.04) -> None:
        """Meet about *rate* of the requests after the scripted ones with a fault."""
        self.seed = seed
        self.rate = rate
        self.served: dict[str, int] = {}
        self.faults: dict[str, int] = {}
        self._outage: dict[str, int] = {}
        self._lock = threading.Lock()

    def start_outage(self, service: str, requests: int) -> None:
        """Answer the next *requests* requests to *service* with 503."""
        with self._lock:
            self._outage[service] = requests

    def next_fault(self, service: str, name: str) -> str | None:
        """The fault the next request to *service* for *name* meets, or None.

        *name* is the file asked for ("manifest", or a module's name).
        """
        with self._lock:
            number = self.served[name] = self.served.get(name, 0) + 1
            fault = self._decide(service, name, number)
            if fault is not None:
                self.faults[fault] = self.faults.get(fault, 0) + 1
            return fault

    def _decide(self, service: str, name: str, number: int) -> str | None:
        if self._outage.get(service, 0) > 0:
            self._outage[service] -= 1
            return "5xx"
        scripted = SCRIPTED_FAULTS.get((name, number))
        if scripted is not None:
            return scripted
        # One generator per file and request number: two downloads in flight
        # at once meet the same faults whichever of them arrives first.
        rng = random.Random(f"{self.seed}/{name}/{number}")  # noqa: S311
        if rng.random() < self.rate:
            return rng.choice(FAULT_KINDS[service])
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, catalog: dict[str, Module], plan: FaultPlan) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.catalog = catalog
        self.plan = plan
        self.stopping = threading.Event()
        self.by_url = {m.manifest_entry()["url"]: m for m in catalog.values()}

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (read timeout) leaves a broken socket behind;
        # that is the fault working, not a server bug.
        del request, client_address


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    # A request that never comes ends the connection after this, so no
    # thread waits forever.
    timeout = 30.0

    def do_GET(self) -> None:
        if self.path == "/manifest.json":
            service = name = "manifest"
            body = json.dumps(
                {"modules": [m.manifest_entry() for m in self.server.catalog.values()]}
            ).encode()
            content_type = "application/json"
        elif self.path in self.server.by_url:
            service = "download"
            name = self.server.by_url[self.path].name
            body = self.server.by_url[self.path].archive
            content_type = "application/gzip"
        else:
            self._answer(404, b"no such module\n", "text/plain")
            return

        # One connection per request: which connection a request gets, and
        # so what urllib3 logs of it, does not depend on how two requests in
        # flight overlap.
        self.close_connection = True
        fault = self.server.plan.next_fault(service, name)
        if fault == "timeout":
            self._hold()
            return
        if fault == "reset":
            return
        if fault == "5xx":
            status = 503 if self.server.plan.served[name] % 2 else 502
            self._answer(status, b"upstream unavailable\n", "text/plain")
            return
        if fault == "corrupt":
            middle = len(body) // 2
            body = body[:middle] + bytes([body[middle] ^ 0xFF]) + body[middle + 1 :]
        self._answer(200, body, content_type)

    def _hold(self) -> None:
        # A slow answer that never comes: however loaded the machine, the
        # client's read timeout is what ends it, never a late answer. The
        # client closing its end makes the socket readable.
        while not self.server.stopping.is_set():
            readable, _, _ = select.select([self.connection], [], [], 0.1)
            if readable:
                return

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
        # The service is the installer's counterpart, not part of it: its
        # access log would only be noise in the installer's log.
        del format, args


class ModuleServer:
    """The module service on 127.0.0.1, in a background thread."""

    def __init__(self, catalog: dict[str, Module], plan: FaultPlan) -> None:
        """Listen on an ephemeral port."""
        self.plan = plan
        self._server = _Server(catalog, plan)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="module-server",
            daemon=True,
        )

    @property
    def url(self) -> str:
        """The service's base URL."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> ModuleServer:
        """Start answering requests."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering, wake slow answers, and release the port."""
        self._server.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5.0)
