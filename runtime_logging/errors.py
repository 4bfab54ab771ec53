"""The exceptions the toolkit raises, all under one root."""

from __future__ import annotations


class RuntimeLoggingError(Exception):
    """Root of every exception the toolkit raises on purpose."""


class ConfigurationError(RuntimeLoggingError, ValueError):
    """A setting has a value the toolkit can't use.

    The message names the setting, shows the bad value and says the fix.
    """


class MissingExtraError(ConfigurationError, ImportError):
    """A setting needs an optional dependency that is not installed."""

    def __init__(self, setting: str, extra: str, module: str) -> None:
        """Name the setting that needs *extra*, whose import of *module* failed."""
        super().__init__(
            f"`{setting}` needs the `{module}` package, which is not installed; "
            f"install it with: pip install 'runtime-logging[{extra}]'"
        )
