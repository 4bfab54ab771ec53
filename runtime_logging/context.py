"""Context that every line of the current task or thread carries.

The context lives in one `contextvars.ContextVar` that holds a read-only
mapping, so reading it costs one lookup however many keys were ever bound.
asyncio tasks inherit it. Threads don't: submit work through
`ContextExecutor`, or wrap a callable with `with_context`, and it runs with
the caller's context.
"""

from __future__ import annotations

import contextvars
import functools
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any, ParamSpec, TypeVar

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "runtime_logging_context", default=_EMPTY
)

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")

P = ParamSpec("P")
R = TypeVar("R")


def get_context() -> Mapping[str, Any]:
    """The fields bound in the current context, read-only."""
    return _context.get()


def bind_context(**fields: Any) -> None:
    """Add *fields* to every line the current task or thread logs from now on."""
    _context.set(MappingProxyType({**_context.get(), **fields}))


def unbind_context(*names: str) -> None:
    """Remove the fields *names* from the current context; absent ones are fine."""
    current = _context.get()
    _context.set(MappingProxyType({k: v for k, v in current.items() if k not in names}))


def clear_context() -> None:
    """Remove every field from the current context."""
    _context.set(_EMPTY)


@contextmanager
def bound_context(**fields: Any) -> Iterator[None]:
    """Bind *fields* inside the ``with`` block and restore the context after it."""
    token = _context.set(MappingProxyType({**_context.get(), **fields}))
    try:
        yield
    finally:
        _context.reset(token)


def request_id_from(incoming: str | None) -> str:
    """*incoming* (a caller's ``X-Request-ID``) if it is a short token, else a new id.

    A token is 1 to 64 letters, digits, ``.``, ``_`` or ``-``; anything else
    could carry text into every line, so a new random id (32 hex digits) is
    made instead.
    """
    if incoming and _REQUEST_ID.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex


def with_context(function: Callable[P, R]) -> Callable[P, R]:
    """Wrap *function* so that it runs in a copy of the caller's context."""
    captured = contextvars.copy_context()

    @functools.wraps(function)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        return captured.copy().run(function, *args, **kwargs)

    return run


class ContextExecutor(ThreadPoolExecutor):
    """A thread pool whose tasks run in the context of whoever submitted them.

    Pass it to ``loop.run_in_executor()`` and executor work logs with the
    task's ``request_id``.
    """

    def submit(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> Future[R]:
        """Schedule *fn* in a copy of the current context."""
        return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)
