"""Start-up: configure logging once, log an event in both call forms, and a failure.

Run it from any directory: it writes ``logs/app.log`` there and readable lines
to stderr. The reference service leaves ``log_dir`` at its default,
``/var/log/vscode_runtime``.
"""

from __future__ import annotations

import errno
import os

from runtime_logging import configure_logging


def install(installation_id: str) -> None:
    """Stand in for an installation that meets a full disk."""
    path = f"/var/cache/vscode_runtime/{installation_id}/python-tools.tar.gz"
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)


def main() -> None:
    """Configure, log, fail, shut down."""
    service = configure_logging(level="info", color="never", log_dir="logs")
    logger = service.get_logger("vscode_runtime.installer")
    iid = "inst-0001"

    # The mapping form of the reference service's LoggingService, then keywords.
    logger.info(  # noqa: PLE1205 - one mapping is fields, not %-arguments
        "Installation started",
        {"installationId": iid, "moduleCount": 3, "trigger": "user"},
    )
    logger.info(
        "Installation started", installationId=iid, moduleCount=3, trigger="user"
    )

    try:
        install(iid)
    except OSError:
        logger.exception("Installation failed", installationId=iid)

    service.shutdown()
    print(f"wrote {service.sink('file').health().delivered} lines to logs/app.log")


if __name__ == "__main__":
    main()
