"""The JSON line's schema.

Its version, its standard keys in order, and the prefix that keeps a field
whose name collides with one of them.

SCHEMA.md in the repository documents the same; a test holds them together.
"""

from __future__ import annotations

#: Raised when the meaning of a standard key changes or one is removed.
SCHEMA_VERSION = "1.0"

#: The keys every line starts with, in this order.
STANDARD_KEYS = (
    "timestamp",
    "level",
    "logger",
    "event",
    "service",
    "environment",
    "release",
    "host",
    "pid",
)

#: Keys that follow the event's own fields when present.
TRAILING_KEYS = ("exception", "stack")

#: Keys written when an active trace is known, right after the standard keys.
TRACE_KEYS = ("trace_id", "span_id")

#: A field named like a reserved key is written as this prefix plus its name.
FIELD_PREFIX = "field_"

RESERVED_KEYS = frozenset(STANDARD_KEYS + TRAILING_KEYS + TRACE_KEYS)


def field_key(name: str, taken: object = RESERVED_KEYS) -> str:
    """The key under which a field called *name* is written."""
    while name in taken:  # type: ignore[operator]
        name = FIELD_PREFIX + name
    return name
