"""Settings, one object filled from four sources.

The sources, in rising priority: defaults, a TOML file, the environment and
keyword arguments.

Every setting has one name. It is the keyword of `configure_logging()`, the
key in the TOML file, the command-line flag (``--log-dir`` for ``log_dir``)
and, upper-cased behind ``RUNTIME_LOGGING_``, the environment variable. The
ecosystem's own variables (``SENTRY_DSN``, ``SENTRY_ENVIRONMENT``,
``SENTRY_RELEASE``) are read as they are, below the prefixed ones.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import sys
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from runtime_logging.errors import ConfigurationError

ENV_PREFIX = "RUNTIME_LOGGING_"

#: Conventional variables of the ecosystem, read as they are.
CONVENTIONAL_ENV = {
    "SENTRY_DSN": "sentry_dsn",
    "SENTRY_ENVIRONMENT": "environment",
    "SENTRY_RELEASE": "release",
    "PROMETHEUS_MULTIPROC_DIR": "metrics_dir",
}

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}

#: Labels a Loki stream may carry: each has a small, bounded set of values.
LOKI_LABELS = frozenset({"service", "environment", "level", "logger", "host"})

#: The shortest ``loki_max_line_bytes``: a truncated line's standard keys fit.
LOKI_MIN_LINE_BYTES = 1024

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1024,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": 1024**3,
}
_DURATION_UNITS = {"": 1.0, "s": 1.0, "ms": 0.001, "m": 60.0, "min": 60.0, "h": 3600.0}
_NUMBER_WITH_UNIT = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def _fail(setting: str, value: object, expected: str) -> ConfigurationError:
    if setting.startswith("-"):  # a command's own flag, not a setting
        fix = f"Give `{setting}` a valid value."
    else:
        fix = f"Set `{setting}` (or {ENV_PREFIX}{setting.upper()}) to a valid value."
    field = _FIELDS.get(setting)
    if field is not None and field.metadata["secret"]:
        shown = f"a secret (not shown) of type {type(value).__name__}"
    elif field is not None and field.metadata["parse"] in {_parse_url, _parse_dsn}:
        # A URL's user-info may hold a password: not shown in any other type.
        shown = f"of type {type(value).__name__} (not shown)"
    else:
        shown = repr(value)
    return ConfigurationError(f"`{setting}` is {shown}; expected {expected}. {fix}")


def parse_size(setting: str, value: object) -> int:
    """Read a byte count: an int, or a string such as ``"64KB"`` or ``"1MiB"``.

    KB, MB and GB are powers of 1000; KiB, MiB and GiB powers of 1024.
    """
    if isinstance(value, bool):
        raise _fail(setting, value, "a size such as 1048576, '64KB' or '1MiB'")
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, str):
        match = _NUMBER_WITH_UNIT.fullmatch(value)
        if match and match.group(2).lower() in _SIZE_UNITS:
            size = float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]
            if math.isfinite(size):  # past a float's range: no size of a disk
                return int(size)
    raise _fail(setting, value, "a size such as 1048576, '64KB' or '1MiB'")


def parse_duration(setting: str, value: object) -> float:
    """Read seconds: a number, or a string such as ``"500ms"``, ``"5s"``, ``"1h"``."""
    expected = "a duration such as 5, '500ms', '5s' or '1h'"
    if isinstance(value, bool):
        raise _fail(setting, value, expected)
    if isinstance(value, (int, float)) and math.isfinite(value) and value >= 0:
        return float(value)
    if isinstance(value, str):
        match = _NUMBER_WITH_UNIT.fullmatch(value)
        if match and match.group(2).lower() in _DURATION_UNITS:
            seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]
            if math.isfinite(seconds):
                return seconds
    raise _fail(setting, value, expected)


def _parse_text(setting: str, value: object) -> str:
    if not isinstance(value, str):
        raise _fail(setting, value, "a string")
    return value


def _parse_name(setting: str, value: object) -> str:
    text = _parse_text(setting, value)
    if not _NAME.fullmatch(text):
        raise _fail(
            setting,
            value,
            "a name of letters, digits, '_', '.' or '-' that starts with a letter "
            "or '_'",
        )
    return text


def _parse_bool(setting: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"1", "true", "yes", "on"}:
        return True
    if isinstance(value, str) and value.lower() in {"0", "false", "no", "off"}:
        return False
    raise _fail(setting, value, "true or false")


def _parse_int(setting: str, value: object) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise _fail(setting, value, "a whole number of 0 or more")


def _parse_rate(setting: str, value: object) -> float:
    try:
        rate = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        rate = math.nan
    if isinstance(value, bool) or not 0.0 <= rate <= 1.0:
        raise _fail(setting, value, "a number from 0.0 to 1.0")
    return rate


def _parse_level(setting: str, value: object) -> str:
    if isinstance(value, str) and value.lower() in LEVELS:
        return value.lower()
    raise _fail(setting, value, "one of " + ", ".join(LEVELS))


def _choice(*choices: str) -> Callable[[str, object], str]:
    def parse(setting: str, value: object) -> str:
        if isinstance(value, str) and value.lower() in choices:
            return value.lower()
        raise _fail(setting, value, "one of " + ", ".join(choices))

    return parse


def _parse_optional_path(setting: str, value: object) -> Path | None:
    if value is None or (isinstance(value, str) and value in {"", "off"}):
        return None
    if isinstance(value, (str, Path)):
        return Path(value)
    raise _fail(setting, value, "a directory path, or 'off'")


def _split(value: object) -> list[str] | None:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def _parse_names(setting: str, value: object) -> tuple[str, ...]:
    names = _split(value)
    if names is None:
        raise _fail(setting, value, "a list of names, or a comma-separated string")
    return tuple(names)


def _parse_key_names(setting: str, value: object) -> tuple[str, ...]:
    names = _parse_names(setting, value)
    # Keys are compared by their letters a-z alone (``API-Key`` is ``apikey``):
    # a name with none of them would match every key.
    if not all(any("a" <= c <= "z" for c in name.lower()) for name in names):
        raise _fail(
            setting, value, "key names that hold a letter a-z ('api_key', 'card_no')"
        )
    return names


def _parse_mapping(setting: str, value: object) -> dict[str, str]:
    items: list[tuple[object, object]]
    if isinstance(value, Mapping):
        items = list(value.items())
    else:
        parts = _split(value)
        if parts is None or not all("=" in part for part in parts):
            raise _fail(setting, value, "a table, or 'key=value,key=value'")
        items = [(k, v) for k, _, v in (part.partition("=") for part in parts)]
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in items):
        raise _fail(setting, value, "string keys and string values")
    return {str(k).strip(): str(v).strip() for k, v in items}


def _parse_logger_levels(setting: str, value: object) -> dict[str, str]:
    levels = _parse_mapping(setting, value)
    for name, level in levels.items():
        if level.lower() not in LEVELS:
            raise _fail(f"{setting}.{name}", level, "one of " + ", ".join(LEVELS))
    return {name: level.lower() for name, level in levels.items()}


def _parse_unique_names(setting: str, value: object) -> tuple[str, ...]:
    names = _parse_names(setting, value)
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigurationError(
            f"`{setting}` is {value!r}, which names {', '.join(repeated)} more "
            "than once: name each once."
        )
    return names


def _at_least(
    minimum: int, read: Callable[[str, object], int] = parse_size, why: str = ""
) -> Callable[[str, object], int]:
    def parse(setting: str, value: object) -> int:
        text = value.strip() if isinstance(value, str) else None
        if (type(value) is int and value < minimum) or (
            text is not None and text.lstrip("-").isdigit() and int(text) < minimum
        ):
            raise _fail(setting, value, f"{minimum} or more{why}")
        number = read(setting, value)
        if number < minimum:
            raise _fail(setting, value, f"{minimum} or more{why}")
        return number

    return parse


def _parse_wait(setting: str, value: object) -> float:
    seconds = parse_duration(setting, value)
    if seconds <= 0:
        raise _fail(setting, value, "a duration above 0, such as '500ms' or '5s'")
    return seconds


def _parse_window(setting: str, value: object) -> float:
    seconds = parse_duration(setting, value)
    if seconds < 1:  # the window counts whole seconds
        raise _fail(setting, value, "a duration of 1 second or more, such as '60s'")
    return seconds


def _parse_loki_labels(setting: str, value: object) -> tuple[str, ...]:
    labels = _parse_unique_names(setting, value)
    if not labels:
        raise ConfigurationError(
            f"`{setting}` is {value!r}; Loki refuses a stream without labels: "
            "name at least one, such as 'service,environment,level'."
        )
    for label in labels:
        if label not in LOKI_LABELS:
            raise ConfigurationError(
                f"`{setting}` asks for the label {label!r}, whose values are not "
                "a small bounded set; a Loki label with many values makes one "
                "stream per value. Keep it in the line and choose labels from "
                + ", ".join(sorted(LOKI_LABELS))
                + "."
            )
    return labels


def _parse_label_names(setting: str, value: object) -> tuple[str, ...]:
    names = _parse_unique_names(setting, value)
    for name in names:
        if not _LABEL_NAME.fullmatch(name):
            raise _fail(setting, name, "names of letters, digits and '_'")
    return names


def _parse_prefix(setting: str, value: object) -> str:
    text = _parse_text(setting, value)
    if text and not _LABEL_NAME.fullmatch(text):
        raise _fail(
            setting,
            value,
            "the start of a Prometheus metric name: letters, digits and '_', "
            "not first a digit, such as 'my_app_' (or '' for the service name)",
        )
    return text


def _parse_address(setting: str, value: object) -> str:
    text = _parse_text(setting, value)
    if text in {"", "off"}:
        return ""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise _fail(setting, value, "'HOST:PORT' such as '127.0.0.1:8080', or 'off'")
    return text


def _parse_url(setting: str, value: object) -> str:
    text = _parse_text(setting, value)
    if text:
        problem = _url_problem(text)
        if problem:
            raise ConfigurationError(
                f"`{setting}` is {mask_url(text)!r}, {problem}; expected an "
                "http:// or https:// URL with a host and, if any, a port from 1 "
                "to 65535, or ''. "
                f"Set `{setting}` (or {ENV_PREFIX}{setting.upper()}) to a valid value."
            )
    return text


def _parse_dsn(setting: str, value: object) -> str:
    text = _parse_text(setting, value)
    problem = _url_problem(text) if text else ""
    if problem:
        # Not a URL, its key can't be told from the rest: none of it is shown.
        shown = repr(mask_url(text)) if "://" in text else "a text (not shown)"
        raise ConfigurationError(
            f"`{setting}` is {shown}, {problem}; copy the DSN from "
            "the Sentry project's Client Keys page, such as "
            "'https://<key>@<host>/<project id>', or set '' for no Sentry."
        )
    return text


def _url_problem(url: str) -> str:
    """What keeps *url* from being an HTTP address to connect to; '' if nothing."""
    if not re.match(r"https?://[^/\s]+", url):
        return "which is not an http:// or https:// URL"
    if re.search(r"\s", url):
        return "which holds a space or a line break"
    credentials = split_url_credentials(url)  # a password may hold '/' or ':'
    bare = url if credentials is None else credentials[1]
    try:
        parts = urllib.parse.urlsplit(bare)
        port = parts.port
    except ValueError:  # its text may be a password: not shown
        hint = " (write a '/', '?' or '#' in a user-info as %2F, %3F, %23)"
        return "whose host and port can't be read" + hint * ("@" in url)
    if not parts.hostname:
        return "which names no host"
    if port == 0:
        return "whose port is 0"
    return ""


def _parse_per_second(setting: str, value: object) -> float:
    try:
        rate = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        rate = math.nan
    if isinstance(value, bool) or not (math.isfinite(rate) and rate >= 0):
        raise _fail(setting, value, "a number of events per second, 0 or more")
    return rate


def _setting(
    default: Any,
    parse: Callable[[str, object], Any],
    doc: str,
    *,
    secret: bool = False,
) -> Any:
    metadata = {"parse": parse, "help": doc, "secret": secret}
    if isinstance(default, dict):
        return dataclasses.field(default_factory=dict, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class Settings:
    """The effective configuration; build it with `load_settings()`."""

    service: str = _setting("vscode_runtime", _parse_name, "service name on every line")
    environment: str = _setting("production", _parse_name, "deployment environment")
    release: str = _setting(
        "vscode-runtime@1.0.0", _parse_text, "release on every line"
    )
    level: str = _setting("info", _parse_level, "lowest level that is logged")
    logger_levels: dict[str, str] = _setting(
        {}, _parse_logger_levels, "per-logger levels, e.g. 'urllib3=warning'"
    )
    console: str = _setting(
        "pretty", _choice("pretty", "json", "off"), "console output"
    )
    color: str = _setting(
        "auto", _choice("auto", "always", "never"), "console colours (NO_COLOR wins)"
    )
    log_dir: Path | None = _setting(
        Path("/var/log/vscode_runtime"), _parse_optional_path, "log directory or 'off'"
    )
    log_file: str = _setting("app.log", _parse_name, "file name inside log_dir")
    rotation: str = _setting(
        "external", _choice("builtin", "external"), "who rotates the file"
    )
    max_bytes: int = _setting(
        100 * 1000**2, parse_size, "built-in rotation size (0: none)"
    )
    rotate_interval: str = _setting(
        "none", _choice("none", "hourly", "daily"), "built-in rotation by time"
    )
    backup_count: int = _setting(7, _parse_int, "rotated files kept")
    compress: bool = _setting(True, _parse_bool, "gzip rotated files")
    reopen_interval: float = _setting(
        1.0, parse_duration, "how often the file's inode is checked"
    )
    sentry_dsn: str = _setting("", _parse_dsn, "Sentry DSN ('' is off)", secret=True)
    traces_sample_rate: float = _setting(0.1, _parse_rate, "Sentry traces rate")
    profiles_sample_rate: float = _setting(0.1, _parse_rate, "Sentry profiles rate")
    sentry_tags: dict[str, str] = _setting({}, _parse_mapping, "extra Sentry tags")
    sentry_event_level: str = _setting(
        "error", _parse_level, "lowest level sent to Sentry as an event"
    )
    sentry_breadcrumb_level: str = _setting(
        "info", _parse_level, "lowest level kept as a Sentry breadcrumb"
    )
    sentry_logs: bool = _setting(False, _parse_bool, "Sentry structured logs")
    sentry_logs_level: str = _setting(
        "info", _parse_level, "lowest level sent as a Sentry log"
    )
    sentry_connect_timeout: float = _setting(
        2.0, parse_duration, "Sentry connect timeout"
    )
    sentry_read_timeout: float = _setting(5.0, parse_duration, "Sentry read timeout")
    loki_url: str = _setting("", _parse_url, "Loki base URL ('' is off)")
    loki_labels: tuple[str, ...] = _setting(
        ("service", "environment", "level"), _parse_loki_labels, "Loki stream labels"
    )
    loki_tenant: str = _setting("", _parse_text, "X-Scope-OrgID for Loki")
    loki_username: str = _setting("", _parse_text, "Loki basic-auth user")
    loki_password: str = _setting(
        "", _parse_text, "Loki basic-auth password", secret=True
    )
    loki_token: str = _setting("", _parse_text, "Loki bearer token", secret=True)
    loki_batch_bytes: int = _setting(1000**2, _at_least(1), "Loki push size")
    loki_batch_interval: float = _setting(1.0, _parse_wait, "Loki push interval")
    loki_max_buffer_bytes: int = _setting(
        16 * 1000**2, _at_least(1), "Loki buffer cap in bytes"
    )
    loki_max_buffer_entries: int = _setting(
        100_000, _at_least(1, _parse_int), "Loki buffer cap in entries"
    )
    loki_max_line_bytes: int = _setting(
        256 * 1024,
        _at_least(
            LOKI_MIN_LINE_BYTES,
            why=" (room for a truncated line's standard keys), up to Loki's "
            "`max_line_size`",
        ),
        "longest Loki line before truncation",
    )
    loki_connect_timeout: float = _setting(2.0, _parse_wait, "Loki connect timeout")
    loki_read_timeout: float = _setting(5.0, _parse_wait, "Loki read timeout")
    loki_metadata: tuple[str, ...] = _setting(
        (), _parse_label_names, "fields also sent as Loki structured metadata"
    )
    metrics_address: str = _setting(
        "127.0.0.1:8080", _parse_address, "/metrics and /health address ('off': none)"
    )
    metrics_prefix: str = _setting(
        "", _parse_prefix, "metric name prefix ('' derives it from service)"
    )
    queue_size: int = _setting(
        10_000,
        _at_least(1, _parse_int, " (a queue of 0 drops every event)"),
        "events queued per network sink",
    )
    shutdown_timeout: float = _setting(5.0, parse_duration, "longest drain at exit")
    include_locals: bool = _setting(False, _parse_bool, "local variables in frames")
    redact_keys: tuple[str, ...] = _setting(
        (), _parse_key_names, "more secret key names"
    )
    redact_keys_allow: tuple[str, ...] = _setting(
        (), _parse_key_names, "default secret key names to let through"
    )
    capture_stdlib: bool = _setting(True, _parse_bool, "route stdlib logging")
    handle_signals: bool = _setting(True, _parse_bool, "SIGHUP reopens, SIGTERM drains")
    rate_limit: float = _setting(
        0.0, _parse_per_second, "events/s per (logger, event, level) (0: off)"
    )
    rate_limit_burst: int = _setting(20, _parse_int, "events let through at once")
    rate_limit_errors: str = _setting(
        "duplicates",
        _choice("duplicates", "all", "never"),
        "which errors are limited: repeats only, all, or none",
    )
    # Metrics derived from the events (runtime_logging.metrics).
    metrics: bool = _setting(False, _parse_bool, "count events as Prometheus metrics")
    metrics_dir: Path | None = _setting(
        None, _parse_optional_path, "multiprocess directory for pre-fork workers"
    )
    metrics_rules: str = _setting(
        "reference", _parse_text, "rules file, 'reference' or 'off'"
    )
    metrics_error_window: float = _setting(
        60.0, _parse_window, "window of the error_rate gauge"
    )

    @property
    def prefix(self) -> str:
        """The metric name prefix, ``vscode_runtime_`` for the reference service."""
        prefix = self.metrics_prefix or re.sub(r"[^a-zA-Z0-9_]", "_", self.service)
        return prefix if prefix.endswith("_") else prefix + "_"

    @property
    def log_path(self) -> Path | None:
        """The log file, or None when files are off."""
        return None if self.log_dir is None else self.log_dir / self.log_file

    def __repr__(self) -> str:
        """The settings as `masked` shows them: a traceback shows no secret."""
        shown = ", ".join(f"{name}={value!r}" for name, value in self.masked().items())
        return f"Settings({shown})"

    def masked(self) -> dict[str, object]:
        """The settings as plain values, with every secret masked."""
        shown: dict[str, object] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.metadata["secret"] and value:
                value = "********"
            elif isinstance(value, Path):
                value = str(value)
            shown[field.name] = list(value) if isinstance(value, tuple) else value
        shown["sentry_dsn"] = mask_url(self.sentry_dsn)
        shown["loki_url"] = mask_url(self.loki_url)
        return shown


def _readable_authority(url: str) -> bool:
    """Whether *url*'s authority, as urllib reads it, is a host and port."""
    try:
        urllib.parse.urlsplit(url).port  # noqa: B018 - reading it is the check
    except ValueError:
        return False
    return True


def split_url_credentials(url: str) -> tuple[str, str] | None:
    """*url*'s user-info, as written, and *url* without it; None without one.

    The authority ends at the first '/', '?' or '#', as for urllib: an '@'
    after it is in the path. Only when that authority can't be read as a
    host and port is the user-info taken up to the last '@' before the query:
    a password written with an unquoted '/'.
    """
    scheme, sep, rest = url.partition("://")
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    userinfo, at, _ = authority.rpartition("@")
    if not at and not _readable_authority(url):
        userinfo, at, _ = re.split(r"[?#]", rest, maxsplit=1)[0].rpartition("@")
    if not sep or not at:
        return None
    return userinfo, f"{scheme}://{rest[len(userinfo) + 1 :]}"


def mask_url(url: str) -> str:
    """*url* with its user-info (``user:password@``) shown as ``********@``.

    The values in its query and fragment are masked too (``?token=********``):
    a proxy in front of Loki may take its token there.
    """
    split = split_url_credentials(url)
    scheme, sep, rest = url.partition("://")
    if split is not None:
        url = split[1].replace("://", "://********@", 1)
    elif sep and "@" in rest and not _readable_authority(url):
        # A password holding '?' or '#' unquoted: up to the last '@' it may
        # be, whatever it holds.
        url = f"{scheme}://********@{rest.rpartition('@')[2]}"
    return _masked_query(url)[0]


def _masked_query(url: str) -> tuple[str, list[str]]:
    """*url* with its query and fragment values masked, and those values."""
    start = min((i for i in (url.find("?"), url.find("#")) if i >= 0), default=-1)
    if start < 0:
        return url, []
    parts = re.split(r"([?#&;])", url[start:])
    hidden = []
    for i in range(2, len(parts), 2):  # the parameters, between the separators
        name, equals, value = parts[i].partition("=")
        if value or (name and not equals):
            hidden.append(value if equals else name)
            parts[i] = f"{name}{equals}********" if equals else "********"
    return url[:start] + "".join(parts), hidden


def url_secrets(url: str) -> tuple[str, ...]:
    """What `mask_url` hides of *url*: its password and query values.

    Each as written and decoded: an answer may echo either.
    """
    split = split_url_credentials(url)
    userinfo = "" if split is None else split[0]
    written = [userinfo, userinfo.partition(":")[2], *_masked_query(url)[1]]
    return tuple(
        {
            form
            for text in written
            if text
            for form in (text, urllib.parse.unquote(text))
        }
    )


SETTING_NAMES = tuple(field.name for field in dataclasses.fields(Settings))


def setting_help(name: str) -> str:
    """The one-line description of setting *name*."""
    return str(_FIELDS[name].metadata["help"])


_FIELDS = {field.name: field for field in dataclasses.fields(Settings)}


def _unknown(name: str, source: str) -> ConfigurationError:
    import difflib  # noqa: PLC0415 - only a misspelt setting needs it

    close = difflib.get_close_matches(name, SETTING_NAMES, n=1)
    hint = f" Did you mean `{close[0]}`?" if close else ""
    return ConfigurationError(f"{source} names an unknown setting `{name}`.{hint}")


def read_toml(setting: str, path: Path, shown: str, remedy: str) -> dict[str, Any]:
    """The table in the TOML file *path*, named by the setting *setting*.

    Raises:
        ConfigurationError: the file can't be read or is not TOML; the message
            shows the setting's value *shown* and, for an unreadable file,
            the *remedy*.
    """
    # Loaded here: most set-ups read no TOML file.
    if sys.version_info >= (3, 11):
        import tomllib  # noqa: PLC0415
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib  # noqa: PLC0415

    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except OSError as error:
        raise ConfigurationError(
            f"`{setting}` is {shown!r}, which can't be read "
            f"({error.strerror}); {remedy}."
        ) from None
    except UnicodeDecodeError as error:
        raise ConfigurationError(
            f"`{setting}` {shown!r} is not UTF-8 (byte "
            f"{error.object[error.start]:#04x} at offset {error.start}), as TOML "
            "must be; save the file as UTF-8."
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigurationError(
            f"`{setting}` {shown!r} is not valid TOML ({error}); fix the file."
        ) from None


def _from_file(path: Path) -> dict[str, object]:
    table = read_toml(
        "config_file", path, str(path), "point it at a readable TOML file"
    )
    if "runtime_logging" in table:
        table = _settings_table(path, table)
    for name in table:
        if name not in _FIELDS:
            raise _unknown(name, f"The config file {str(path)!r}")
    return dict(table)


def _settings_table(path: Path, document: dict[str, Any]) -> dict[str, Any]:
    """The ``[runtime_logging]`` table; settings beside it would be ignored."""
    table = document["runtime_logging"]
    if not isinstance(table, dict):
        # Not shown: the settings in it may hold passwords.
        shown = (
            "an array of tables ([[runtime_logging]])"
            if isinstance(table, list)
            else f"a value of type {type(table).__name__}"
        )
        raise ConfigurationError(
            f"The config file {str(path)!r} sets `runtime_logging` to {shown}; "
            "it is a table: write the settings under [runtime_logging]."
        )
    # Other tables are other programs' sections of a shared file.
    beside = [
        name
        for name, value in document.items()
        if name != "runtime_logging"
        and (name in _FIELDS or not isinstance(value, dict))
    ]
    if beside:
        raise ConfigurationError(
            f"The config file {str(path)!r} has "
            + ", ".join(f"`{name}`" for name in beside)
            + " at the top level beside [runtime_logging], where settings "
            "would be ignored: move each under [runtime_logging] (or drop the "
            "table and keep every setting at the top level)."
        )
    return table


def _from_env(env: Mapping[str, str]) -> dict[str, object]:
    values: dict[str, object] = {
        name: env[var] for var, name in CONVENTIONAL_ENV.items() if var in env
    }
    for var, value in env.items():
        if not var.startswith(ENV_PREFIX) or var == ENV_PREFIX + "CONFIG":
            continue
        name = var[len(ENV_PREFIX) :].lower()
        if name not in _FIELDS:
            raise _unknown(name, f"The environment variable {var}")
        values[name] = value
    return values


def load_settings(
    config_file: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    **overrides: object,
) -> Settings:
    """Build the settings from defaults, *config_file*, *env* and *overrides*.

    Args:
        config_file: a TOML file; when None, ``RUNTIME_LOGGING_CONFIG`` names it.
        env: the environment to read, `os.environ` when None.
        overrides: settings by name; they win over everything else.

    Raises:
        ConfigurationError: a name is unknown or a value is unusable.
    """
    env = os.environ if env is None else env
    config_file = config_file or env.get(ENV_PREFIX + "CONFIG") or None
    raw: dict[str, object] = {}
    if config_file is not None:
        raw.update(_from_file(Path(config_file)))
    raw.update(_from_env(env))
    for name in overrides:
        if name not in _FIELDS:
            raise _unknown(name, "configure_logging()")
    raw.update(overrides)

    values = {
        name: _FIELDS[name].metadata["parse"](name, value)
        for name, value in raw.items()
    }
    settings = Settings(**values)
    _check_loki(settings)
    return settings


#: What a Loki header value (tenant, token) may hold: visible ASCII.
_HEADER_VALUE = re.compile(r"[!-~]*")
#: What basic authentication can't carry: control characters, lone surrogates.
_NOT_IN_BASIC = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")


def check_loki_credential(
    setting: str, value: str, *, header: bool, secret: bool = False, part: str = ""
) -> None:
    """Refuse a Loki credential that would fail every push, never showing a secret.

    With *header* the value is sent as it is in an HTTP header; otherwise it
    goes into basic authentication (``user:password``, base64). *part* names
    the piece of the setting's value that *value* is.
    """
    if header:
        bad = _HEADER_VALUE.fullmatch(value) is None
        wrong = next((c for c in value if not "!" <= c <= "~"), "") if bad else ""
    else:
        found = _NOT_IN_BASIC.search(value)
        if found is None and setting.endswith("username") and ":" in value:
            found = re.search(":", value)
        wrong = found.group() if found else ""
    if not wrong:
        return
    place = value.index(wrong)
    where = "ends in" if place == len(value) - 1 else f"holds at position {place}"
    shown = "(a secret, not shown)" if secret else f"is {value!r} and"
    if wrong == ":" and not secret:  # what follows it may be the password
        shown = "(not shown)"
    kind = "an HTTP header" if header else "basic authentication"
    from_file = wrong in "\r\n" and not part  # a URL's is written %0A
    hint = " (a value read from a file keeps its last newline)" * from_file
    named = f"`{setting}` {part}".rstrip()
    raise ConfigurationError(
        f"{named} {shown} {where} {wrong!r}, which {kind} can't carry: every "
        f"push to Loki would fail. Set `{setting}` without it{hint}."
    )


def loki_url_credentials(url: str) -> tuple[str, str, str, str] | None:
    """*url*'s user-info as written, *url* without it, and the user and password.

    Raises:
        ConfigurationError: basic authentication can't carry the user or
            password, once decoded; neither is shown.
    """
    credentials = split_url_credentials(url)
    if credentials is None:
        return None
    userinfo, bare = credentials
    username, _, password = (
        urllib.parse.unquote(part) for part in userinfo.partition(":")
    )
    for part, value in (("user", username), ("password", password)):
        check_loki_credential(
            "loki_url", value, header=False, secret=True, part=f"user-info's {part}"
        )
    return userinfo, bare, username, password


def _check_loki(settings: Settings) -> None:
    """Refuse Loki settings that each parse but fail together at run time."""
    in_url = loki_url_credentials(settings.loki_url) is not None
    basic = bool(settings.loki_username or settings.loki_password)
    if sum((in_url, basic, bool(settings.loki_token))) > 1:
        raise ConfigurationError(
            "Loki credentials are set in more than one way ("
            + ", ".join(
                name
                for name, on in (
                    ("user-info in `loki_url`", in_url),
                    ("`loki_username`/`loki_password`", basic),
                    ("`loki_token`", bool(settings.loki_token)),
                )
                if on
            )
            + "); Loki takes one kind of authentication: keep one of them."
        )
    if bool(settings.loki_username) != bool(settings.loki_password):
        raise ConfigurationError(
            "`loki_username` and `loki_password` go together; set both "
            "for basic authentication, or neither."
        )
    check_loki_credential("loki_tenant", settings.loki_tenant, header=True)
    check_loki_credential("loki_token", settings.loki_token, header=True, secret=True)
    check_loki_credential("loki_username", settings.loki_username, header=False)
    check_loki_credential(
        "loki_password", settings.loki_password, header=False, secret=True
    )
    overlap = sorted(set(settings.loki_labels) & set(settings.loki_metadata))
    if overlap:
        raise ConfigurationError(
            f"`loki_metadata` repeats the labels {overlap!r}; a field is a label "
            "or structured metadata, not both: remove it from one."
        )
    if settings.loki_max_buffer_bytes < settings.loki_batch_bytes:
        raise ConfigurationError(
            f"`loki_max_buffer_bytes` is {settings.loki_max_buffer_bytes!r}, less "
            f"than one push (`loki_batch_bytes` {settings.loki_batch_bytes!r}): "
            "raise the buffer's cap or lower the push size."
        )
