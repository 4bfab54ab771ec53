"""Turn any event into exactly one line of strict JSON.

The fast path is one `orjson.dumps`. Whatever it refuses (lone surrogates,
cycles, nesting deeper than it allows, a ``__repr__`` that raises) or would
get wrong silently (orjson writes NaN and infinities as ``null``) goes
through `to_jsonable`, which rebuilds the value from plain, safe types.
Integers past 64 bits, which orjson refuses, are written by the stdlib's
encoder: exact JSON numbers.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import json
import math
import uuid
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

import orjson

#: How deep a value is followed before the rest is replaced by a marker.
MAX_DEPTH = 32
#: Replacements for floats that JSON has no token for.
NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE
_SCALARS = frozenset({str, int, bool, type(None)})


def _default(value: Any) -> Any:
    """Encode what orjson does not know: the documented fallbacks."""
    if isinstance(value, float):
        return float(value)  # a subclass: a float, so NaN is seen as one
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "backslashreplace")
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (PurePath, BaseException)):
        return str(value)
    return repr(value)


def _has_non_finite(value: object, depth: int = 0) -> bool:
    """Whether *value* holds a NaN or an infinity wherever orjson would look."""
    kind = type(value)
    if kind in _SCALARS:
        return False
    if isinstance(value, float):
        return not math.isfinite(value)
    if depth > MAX_DEPTH:
        return True
    if isinstance(value, Mapping):
        return any(_has_non_finite(v, depth + 1) for v in value.values())
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(_has_non_finite(v, depth + 1) for v in value)
    if isinstance(value, enum.Enum):
        return _has_non_finite(value.value, depth + 1)
    if _is_dataclass(value):
        return _has_non_finite(_dataclass_fields(value), depth + 1)
    return False


def _is_dataclass(value: object) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def _dataclass_fields(value: Any) -> dict[str, Any]:
    """The fields orjson writes for a dataclass: those not named ``_...``."""
    return {
        field.name: getattr(value, field.name)
        for field in dataclasses.fields(value)
        if not field.name.startswith("_")
    }


def clean_text(text: str) -> str:
    """*text* as a plain str that encodes to UTF-8 (lone surrogates escaped)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return str.__str__(text)  # a subclass's own __str__ or __repr__ may raise


def unrepresentable(value: object) -> str:
    """The text written for *value* when it can't be read or shown."""
    return f"<unrepresentable {type(value).__qualname__}>"


def safe_repr(value: object) -> str:
    """``repr(value)`` as clean text, or its marker when that raises."""
    try:
        return clean_text(repr(value))
    except Exception:
        return unrepresentable(value)


def safe_str(value: object) -> str:
    """``str(value)``; when that raises, a str subclass's characters or the marker."""
    try:
        return value if type(value) is str else str(value)
    except Exception:
        return str.__str__(value) if isinstance(value, str) else unrepresentable(value)


def _key(key: object) -> str:
    if isinstance(key, str):
        return clean_text(key)
    if isinstance(key, (int, float, uuid.UUID, enum.Enum, bool)) or key is None:
        return str(key)
    return safe_repr(key)


_NOT_SCALAR = object()


def _plain_scalar(value: object) -> Any:
    """*value* as a plain JSON scalar, or `_NOT_SCALAR` when it is none."""
    if isinstance(value, int):
        return _integer(value)
    if isinstance(value, float):
        number = float(value)
        return number if math.isfinite(number) else NON_FINITE[repr(number)]
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return _NOT_SCALAR


def _integer(value: int) -> int | str:
    """*value* as a plain int, or its hex text when too long to write in decimal."""
    number = int(value)
    if number.bit_length() > 64:
        try:
            str(number)
        except ValueError:  # past sys.get_int_max_str_digits()
            return hex(number)
    return number


def to_jsonable(
    value: object, depth: int = 0, seen: frozenset[int] = frozenset()
) -> Any:
    """Rebuild *value* from str, int, float, bool, None, list and dict only."""
    if value is None or type(value) is bool:
        return value
    scalar = _plain_scalar(value)
    if scalar is not _NOT_SCALAR:
        return scalar
    if depth >= MAX_DEPTH:
        return "<max depth>"
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value, depth + 1, seen)
    if _is_dataclass(value):
        value = _dataclass_fields(value)
    if isinstance(value, (Mapping, list, tuple, set, frozenset)):
        if id(value) in seen:
            return "<cycle>"
        try:
            return _container(value, depth, seen | {id(value)})
        except Exception:  # a mapping or collection that can't be read
            return unrepresentable(value)
    try:
        return to_jsonable(_default(value), depth + 1, seen)
    except Exception:
        return safe_repr(value)


def _container(value: Any, depth: int, seen: frozenset[int]) -> Any:
    if isinstance(value, Mapping):
        return {_key(k): to_jsonable(v, depth + 1, seen) for k, v in value.items()}
    items = (
        sorted(value, key=safe_repr) if isinstance(value, (set, frozenset)) else value
    )
    return [to_jsonable(v, depth + 1, seen) for v in items]


def dumps_line(event: Mapping[str, Any]) -> bytes:
    """One line of strict JSON with its newline, whatever *event* holds."""
    try:
        line = orjson.dumps(event, default=_default, option=_OPTIONS)
    except Exception:
        return _dumps_rebuilt(event)
    # orjson writes NaN and infinities as null: without a null, there are none.
    if b"null" in line:
        try:
            rebuild = any(
                type(value) not in _SCALARS and _has_non_finite(value)
                for value in event.values()
            )
        except Exception:  # a value that could be read once, and not twice
            rebuild = True
        if rebuild:
            return _dumps_rebuilt(event)
    return line


def _dumps_rebuilt(event: Mapping[str, Any]) -> bytes:
    rebuilt = to_jsonable(event)
    try:
        return orjson.dumps(rebuilt, option=_OPTIONS)
    except TypeError:
        # An integer past 64 bits: the stdlib writes any int exactly.
        text = json.dumps(
            rebuilt, ensure_ascii=False, separators=(",", ":"), allow_nan=False
        )
        return text.encode("utf-8") + b"\n"
