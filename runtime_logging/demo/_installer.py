"""The installer: fetch the manifest, download what the cache lacks, unpack.

The service's own code, logging through structlog: every call passes the
same pipeline as urllib3's stdlib records and the cache's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import random
import tarfile
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path, PurePosixPath
from typing import Any

import urllib3

from runtime_logging import ContextExecutor, bound_context, get_logger
from runtime_logging.demo._cache import ModuleCache
from runtime_logging.demo._resilience import (
    ChecksumMismatchError,
    CircuitBreaker,
    CircuitOpenError,
    RateLimiter,
    RateLimitRejectedError,
    ServerError,
)

network_log = get_logger("vscode_runtime.network")
download_log = get_logger("vscode_runtime.downloader")
installer_log = get_logger("vscode_runtime.installer")

_RETRYABLE = (urllib3.exceptions.HTTPError, ServerError, ChecksumMismatchError)


class InstallationError(Exception):
    """Some of an installation's modules could not be installed."""


class InstallationCancelledError(Exception):
    """The installation was cancelled before all its modules were installed."""


@dataclasses.dataclass(frozen=True)
class ManifestEntry:
    """What the manifest says of one module."""

    name: str
    version: str
    size_bytes: int
    sha256: str
    url: str
    max_age: float


class ServiceClient:
    """HTTP to the module service: one attempt at a time, logged, with retries."""

    def __init__(
        self,
        base_url: str,
        breakers: dict[str, CircuitBreaker],
        *,
        attempts: int = 4,
        backoff_seconds: float = 0.05,
        connect_timeout: float = 2.0,
        read_timeout: float = 3.0,
        in_flight: int = 2,
        seed: int = 0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Talk to *base_url*, each service behind its breaker in *breakers*.

        At most *in_flight* requests run at once; *sleep* waits out back-off.
        """
        self.base_url = base_url
        self.breakers = breakers
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds
        self.seed = seed
        self._sleep = sleep
        # Retries are ours, so that each attempt is seen and logged. A
        # connection per request in flight: none is ever discarded.
        self.http = urllib3.PoolManager(
            maxsize=in_flight,
            retries=False,
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
        )

    def get(
        self,
        service: str,
        path: str,
        check: Callable[[bytes], None] | None = None,
    ) -> bytes:
        """The body of *path*, retried with back-off; *check* may reject it."""
        for attempt in range(1, self.attempts):
            try:
                return self._checked(service, path, attempt, check)
            except (*_RETRYABLE, CircuitOpenError) as error:
                # An open circuit fails fast; a half-open one is busy testing
                # the service, which is worth waiting for.
                if isinstance(error, CircuitOpenError) and not error.trial_in_flight:
                    raise
            delay = self._delay(path, attempt)
            network_log.info(
                "Retrying request",
                service=service,
                attempt=attempt + 1,
                delaySeconds=delay,
            )
            self._sleep(delay)
        return self._checked(service, path, self.attempts, check)

    def close(self) -> None:
        """Close every pooled connection."""
        self.http.clear()

    def _checked(
        self,
        service: str,
        path: str,
        attempt: int,
        check: Callable[[bytes], None] | None,
    ) -> bytes:
        body = self._attempt(service, path, attempt)
        if check is not None:
            check(body)
        return body

    def _attempt(self, service: str, path: str, attempt: int) -> bytes:
        breaker = self.breakers[service]
        breaker.before_request()
        start = time.perf_counter()
        status: int | None = None
        try:
            response = self.http.request("GET", self.base_url + path)
            status = response.status
            _raise_for_status(service, status)
        except (urllib3.exceptions.HTTPError, ServerError) as error:
            self._report(service, "failure", status, start)
            network_log.warning(
                "Network error",
                service=service,
                errorKind=_error_kind(error),
                attempt=attempt,
                exc_info=error,
            )
            breaker.record_failure()
            raise
        self._report(service, "success", status, start)
        breaker.record_success()
        return response.data

    def _report(
        self, service: str, status: str, status_code: int | None, start: float
    ) -> None:
        fields: dict[str, Any] = {"service": service, "status": status}
        if status_code is not None:
            fields["statusCode"] = status_code
        fields["durationSeconds"] = round(time.perf_counter() - start, 6)
        network_log.debug("Network request", **fields)

    def _delay(self, path: str, attempt: int) -> float:
        # The jitter depends on the request, not on which thread drew first.
        rng = random.Random(f"{self.seed}/{path}/{attempt}")  # noqa: S311 - jitter
        return round(
            self.backoff_seconds * 2.0 ** (attempt - 1) * rng.uniform(0.5, 1.5), 3
        )


class Installer:
    """Installs modules: manifest, cache, downloads, checksums, unpacking."""

    def __init__(
        self,
        client: ServiceClient,
        cache: ModuleCache,
        limiter: RateLimiter,
        install_root: Path,
    ) -> None:
        """Install into *install_root* what *client* serves, through *cache*."""
        self.client = client
        self.cache = cache
        self.limiter = limiter
        self.install_root = install_root
        self._workers = ContextExecutor(
            max_workers=limiter.max_active + limiter.max_queued,
            thread_name_prefix="download",
        )

    def close(self) -> None:
        """Stop the download workers and close connections."""
        self._workers.shutdown(wait=True)
        self.client.close()

    def install(
        self,
        installation_id: str,
        modules: list[str],
        trigger: str,
        on_installed: Callable[[str], None] | None = None,
    ) -> str:
        """Install *modules*; returns the status ("success", "failure", "cancelled").

        *on_installed* is called after each module (a user may cancel then,
        by raising `InstallationCancelledError` from it).
        """
        start = time.perf_counter()
        outcome = _Outcome(on_installed)
        with bound_context(installationId=installation_id):
            fields = {
                "installationId": installation_id,
                "moduleCount": len(modules),
            }
            installer_log.info("Installation started", {**fields, "trigger": trigger})
            failure: Exception | None = None
            try:
                self._install(installation_id, modules, outcome)
                status = "success"
            except InstallationCancelledError:
                status = "cancelled"
            except Exception as error:
                status, failure = "failure", error
            installer_log.log(
                logging.INFO if failure is None else logging.ERROR,
                "Installation finished",
                status=status,
                durationSeconds=_since(start),
                modulesInstalled=outcome.installed,
                exc_info=failure,
                **fields,
            )
            self.cache.log_state()
        return status

    def _install(
        self, installation_id: str, modules: list[str], outcome: _Outcome
    ) -> None:
        manifest = self._manifest()
        entries = [manifest[name] for name in modules]
        missing = []
        for entry in entries:
            data = self.cache.get(entry.name, entry.sha256)
            if data is None:
                missing.append(entry)
            else:
                self._unpack(installation_id, entry, data, outcome)
                outcome.raise_if_cancelled()
        while missing:
            missing = self._download_batch(installation_id, missing, outcome)
        if outcome.failures:
            name, first = outcome.failures[0]
            raise InstallationError(
                f"{len(outcome.failures)} of {len(entries)} modules failed, "
                f"first {name!r}"
            ) from first

    def _manifest(self) -> dict[str, ManifestEntry]:
        self.limiter.reserve("manifest")
        with self.limiter.active():
            body = self.client.get("manifest", "/manifest.json")
        entries = (
            ManifestEntry(
                m["name"],
                m["version"],
                m["sizeBytes"],
                m["sha256"],
                m["url"],
                m["maxAgeSeconds"],
            )
            for m in json.loads(body)["modules"]
        )
        return {entry.name: entry for entry in entries}

    def _download_batch(
        self, installation_id: str, entries: list[ManifestEntry], outcome: _Outcome
    ) -> list[ManifestEntry]:
        # Every reservation is made before any download starts, so the queue
        # is full at the same point on every run.
        admitted, rejected = [], []
        for entry in entries:
            try:
                self.limiter.reserve("download")
            except RateLimitRejectedError:
                rejected.append(entry)
            else:
                admitted.append(entry)
        futures: list[Future[bytes]] = [
            self._workers.submit(self._download, installation_id, entry)
            for entry in admitted
        ]
        # The downloads run side by side; what comes after them (the cache,
        # the unpacking, a cancellation) goes in the manifest's order, so
        # which download ended first changes nothing. Every worker ends before
        # the installation does, so no line of it comes after its
        # "Installation finished".
        for entry, future in zip(admitted, futures, strict=True):
            try:
                data = future.result()
            except Exception as error:
                outcome.failed(entry.name, error)
                continue
            self.cache.put(entry.name, entry.sha256, data, entry.max_age)
            self._unpack(installation_id, entry, data, outcome)
        outcome.raise_if_cancelled()
        return rejected

    def _download(self, installation_id: str, entry: ManifestEntry) -> bytes:
        with self.limiter.active(), bound_context(module=entry.name):
            start = time.perf_counter()
            fields = {"installationId": installation_id, "module": entry.name}
            try:
                data = self.client.get(
                    "download",
                    entry.url,
                    lambda body: _verify(installation_id, entry, body),
                )
            except Exception:
                download_log.exception(
                    "Download finished",
                    status="failure",
                    sizeBytes=0,
                    durationSeconds=_since(start),
                    **fields,
                )
                raise
            download_log.info(
                "Download finished",
                status="success",
                sizeBytes=len(data),
                durationSeconds=_since(start),
                **fields,
            )
        return data

    def _unpack(
        self,
        installation_id: str,
        entry: ManifestEntry,
        data: bytes,
        outcome: _Outcome,
    ) -> None:
        if outcome.cancelled:
            return
        target = self.install_root / installation_id
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            for member in archive.getmembers():
                name = PurePosixPath(member.name)
                # Only plain files under the module's own folder are written.
                if not member.isfile() or name.is_absolute() or ".." in name.parts:
                    continue
                source = archive.extractfile(member)
                if source is None:
                    continue
                path = target.joinpath(*name.parts)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(source.read())
        outcome.module_installed(entry.name)


class _Outcome:
    """What happened to an installation's modules, in the installation's order."""

    def __init__(self, on_installed: Callable[[str], None] | None) -> None:
        self.installed = 0
        self.failures: list[tuple[str, BaseException]] = []
        self.cancelled = False
        self._on_installed = on_installed

    def module_installed(self, name: str) -> None:
        self.installed += 1
        if self._on_installed is not None:
            try:
                self._on_installed(name)
            except InstallationCancelledError:
                self.cancelled = True

    def failed(self, name: str, error: BaseException) -> None:
        self.failures.append((name, error))

    def raise_if_cancelled(self) -> None:
        if self.cancelled:
            raise InstallationCancelledError


def _verify(installation_id: str, entry: ManifestEntry, body: bytes) -> None:
    actual = hashlib.sha256(body).hexdigest()
    if actual != entry.sha256:
        download_log.error(
            "Checksum mismatch",
            installationId=installation_id,
            module=entry.name,
            expected=entry.sha256,
            actual=actual,
            errorType="domain",
        )
        raise ChecksumMismatchError(
            f"{entry.name} {entry.version}: SHA-256 {actual} is not the "
            f"manifest's {entry.sha256}"
        )


def _error_kind(error: Exception) -> str:
    if isinstance(error, ServerError):
        return "5xx"
    if isinstance(error, urllib3.exceptions.TimeoutError):
        return "timeout"
    return "connection"


def _raise_for_status(service: str, status: int) -> None:
    if status >= 500:
        raise ServerError(service, status)


def _since(start: float) -> float:
    return round(time.perf_counter() - start, 6)
