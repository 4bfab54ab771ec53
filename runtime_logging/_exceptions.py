"""Exceptions as data.

Type, message, frames, the cause and context chain, and the members of
exception groups.
"""

from __future__ import annotations

import builtins
import sys
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import Any

#: Frames kept per exception: the innermost ones, where the fault is.
MAX_FRAMES = 50
#: Exceptions followed through causes, contexts and groups.
MAX_EXCEPTIONS = 20

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


def resolve_exc_info(value: object) -> ExcInfo | None:
    """Turn what a caller passed as ``exc_info`` into a triple, or None."""
    if value is None or value is False:
        return None
    if isinstance(value, BaseException):
        return (type(value), value, value.__traceback__)
    if isinstance(value, tuple) and len(value) == 3 and value[1] is not None:
        return value
    if value is True or value:
        current = sys.exc_info()
        return current if current[1] is not None else None
    return None


def _frames(
    error: BaseException, with_locals: bool, shown: Callable[[Any], Any]
) -> list[dict[str, Any]]:
    summary = traceback.extract_tb(error.__traceback__)
    frames = []
    tb = error.__traceback__
    local_maps = []
    while tb is not None:
        local_maps.append(tb.tb_frame.f_locals if with_locals else None)
        tb = tb.tb_next
    for frame, local_map in list(zip(summary, local_maps, strict=True))[-MAX_FRAMES:]:
        entry: dict[str, Any] = {
            "file": frame.filename,
            "line": frame.lineno,
            "function": frame.name,
            "code": frame.line or "",
        }
        if local_map is not None:
            entry["locals"] = {k: _short_repr(shown(v)) for k, v in local_map.items()}
        frames.append(entry)
    return frames


def _short_repr(value: object) -> str:
    try:
        text = repr(value)
    except Exception:
        return f"<unrepresentable {type(value).__qualname__}>"
    return text if len(text) <= 200 else text[:200] + "..."


def _message(error: BaseException) -> str:
    try:
        return str(error)
    except Exception:
        return f"<unprintable {type(error).__qualname__}>"


def _type_name(error: BaseException) -> str:
    kind = type(error)
    module = kind.__module__
    return (
        kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"
    )


def structure_exception(
    error: BaseException,
    with_locals: bool = False,
    shown: Callable[[Any], Any] | None = None,
) -> dict[str, Any]:
    """The documented ``exception`` object of a JSON line for *error*.

    *shown* gives what a local's repr is taken of (the redaction policy's
    `redact_local`): a repr is text that no longer shows a header pair.
    """
    budget = [MAX_EXCEPTIONS]
    return _structure(error, (with_locals, shown or _same), budget, set())


def _same(value: object) -> object:
    return value


def _structure(
    error: BaseException,
    local_vars: tuple[bool, Callable[[Any], Any]],
    budget: list[int],
    seen: set[int],
) -> dict[str, Any]:
    budget[0] -= 1
    seen.add(id(error))
    data: dict[str, Any] = {
        "type": _type_name(error),
        "message": _message(error),
        "frames": _frames(error, *local_vars),
    }
    notes = getattr(error, "__notes__", None)
    if isinstance(notes, list) and notes:
        data["notes"] = [str(note) for note in notes]
    members = getattr(error, "exceptions", None)
    if isinstance(members, tuple) and _is_group(error):
        data["exceptions"] = [
            _structure(member, local_vars, budget, seen)
            for member in members
            if budget[0] > 0 and id(member) not in seen
        ]
    for key, linked in (("cause", error.__cause__), ("context", error.__context__)):
        if key == "context" and (error.__suppress_context__ or error.__cause__):
            continue
        if linked is not None and id(linked) not in seen and budget[0] > 0:
            data[key] = _structure(linked, local_vars, budget, seen)
    return data


_LOGGED = "_runtime_logging_logged"


def logged_before(error: BaseException, by: object) -> bool:
    """Whether the pipeline *by* already logged *error*; marks it logged by *by*.

    The mark is an attribute on the exception object, so it lives exactly as
    long as the exception and a new exception at a recycled id is never
    mistaken for an old one. Each pipeline has its own mark: a formatter
    rendering the same record for another file is not a repeat.
    """
    try:
        marks = getattr(error, _LOGGED, ())
        if any(mark is by for mark in marks):
            return True
        setattr(error, _LOGGED, (*marks[-3:], by))
    except Exception:  # noqa: S110 - an object that refuses attributes is counted
        pass
    return False


def _is_group(error: BaseException) -> bool:
    # BaseExceptionGroup is built in from 3.11; on 3.10 only the backport has it.
    group = getattr(builtins, "BaseExceptionGroup", None)
    if group is None:
        backport = sys.modules.get("exceptiongroup")
        group = getattr(backport, "BaseExceptionGroup", None)
    return group is not None and isinstance(error, group)


def format_exception(error: BaseException) -> list[str]:
    """The traceback text of *error*, one line a list item, without newlines."""
    try:
        text = "".join(
            traceback.format_exception(type(error), error, error.__traceback__)
        )
    except Exception:
        text = f"{_type_name(error)}: {_message(error)}"
    return text.rstrip("\n").split("\n")
