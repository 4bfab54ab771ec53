"""Sentry: errors as events, what led to them as breadcrumbs, all redacted.

Delivery contract:

- ``ERROR`` and above (``sentry_event_level``) become Sentry events, with the
  event's fields as extra data (as its JSON line renders them) and the
  exception as Sentry's exception; they are grouped by the event's name
  (its message before ``%`` arguments), not by the rendered text with the
  ids of one occurrence in it. ``INFO`` and above
  (``sentry_breadcrumb_level``) become breadcrumbs of the caller's
  isolation scope, so the next event of the same request carries them, in
  time order with sentry-sdk's own and within ``max_breadcrumbs`` (events
  sentry-sdk captures itself included). With ``sentry_logs`` on, events at
  ``sentry_logs_level`` and above are also sent as Sentry structured logs.
- One exception gives one Sentry event, however many paths see it (logged
  through structlog and stdlib, logged and then uncaught, captured by
  sentry-sdk itself): the exception object is marked when it is first sent.
- The caller's thread only records a breadcrumb (four references in the
  scope's buffer, made into Sentry's form when an event is built) or takes
  what an error's event needs of its Sentry scopes as they are at the call;
  building the event (frames, serialization, the hooks) happens on this
  sink's background thread behind a bounded queue, and sentry-sdk's own
  transport sends from its worker thread with explicit connect and read
  timeouts. While that transport's queue is full, events wait in this
  sink's queue; when this one is full, events are dropped and counted.
  Nothing on the caller's thread waits for the network.
- An event counts as delivered only when Sentry answered its request with a
  success; refused, failed, rate-limited or filtered ones count as dropped,
  with the reason on stderr. Once a request has failed, the drain at exit
  gives up on the rest instead of trying each.
- Everything sentry-sdk sends goes through the same `RedactionPolicy` as the
  files: events and transactions (request data, headers, cookies, query
  strings, extra, contexts, breadcrumbs, frames' variables), breadcrumbs,
  including those sentry-sdk records on its own, and logs.
- sentry-sdk's own logger (``sentry_sdk.errors``) and the HTTP client it uses
  never reach the pipeline; sentry-sdk writes its reports to stderr itself
  when its ``debug`` option (``SENTRY_DEBUG``) is on.
- ``close()`` drains the queue and sentry-sdk's transport within its timeout.

``sentry_sdk`` is imported only when a sink is made, that is when a DSN is
configured.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import json
import logging
import math
import operator
import socket
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from runtime_logging._diagnostics import diagnostics
from runtime_logging._encoding import to_jsonable
from runtime_logging._pipeline import (
    LogEvent,
    application_code,
    background_thread,
    level_name,
)
from runtime_logging.config import LEVELS, Settings, mask_url
from runtime_logging.errors import ConfigurationError, MissingExtraError
from runtime_logging.redaction import RedactionPolicy
from runtime_logging.schema import STANDARD_KEYS, TRACE_KEYS, TRAILING_KEYS
from runtime_logging.sinks._queue import QueuedSink

if TYPE_CHECKING:
    from sentry_sdk.scope import Scope

#: An application's own hook: ``(event, hint) -> event or None``, as sentry-sdk's.
BeforeSend = Callable[[dict[str, Any], dict[str, Any]], "dict[str, Any] | None"]

#: Set on an exception once an event for it was sent.
SEEN_ATTRIBUTE = "__runtime_logging_sentry_sent__"

#: The logger sentry-sdk reports its own failures on.
SDK_LOGGER = "sentry_sdk.errors"

_FROM_PIPELINE = "runtime_logging"
#: The ``sentry.origin`` of the logs the pipeline sends, already redacted.
LOG_ORIGIN = "auto.log.runtime_logging"
_NOT_EXTRA = frozenset(STANDARD_KEYS + TRACE_KEYS + TRAILING_KEYS)
_NO_ANSWER = "no answer before the shutdown time ran out"
#: The fields of a queued error until `_Capture.read_fields`; never written.
_UNREAD: dict[str, Any] = {}
_PLATFORMS = {"darwin": "macos", "win32": "windows", "cygwin": "windows"}
_LOG_LEVELS = {
    "debug": "debug",
    "info": "info",
    "warning": "warning",
    "error": "error",
    "critical": "fatal",
}


def require_sentry_sdk(setting: str = "sentry_dsn") -> None:
    """Raise `MissingExtraError` naming *setting* when sentry-sdk is missing."""
    try:
        import sentry_sdk  # noqa: F401, PLC0415 - loaded only when a DSN is set
    except ImportError:
        raise MissingExtraError(setting, "sentry", "sentry-sdk") from None


def check_dsn(dsn: str) -> None:
    """Raise `ConfigurationError` unless sentry-sdk is there and takes *dsn*."""
    require_sentry_sdk()
    from sentry_sdk.utils import BadDsn, Dsn  # noqa: PLC0415

    try:
        Dsn(dsn)
    except (BadDsn, ValueError) as error:  # ValueError: a port urllib can't read
        shown = mask_url(dsn)
        raise ConfigurationError(
            f"`sentry_dsn` is {shown!r}, which sentry-sdk refuses ({error}); "
            "copy the DSN from the Sentry project's Client Keys page, such as "
            "'https://<key>@<host>/<project id>', or set '' for no Sentry."
        ) from None


def platform_name() -> str:
    """The operating system as the ``platform`` tag names it: linux, macos, ..."""
    return _PLATFORMS.get(sys.platform, sys.platform)


def _first_sighting(error: BaseException) -> bool:
    """Whether *error* is seen for the first time; marks it seen."""
    if getattr(error, SEEN_ATTRIBUTE, False):
        return False
    # An exception that refuses attributes is sent each time it is seen.
    with contextlib.suppress(Exception):
        setattr(error, SEEN_ATTRIBUTE, True)
    return True


class _Breadcrumb:
    """A pipeline breadcrumb as the scope keeps it until an event is built.

    Its fields are the event's, already redacted, so it skips sentry-sdk's
    ``before_breadcrumb``; `render_breadcrumbs` gives it Sentry's form.
    """

    __slots__ = ("_when", "fields", "level", "logger", "time_ns")

    def __init__(self, event: LogEvent) -> None:
        self.fields = event.fields
        self.level = event.level
        self.logger = event.logger
        self.time_ns = event.time_ns
        self._when: dt.datetime | None = None

    @property
    def when(self) -> dt.datetime:
        """Its time, as the datetime sentry-sdk's breadcrumbs hold."""
        when = self._when
        if when is None:
            when = self._when = _datetime(self.time_ns)
        return when

    def __getitem__(self, key: str) -> Any:
        # sentry-sdk sorts an event's breadcrumbs by ``crumb["timestamp"]``.
        if key == "timestamp":
            return self.when
        return self.as_dict()[key]

    def as_dict(self) -> dict[str, Any]:
        """The breadcrumb as sentry-sdk's ``add_breadcrumb`` would have kept it."""
        return _RenderedBreadcrumb(self)


class _RenderedBreadcrumb(dict[str, Any]):
    """A pipeline breadcrumb in Sentry's form, as event processors see it.

    sentry-sdk's serializer walks each value of an event, a hundred
    breadcrumbs of a dozen fields included: most of the milliseconds an
    event costs its background thread. A breadcrumb that is still as it was
    rendered here, with flat data of plain JSON scalars under str keys, is
    already what the serializer would make of it: `_BreadcrumbScrubber`
    takes it out of the event before serialization, redacted as `_finish`
    would redact it, and `SentrySink._before_send` puts it back.
    """

    __slots__ = ("_data", "_made", "_plain")

    def __init__(self, crumb: _Breadcrumb) -> None:
        fields = crumb.fields
        data = _own_fields(fields)
        made = (
            "log",
            crumb.logger,
            level_name(crumb.level),
            str(fields.get("event", "")),
            data,
            crumb.when,
        )
        self._plain = len(data) <= _DATABAG_BREADTH and all(
            type(key) is str and _is_plain(value) for key, value in data.items()
        )
        if not self._plain:
            for key, value in data.items():
                if type(value) is int:
                    # Past 64 bits: as the line writes it, since an int too
                    # long for decimal text fails the whole envelope.
                    data[key] = to_jsonable(value)
        super().__init__(zip(_CRUMB_KEYS, made, strict=True))
        self._made = made
        self._data = tuple(data.items())

    def serialized(
        self,
        policy: RedactionPolicy,
        max_length: int | None,
        timestamp: Callable[[dt.datetime], str],
    ) -> dict[str, Any] | None:
        """Its serialized and redacted form; None unless it is unchanged.

        Unchanged means that no event processor or scrubber replaced or
        added a value since it was rendered: its values are then the plain
        scalars the serializer leaves as they are, and *policy* redacts
        them as it would redact them in the whole event.
        """
        made = self._made
        if not self._plain or len(self) != len(made):
            return None
        values = tuple(map(self.get, _CRUMB_KEYS))
        if not all(map(operator.is_, values, made)):
            return None
        data = made[4]
        items = self._data
        if len(data) != len(items) or not all(
            data.get(key, _MISSING) is value for key, value in items
        ):
            return None
        data = dict(items)
        policy.redact_fields(data)  # what redact_value does to flat fields
        category = policy.redact_message(made[1])
        message = policy.redact_message(made[3])
        if max_length is not None and any(
            type(value) is str and len(value) > max_length
            for value in (category, message, *data.values())
        ):
            return None
        return {
            "type": made[0],
            "category": category,
            "level": made[2],
            "message": message,
            "data": data,
            "timestamp": timestamp(made[5]),
        }


def _is_plain(value: object) -> bool:
    """Whether sentry-sdk's serializer and its JSON writer leave *value* as it is."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return -(2**63) <= value < 2**64  # type: ignore[operator]
    return kind is float and math.isfinite(value)  # type: ignore[arg-type]


#: A breadcrumb's keys, as sentry-sdk's ``add_breadcrumb`` makes them.
_CRUMB_KEYS = ("type", "category", "level", "message", "data", "timestamp")
#: The fields of a breadcrumb's data sentry-sdk's serializer keeps.
_DATABAG_BREADTH = 10
_MISSING = object()


def render_breadcrumbs(event: Any, hint: dict[str, Any]) -> Any:
    """Give the pipeline's breadcrumbs in *event* Sentry's form (event processor).

    Event processors run before sentry-sdk scrubs and serializes the event,
    and after it merged the scopes' breadcrumbs in time order.
    """
    del hint
    crumbs = event.get("breadcrumbs")
    values = crumbs.get("values") if isinstance(crumbs, dict) else None
    if isinstance(values, list):
        crumbs["values"] = [
            crumb.as_dict() if isinstance(crumb, _Breadcrumb) else crumb
            for crumb in values
        ]
    return event


def _scrubber_class() -> type[Any]:
    """sentry-sdk's scrubber, which also holds back unchanged pipeline breadcrumbs."""
    from sentry_sdk.scrubber import EventScrubber  # noqa: PLC0415
    from sentry_sdk.serializer import global_repr_processors  # noqa: PLC0415
    from sentry_sdk.utils import format_timestamp  # noqa: PLC0415

    class BreadcrumbScrubber(EventScrubber):
        """Scrubs as sentry-sdk does, then holds back the breadcrumbs it can.

        The scrubber runs after the event processors and just before the
        serializer: what it holds back is in its final form, and the event
        keeps a None in its place until `put_back` puts it back.
        """

        def __init__(self, policy: RedactionPolicy) -> None:
            super().__init__(send_default_pii=False)
            self.policy = policy
            #: sentry-sdk's ``max_value_length``: longer strings are cut.
            self.max_length: int | None = None
            #: Breadcrumbs held back, by event id, until its ``before_send``.
            self.held: dict[str, dict[int, dict[str, Any]]] = {}

        def scrub_breadcrumbs(self, event: Any) -> None:
            super().scrub_breadcrumbs(event)
            event_id = event.get("event_id")
            if global_repr_processors or not event_id:
                return  # the application's own repr: the serializer's work
            held = _hold_back(event, self.policy, self.max_length, format_timestamp)
            if held:
                if len(self.held) >= _HELD_EVENTS:
                    # An event that never reached before_send (its serializer
                    # failed): its breadcrumbs went with it.
                    self.held.pop(next(iter(self.held)))
                self.held[event_id] = held

        def take(self, event: dict[str, Any]) -> dict[int, dict[str, Any]]:
            """What was held back of *event*'s breadcrumbs, by position."""
            return self.held.pop(event.get("event_id", ""), None) or {}

    return BreadcrumbScrubber


def _breadcrumb_list(event: Any) -> list[Any] | None:
    crumbs = event.get("breadcrumbs")
    values = crumbs.get("values") if type(crumbs) is dict else None
    return values if isinstance(values, list) else None


def _hold_back(
    event: Any,
    policy: RedactionPolicy,
    max_length: int | None,
    timestamp: Callable[[dt.datetime], str],
) -> dict[int, dict[str, Any]]:
    """Take *event*'s unchanged pipeline breadcrumbs out, final, by position."""
    values = _breadcrumb_list(event)
    held = {}
    for index, crumb in enumerate(values or ()):
        if type(crumb) is _RenderedBreadcrumb:
            serialized = crumb.serialized(policy, max_length, timestamp)
            if serialized is not None:
                held[index] = serialized
                values[index] = None  # type: ignore[index]
    return held


def _put_back(event: dict[str, Any], held: dict[int, dict[str, Any]]) -> None:
    """Put *held* breadcrumbs back in *event* where they were."""
    values = _breadcrumb_list(event) if held else None
    if values is not None:
        for index, crumb in held.items():
            if index < len(values) and values[index] is None:
                values[index] = crumb


#: Events whose held-back breadcrumbs wait for their ``before_send`` at most.
_HELD_EVENTS = 64


#: Scopes' values in `_ScopeCopier.names` order, each followed by copies of
#: its containers (None when they were all empty): one object for them all.
_ScopeState = tuple[Any, ...]


class _ScopeCopier:
    """Takes what ``Scope.fork()`` would of a Sentry scope, without the garbage.

    A fork copies a dozen containers, mostly empty, and an error that waits
    in the queue keeps them all: enough objects to set off the collector on
    the caller's thread. This keeps the scope's values in one tuple and
    copies only the containers that hold something, as fork copies them;
    `make` puts the scope together on the background thread.
    """

    def __init__(self) -> None:
        """Learn from a blank scope which of its values fork copies."""
        from sentry_sdk.scope import Scope  # noqa: PLC0415

        blank = Scope()
        _ = blank.flags  # made on first use; fork copies it too
        forked = blank.fork()
        self.names = tuple(name for name in Scope.__slots__ if hasattr(blank, name))
        copied = tuple(
            name
            for name in self.names
            if getattr(forked, name) is not getattr(blank, name)
        )
        self._copied = tuple((self.names.index(name), name) for name in copied)
        self._values = operator.attrgetter(*self.names)
        self._containers = operator.attrgetter(*copied)
        self._scope_class = Scope
        #: The last state without copies, and the values it was taken from.
        self._last: tuple[tuple[Any, ...], tuple[Any, ...], _ScopeState] | None = None

    def take(self, isolation: Scope, current: Scope) -> _ScopeState:
        """The *isolation* and *current* scopes as they are now."""
        isolation_values = self._values(isolation)
        current_values = self._values(current)
        isolation_copies = self._copies(isolation)
        current_copies = self._copies(current)
        if isolation_copies is not None or current_copies is not None:
            return (
                *isolation_values,
                isolation_copies,
                *current_values,
                current_copies,
            )
        # Nothing to copy: the same values as the last error's are the same
        # state, and a burst of errors shares one.
        last = self._last
        if (
            last is not None
            and all(map(operator.is_, isolation_values, last[0]))
            and all(map(operator.is_, current_values, last[1]))
        ):
            return last[2]
        state = (*isolation_values, None, *current_values, None)
        self._last = isolation_values, current_values, state
        return state

    def _copies(self, scope: Scope) -> tuple[Any, ...] | None:
        """Copies of the containers that hold something; None for the others."""
        held = self._containers(scope)
        if not any(held):
            return None
        return tuple([_copy_value(value) if value else None for value in held])

    def make(self, state: _ScopeState) -> tuple[Scope, Scope]:
        """The isolation and current scopes as *state* took them."""
        size = len(self.names) + 1
        return self._make(state[:size]), self._make(state[size:])

    def _make(self, state: _ScopeState) -> Scope:
        values, copies = state[:-1], state[-1]
        scope = object.__new__(self._scope_class)
        for name, value in zip(self.names, values, strict=True):
            setattr(scope, name, value)
        for number, (index, name) in enumerate(self._copied):
            copied = None if copies is None else copies[number]
            if copied is None:
                # It was empty, or None: the scope's own may have filled since.
                value = values[index]
                copied = None if value is None else type(value)()
            setattr(scope, name, copied)
        return scope


def _copy_value(value: Any) -> Any:
    """*value* copied as ``Scope.fork()`` copies it."""
    if value is None:
        return None
    if isinstance(value, (dict, list, deque)):
        return value.copy()
    return copy.deepcopy(value)


class _Capture(LogEvent):
    """An event to send, with its caller's Sentry scopes as they were.

    It keeps the event's JSON line, not its fields (one object fewer per
    queued error for the collector to count on the caller's thread);
    `read_fields` gets them back on the background thread.
    """

    __slots__ = ("scopes",)

    def __init__(self, event: LogEvent, scopes: _ScopeState) -> None:
        super().__init__(
            _UNREAD,
            event.level,
            event.logger,
            event.time_ns,
            event.exc_info,
            event.template,
        )
        # Rendered once for every sink; the event itself is not kept.
        self._line = event.json_line
        self.scopes = scopes

    def read_fields(self) -> None:
        """Read the fields back from the line."""
        # The stdlib's parser: orjson reads integers past 64 bits as floats.
        fields = json.loads(self.json_line)
        self.fields = fields if isinstance(fields, dict) else {}


class SentrySink(QueuedSink):
    """Sends errors, breadcrumbs and logs to Sentry; see the module."""

    name = "sentry"

    def __init__(
        self,
        settings: Settings,
        policy: RedactionPolicy | None = None,
        before_send: BeforeSend | None = None,
    ) -> None:
        """Initialise sentry-sdk from *settings*; *before_send* runs after ours.

        Raises:
            MissingExtraError: sentry-sdk is not installed.
        """
        require_sentry_sdk()
        self.event_level = LEVELS[settings.sentry_event_level]
        self.breadcrumb_level = LEVELS[settings.sentry_breadcrumb_level]
        self.logs_level = (
            LEVELS[settings.sentry_logs_level] if settings.sentry_logs else 100
        )
        super().__init__(
            max_entries=settings.queue_size,
            batch_entries=1,
            batch_interval=1.0,
            min_level=min(self.event_level, self.breadcrumb_level, self.logs_level),
        )
        self.settings = settings
        self.policy = policy or RedactionPolicy(
            settings.redact_keys, settings.redact_keys_allow
        )
        self.tags = {
            "component": settings.service,
            "platform": platform_name(),
            "service": settings.service,
            "host": socket.gethostname(),
            **settings.sentry_tags,
        }
        self._user_before_send = before_send
        self._sdk_logger_propagates: bool | None = None
        #: Events handed to sentry-sdk, by id, waiting for their request's end.
        self._outcomes: dict[str, _Outcome] = {}
        self._last_failed = False
        self.client = self._init_sdk()
        self._scrubber.max_length = self.client.options.get("max_value_length")
        self.max_breadcrumbs = int(self.client.options["max_breadcrumbs"])
        self._scopes = _ScopeCopier()

    # Set-up and tear-down of sentry-sdk.

    def _init_sdk(self) -> Any:
        import sentry_sdk  # noqa: PLC0415 - only a configured DSN loads the SDK
        from sentry_sdk.integrations.atexit import (  # noqa: PLC0415
            AtexitIntegration,
        )
        from sentry_sdk.integrations.logging import (  # noqa: PLC0415
            LoggingIntegration,
        )

        settings = self.settings
        self._quiet_sdk_logger()
        self._scrubber = _scrubber_class()(self.policy)
        options: dict[str, Any] = {
            "dsn": settings.sentry_dsn,
            "environment": settings.environment,
            "release": settings.release,
            "server_name": self.tags["host"],
            "traces_sample_rate": settings.traces_sample_rate,
            # Transaction-based profiling (``profiles_sample_rate``) is
            # deprecated in sentry-sdk 2.x; profiling the sampled traces of a
            # share of processes is its replacement.
            "profile_session_sample_rate": settings.profiles_sample_rate,
            "profile_lifecycle": "trace",
            "shutdown_timeout": settings.shutdown_timeout,
            "include_local_variables": settings.include_locals,
            "enable_logs": settings.sentry_logs,
            # The pipeline feeds Sentry itself: sentry-sdk's logging
            # integration would see every stdlib record a second time, and
            # its atexit hook would close the client before this sink drains.
            "disabled_integrations": [LoggingIntegration, AtexitIntegration],
            "transport": _transport_class(
                settings.sentry_connect_timeout,
                settings.sentry_read_timeout,
                self._sent,
            ),
            "event_scrubber": self._scrubber,
            "before_send": self._before_send,
            "before_send_transaction": self._before_send_transaction,
            "before_breadcrumb": self._before_breadcrumb,
            "before_send_log": self._before_send_log,
        }
        sentry_sdk.init(**options)
        _add_render_breadcrumbs()
        return sentry_sdk.get_client()

    def _quiet_sdk_logger(self) -> None:
        # sentry-sdk reports on stderr itself when its debug option (or
        # SENTRY_DEBUG) is on; propagated, its reports would loop back here.
        sdk_logger = logging.getLogger(SDK_LOGGER)
        self._sdk_logger_propagates = sdk_logger.propagate
        sdk_logger.propagate = False

    def _restore_sdk_logger(self) -> None:
        if self._sdk_logger_propagates is not None:
            logging.getLogger(SDK_LOGGER).propagate = self._sdk_logger_propagates
            self._sdk_logger_propagates = None

    # The caller's side.

    def emit(self, event: LogEvent) -> None:
        """Add a breadcrumb or queue an event; log to Sentry when asked."""
        if event.logger.startswith("sentry_sdk"):
            return
        level = event.level
        if level >= self.event_level:
            error = event.exc_info[1] if event.exc_info else None
            if error is None or _first_sighting(error):
                import sentry_sdk  # noqa: PLC0415 - loaded once the sink exists

                scopes = self._scopes.take(
                    sentry_sdk.get_isolation_scope(), sentry_sdk.get_current_scope()
                )
                super().emit(_Capture(event, scopes))
        elif level >= self.breadcrumb_level:
            self._add_breadcrumb(event)
        if level >= self.logs_level:
            self._capture_log(event)

    def _add_breadcrumb(self, event: LogEvent) -> None:
        # sentry-sdk's add_breadcrumb costs microseconds and a dozen objects
        # per call; the scope's own buffer keeps what fork, clear and merge
        # of scopes expect, and `render_breadcrumbs` does the rest later.
        import sentry_sdk  # noqa: PLC0415 - loaded once the sink exists

        scope = sentry_sdk.get_isolation_scope()
        crumbs: deque[Any] = scope._breadcrumbs  # noqa: SLF001
        crumbs.append(_Breadcrumb(event))
        if len(crumbs) > self.max_breadcrumbs:
            crumbs.popleft()
            scope._n_breadcrumbs_truncated += 1  # noqa: SLF001

    def _capture_log(self, event: LogEvent) -> None:
        import sentry_sdk.logger  # noqa: PLC0415 - loaded once the sink exists

        attributes = {
            f"log.{key}": value for key, value in _own_fields(event.fields).items()
        }
        attributes["logger.name"] = event.logger
        attributes["sentry.origin"] = LOG_ORIGIN
        attributes.update(self.tags)
        send = getattr(sentry_sdk.logger, _LOG_LEVELS[level_name(event.level)])
        send(event.event, attributes=attributes)

    # The background side.

    def warm_up(self) -> None:
        """Read the installed packages for the events' ``modules`` now.

        sentry-sdk reads every installed package's metadata on its first
        event (tens of ms, more with more packages), here on this thread:
        at the first error, that would be taken from the callers in slices.
        """
        from sentry_sdk import utils  # noqa: PLC0415 - loaded once the sink exists

        installed_modules = getattr(utils, "_get_installed_modules", None)
        if installed_modules is not None:
            installed_modules()

    def deliver(self, batch: Sequence[LogEvent]) -> int:
        """Hand each event to sentry-sdk within the scopes its caller had."""
        import sentry_sdk  # noqa: PLC0415 - loaded once the sink exists
        from sentry_sdk.scope import (  # noqa: PLC0415
            use_isolation_scope,
            use_scope,
        )

        sent = 0
        for item in batch:
            if not isinstance(item, _Capture):
                continue
            if self._last_failed and self.time_left() is not None:
                # Closing after a failed request: the rest would fail too.
                continue
            self._wait_for_transport()
            item.read_fields()
            isolation, scope = self._scopes.make(item.scopes)
            event, hint = self._sentry_event(item, scope.span)
            outcome = self._outcomes[event["event_id"]] = _Outcome()
            with use_isolation_scope(isolation), use_scope(scope):
                handed = sentry_sdk.capture_event(event, hint)
            if handed is None:
                outcome.settle("not sent: a before_send hook or sampling dropped it")
            error = self._wait_for(outcome)
            self._outcomes.pop(event["event_id"], None)
            self._last_failed = error is not None
            if error is None:
                sent += 1
                self._recovered()
            else:
                self._failed("send", error, report=False)
        return sent

    def _wait_for(self, outcome: _Outcome) -> str | None:
        """The request's error (None for success); waits until closing ends."""
        # One wake-up per answer, not a poll: a thread that wakes takes the
        # GIL from the callers at their next write.
        while not outcome.done.is_set():
            left = self.time_left()
            if self._closed or (left is not None and left <= 0):
                return _NO_ANSWER
            outcome.done.wait(left)
        return outcome.error

    def interrupt(self) -> None:
        """Stop waiting for the answers; `close()` has given up on them."""
        for outcome in list(self._outcomes.values()):
            outcome.settle(_NO_ANSWER)

    def _sent(self, event_id: str, error: str | None) -> None:
        """sentry-sdk's worker ended the request for *event_id*."""
        outcome = self._outcomes.get(event_id)
        if outcome is not None:
            outcome.settle(error)

    def _wait_for_transport(self) -> None:
        # sentry-sdk's transport queues 100 envelopes and drops the rest
        # uncounted here; waiting while it is full (or rate-limited) keeps the
        # excess in this sink's queue, whose drops are bounded and counted.
        transport = self.client.transport
        is_healthy = getattr(transport, "is_healthy", None)
        pause = 0.01
        while is_healthy is not None and not self._closed and not is_healthy():
            self._stopped.wait(pause)
            pause = min(0.1, pause * 2)

    def _sentry_event(self, item: LogEvent, span: object) -> tuple[Any, dict[str, Any]]:
        from sentry_sdk.utils import event_from_exception  # noqa: PLC0415

        event: Any
        hint: dict[str, Any]
        if item.exc_info is not None:
            event, hint = event_from_exception(
                item.exc_info,
                client_options=self.client.options,
                mechanism={"type": "logging", "handled": True},
            )
            fingerprint = ["{{ default }}", item.name]
        else:
            event, hint = {}, {}
            fingerprint = [item.name]
        hint[_FROM_PIPELINE] = True
        event["event_id"] = uuid.uuid4().hex
        event.update(
            {
                "level": "fatal" if item.level >= LEVELS["critical"] else "error",
                "logger": item.logger,
                "logentry": {"message": item.name, "formatted": item.event},
                "extra": _own_fields(item.fields),
                "fingerprint": fingerprint,
                "timestamp": _datetime(item.time_ns),
            }
        )
        trace = None if span is not None else _trace_context(item)
        if trace is not None:
            event["contexts"] = {"trace": trace}
        return event, hint

    # sentry-sdk's hooks.

    def _before_send(
        self, event: dict[str, Any], hint: dict[str, Any]
    ) -> dict[str, Any] | None:
        held = self._scrubber.take(event)
        error = (hint.get("exc_info") or (None, None))[1]
        # Captured by sentry-sdk itself (uncaught, a thread, the application):
        # the pipeline may already have sent this exception.
        if (
            isinstance(error, BaseException)
            and not hint.get(_FROM_PIPELINE)
            and not _first_sighting(error)
        ):
            return None
        event = self._finish(event)
        # After redaction: the breadcrumbs held back were redacted as they
        # were held back, by the same policy.
        _put_back(event, held)
        if self._user_before_send is not None:
            with application_code():
                return self._user_before_send(event, hint)
        return event

    def _before_send_transaction(
        self, event: dict[str, Any], hint: dict[str, Any]
    ) -> dict[str, Any] | None:
        del hint
        return self._finish(event)

    def _before_breadcrumb(
        self, crumb: dict[str, Any], hint: dict[str, Any]
    ) -> dict[str, Any] | None:
        del hint
        redacted: dict[str, Any] = self.policy.redact_value(crumb)
        return redacted

    def _before_send_log(
        self, log: dict[str, Any], hint: dict[str, Any]
    ) -> dict[str, Any] | None:
        del hint
        attributes = log.get("attributes")
        if isinstance(attributes, dict) and attributes.get("sentry.origin") == (
            LOG_ORIGIN
        ):
            return log  # the pipeline redacted it before the fan-out
        redacted: dict[str, Any] = self.policy.redact_value(log)
        return redacted

    def _finish(self, event: dict[str, Any]) -> dict[str, Any]:
        event = self.policy.redact_value(event)
        tags = event.get("tags")
        event["tags"] = {**self.tags, **tags} if isinstance(tags, dict) else self.tags
        return event

    # Lifecycle.

    def flush(self, timeout: float | None = None) -> None:
        """Send what is queued here and in sentry-sdk, within *timeout*."""
        timeout = self.settings.shutdown_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        super().flush(timeout)
        self.client.flush(timeout=max(0.001, deadline - time.monotonic()))

    def close(self, timeout: float | None = None) -> None:
        """Drain within *timeout*, close sentry-sdk's client and its transport."""
        timeout = self.settings.shutdown_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        super().close(timeout)
        # The transport's worker may sit in a request to a hung server: it is
        # a daemon thread, so waiting no longer than the deadline is enough.
        transport = self.client.transport
        self.client.flush(timeout=max(0.001, deadline - time.monotonic()))
        unsent = _unsent_envelopes(transport)
        if unsent:
            diagnostics.failure(
                f"sink {self.name}",
                f"{unsent} envelopes (events or batches of logs) were not sent "
                "within shutdown_timeout",
            )
        self.client.close(timeout=0.0)
        self._uninstall_client()
        self._restore_sdk_logger()

    def _uninstall_client(self) -> None:
        # A closed client left installed keeps its options: with ``debug``
        # on, sentry-sdk's late reports would pass its filter and reach the
        # next set-up's pipeline.
        import sentry_sdk  # noqa: PLC0415 - loaded once the sink exists

        for scope in (
            sentry_sdk.get_global_scope(),
            sentry_sdk.get_isolation_scope(),
            sentry_sdk.get_current_scope(),
        ):
            if scope.client is self.client:
                scope.set_client(None)


class _Outcome:
    """How sentry-sdk's request for one event ended."""

    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: str | None = None

    def settle(self, error: str | None) -> None:
        self.error = error
        self.done.set()


def _trace_context(item: LogEvent) -> dict[str, str] | None:
    """The line's trace (OpenTelemetry's too) for an event outside a Sentry span.

    Inside a Sentry span, sentry-sdk fills the trace context itself, with
    the same ids and more (``op``, the parent span).
    """
    trace_id = item.fields.get("trace_id")
    span_id = item.fields.get("span_id")
    if isinstance(trace_id, str) and isinstance(span_id, str):
        return {"trace_id": trace_id, "span_id": span_id}
    return None


def _add_render_breadcrumbs() -> None:
    """Run `render_breadcrumbs` for every event, before any other processor.

    First, so that the application's own processors (a scrubber registered
    before `configure_logging()`) see breadcrumbs as the dicts they expect.
    """
    from sentry_sdk.scope import global_event_processors  # noqa: PLC0415

    if global_event_processors[:1] != [render_breadcrumbs]:
        with contextlib.suppress(ValueError):
            global_event_processors.remove(render_breadcrumbs)
        global_event_processors.insert(0, render_breadcrumbs)


def _unsent_envelopes(transport: Any) -> int:
    """Envelopes still in sentry-sdk's transport queue (0 when unknown)."""
    # sentry-sdk logs this count only with its debug option on; its queue is
    # the one place it is kept.
    queue = getattr(getattr(transport, "_worker", None), "_queue", None)
    try:
        return int(queue.unfinished_tasks) if queue is not None else 0
    except Exception:
        return 0


def _own_fields(fields: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if key not in _NOT_EXTRA}


def _datetime(time_ns: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(time_ns / 1e9, dt.timezone.utc)


def _transport_class(
    connect_timeout: float,
    read_timeout: float,
    sent: Callable[[str, str | None], None],
) -> type[Any]:
    """sentry-sdk's HTTP transport with explicit timeouts, quiet in the pipeline.

    It tells *sent* how each event's request ended: ``(event_id, None)`` on
    success, ``(event_id, reason)`` when sentry-sdk dropped it.
    """
    import urllib3  # noqa: PLC0415 - sentry-sdk's own dependency
    from sentry_sdk.transport import HttpTransport  # noqa: PLC0415

    class TimedHttpTransport(HttpTransport):
        """Connect and read timeouts of their own, not one 30 s total."""

        def _get_pool_options(self) -> dict[str, Any]:
            options: dict[str, Any] = super()._get_pool_options()
            options["timeout"] = urllib3.Timeout(
                connect=connect_timeout, read=read_timeout
            )
            return options

        def _send_envelope(self, envelope: Any) -> None:
            # Runs on sentry-sdk's worker thread: what urllib3 logs there
            # (retries, refused connections) must not re-enter the pipeline,
            # and process signals are the application's threads' to take.
            background_thread()
            dropped.reason = None
            try:
                super()._send_envelope(envelope)
            except Exception as error:
                dropped.reason = f"{dropped.reason or 'request'}: {error!r}"
                raise
            finally:
                _tell(envelope)

        def capture_envelope(self, envelope: Any) -> None:
            dropped.reason = None
            super().capture_envelope(envelope)
            if dropped.reason is not None:  # refused before its request
                _tell(envelope)

        def on_dropped_event(self, reason: str) -> None:
            # sentry-sdk's one report of an envelope it gave up on: a network
            # error, an error status, a rate limit, a full queue.
            dropped.reason = f"sentry-sdk dropped it ({reason})"
            super().on_dropped_event(reason)

    def _tell(envelope: Any) -> None:
        event = envelope.get_event()
        if event is not None and "event_id" in event:
            sent(event["event_id"], dropped.reason)

    #: Why the envelope the current thread handles was dropped, if it was.
    dropped = threading.local()

    return TimedHttpTransport
