"""The Sentry sink, over the real sentry-sdk HTTP transport and a local server."""

from __future__ import annotations

import enum
import json
import logging
import os
import re
import subprocess
import sys
import textwrap
import threading
import urllib.request

import pytest
import sentry_sdk
from sentry_sdk.feature_flags import add_feature_flag
from sentry_server import SentryServer

from runtime_logging import (
    ConfigurationError,
    LogEvent,
    MissingExtraError,
    configure_logging,
)
from runtime_logging.sinks.sentry import SEEN_ATTRIBUTE, SentrySink, platform_name
from runtime_logging.testing import CaptureSink

README = os.path.join(os.path.dirname(__file__), os.pardir, "README.md")


@pytest.fixture
def server():
    server = SentryServer()
    yield server
    server.close()


@pytest.fixture
def sentry(server):
    """A set-up sending to the local server, with every event captured too."""
    for scope in (sentry_sdk.get_isolation_scope(), sentry_sdk.get_current_scope()):
        scope.clear_breadcrumbs()
    capture = CaptureSink()

    def configure(**settings):
        options = {
            "env": {},
            "console": "off",
            "log_dir": "off",
            "handle_signals": False,
            "sentry_dsn": server.dsn,
            "traces_sample_rate": 1.0,
            "profiles_sample_rate": 0.0,
            "sinks": [capture],
        }
        options.update(settings)
        return configure_logging(**options)

    configure.capture = capture
    return configure


class Mirror:
    """A value JSON has no word for."""

    def __str__(self):
        return "mirror eu-1"

    __repr__ = __str__


def capture_by_sentry_sdk():
    """Two events sentry-sdk captures on its own: a message and an exception."""
    sentry_sdk.capture_message("from sentry-sdk")
    try:
        raise KeyError("k")
    except KeyError as error:
        sentry_sdk.capture_exception(error)


class Color(enum.Enum):
    RED = "red"


def breadcrumbs(event):
    return event.get("breadcrumbs", {}).get("values", [])


def signup_crumb(sentry, server, processor, position, **fields):
    """The one breadcrumb of an event built with *processor* among the global ones.

    *position* is where it stands: 0 first, -1 last (after the toolkit's own).
    """
    from sentry_sdk.scope import global_event_processors

    if position == 0:
        global_event_processors.insert(0, processor)
    else:
        global_event_processors.append(processor)
    try:
        service = sentry()
        log = service.get_logger("signup")
        log.info("user signed up", plan="team", **fields)
        log.error("welcome mail failed")
        service.flush()
    finally:
        global_event_processors.remove(processor)
    [event] = server.events
    [crumb] = breadcrumbs(event)
    return crumb


class TestWhatGoesWhere:
    """INFO and WARNING become breadcrumbs, ERROR and CRITICAL events."""

    def test_levels(self, sentry, server):
        """DEBUG nowhere, INFO/WARNING as breadcrumbs of the next error event."""
        service = sentry(level="debug")
        log = service.get_logger("install")

        log.debug("cache probe")
        log.info("Installation started", installationId="i-1", moduleCount=3)
        log.warning("slow mirror", seconds=4.5)
        log.error("Installation failed", installationId="i-1")
        service.flush()

        [event] = server.events
        assert event["level"] == "error"
        assert event["logentry"]["formatted"] == "Installation failed"
        crumbs = [(b["level"], b["message"]) for b in breadcrumbs(event)]
        assert crumbs == [("info", "Installation started"), ("warning", "slow mirror")]
        assert breadcrumbs(event)[0]["data"] == {
            "installationId": "i-1",
            "moduleCount": 3,
        }
        assert breadcrumbs(event)[0]["category"] == "install"

    def test_critical_is_fatal(self, sentry, server):
        """CRITICAL is a fatal event."""
        service = sentry()

        service.get_logger().critical("disk gone")
        service.flush()

        assert [e["level"] for e in server.events] == ["fatal"]

    def test_fields_are_structured(self, sentry, server):
        """The event's own fields are extra data, values kept as values."""
        service = sentry()

        service.get_logger("dl").error(
            "Download failed", url="https://cdn/x.zip", attempt=3, sizes=[1, 2]
        )
        service.flush()

        [event] = server.events
        assert event["extra"]["url"] == "https://cdn/x.zip"
        assert event["extra"]["attempt"] == 3
        assert event["extra"]["sizes"] == [1, 2]
        assert event["logger"] == "dl"
        assert "timestamp" not in event["extra"]

    def test_values_as_the_line_has_them(self, sentry, server):
        """Values JSON has no word for are sent as the line renders them."""
        service = sentry()

        service.get_logger("dl").error(
            "Download failed", size=2**70 + 1, modules=("a", "b"), mirror=Mirror()
        )
        service.flush()

        [event] = server.events
        assert event["extra"]["size"] == 2**70 + 1
        assert event["extra"]["modules"] == ["a", "b"]
        assert event["extra"]["mirror"] == "mirror eu-1"

    def test_levels_are_settings(self, sentry, server):
        """sentry_event_level and sentry_breadcrumb_level move the thresholds."""
        service = sentry(sentry_event_level="warning", sentry_breadcrumb_level="error")
        log = service.get_logger()

        log.info("not kept")
        log.warning("now an event")
        service.flush()

        [event] = server.events
        assert event["logentry"]["formatted"] == "now an event"
        assert breadcrumbs(event) == []

    def test_stdlib_records_go_the_same_way(self, sentry, server):
        """A stdlib INFO is a breadcrumb and a stdlib ERROR an event, once each."""
        service = sentry()
        logger = logging.getLogger("urllib3.test")

        logger.info("connecting to %s", "mirror")
        logger.error("gave up on %s", "mirror")
        service.flush()

        [event] = server.events
        assert [b["message"] for b in breadcrumbs(event)] == ["connecting to mirror"]
        assert event["logentry"]["formatted"] == "gave up on mirror"


class TestBreadcrumbs:
    """The pipeline's breadcrumbs, as sentry-sdk's own would be kept and sent."""

    def test_order_and_bound(self, sentry, server):
        """Merged in time order with sentry-sdk's own; the last 100 are kept."""
        service = sentry()
        log = service.get_logger("steps")

        for n in range(150):
            if n % 10 == 0:
                sentry_sdk.add_breadcrumb(message=f"own {n}", category="app")
            log.info("step %d", n, n=n)
        log.error("failed")
        service.flush()

        [event] = server.events
        expected = [
            f"own {n}" if step == "own" else f"step {n}"
            for n in range(150)
            for step in ("own", "log")
            if step == "log" or n % 10 == 0
        ][-100:]
        assert [b["message"] for b in breadcrumbs(event)] == expected
        step = next(b for b in breadcrumbs(event) if b["message"] == "step 149")
        assert step["data"] == {"n": 149}
        assert step["category"] == "steps"
        assert step["type"] == "log"
        assert step["level"] == "info"

    def test_applications_processors_see_dicts(self, sentry, server):
        """A processor registered before configuring can change them."""

        def scrub_emails(event, hint):
            for crumb in breadcrumbs(event):
                crumb["data"].pop("email", None)
            return event

        # As if registered before configuring: first.
        crumb = signup_crumb(sentry, server, scrub_emails, 0, email="alice@example.org")

        assert crumb["data"] == {"plan": "team"}
        assert b"alice@example.org" not in server.raw

    def test_changed_by_a_processor_redacted_again(self, sentry, server):
        """What a processor puts into a pipeline breadcrumb is redacted too."""

        def add_secrets(event, hint):
            for crumb in breadcrumbs(event):
                crumb["data"]["password"] = "hunter2"
                crumb["message"] = "login token=t0k3n"
            return event

        crumb = signup_crumb(sentry, server, add_secrets, -1)

        assert crumb["data"]["plan"] == "team"
        assert crumb["data"]["password"] != "hunter2"
        assert crumb["message"] == "login token=[REDACTED:pair]"
        assert b"hunter2" not in server.raw
        assert b"t0k3n" not in server.raw

    def test_sent_as_sentry_sdk_serializes_them(self, sentry, server):
        """The same breadcrumbs, whether or not sentry-sdk's serializer walked them.

        A repr processor of the application's makes every breadcrumb go
        through the serializer: the second event is the reference.
        """
        from sentry_sdk.serializer import global_repr_processors

        service = sentry()
        log = service.get_logger("steps")
        for n in range(120):
            log.info("step %d", n, n=n, ok=n % 2 == 0, ratio=n / 7, name=None)
        log.warning("many fields", **{f"f{i}": i for i in range(12)})
        log.info("not plain", mirror=Mirror(), size=2**70, sizes=[1, 2])
        log.info("crlf", text="a\r\nb \u2028 é")
        sentry_sdk.add_breadcrumb(message="own", category="app", data={"k": 1})
        log.error("first")
        service.flush()  # built before the repr processor is there

        def not_mine(value, hint):
            return NotImplemented

        global_repr_processors.append(not_mine)
        try:
            log.error("second")
            service.flush()
        finally:
            global_repr_processors.remove(not_mine)

        first, second = server.events
        assert len(breadcrumbs(first)) == 100
        assert breadcrumbs(first) == breadcrumbs(second)
        assert first.get("_meta", {}).get("breadcrumbs") == second.get("_meta", {}).get(
            "breadcrumbs"
        )
        many = next(b for b in breadcrumbs(first) if b["message"] == "many fields")
        assert len(many["data"]) == 10  # sentry-sdk keeps ten fields of a databag
        assert re.fullmatch(
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", many["timestamp"]
        )

    def test_values_a_processor_or_the_caller_changes_later(self, sentry, server):
        """Containers filled after the call, empty odd values: redacted, sent."""
        service = sentry()
        log = service.get_logger("vault")
        secrets: dict[str, str] = {}
        api_keys: list[str] = []

        log.info("loading", secrets=secrets, api_keys=api_keys)
        log.info("empty", api_tokens=set(), access_token=b"")
        secrets["db"] = "hunter2-db"
        api_keys.append("hunter2-api")
        log.error("vault unreachable")
        sentry_sdk.capture_message("from sentry-sdk")
        service.flush()

        assert len(server.events) == 2
        loading, empty = breadcrumbs(server.events[0])
        assert loading["data"] == {
            "secrets": "[REDACTED:secrets]",
            "api_keys": "[REDACTED:apikeys]",
        }
        assert empty["data"] == {"api_tokens": [], "access_token": ""}
        assert b"hunter2" not in server.raw

    def test_logger_names_and_later_policies(self, sentry, server):
        """A logger name is redacted; a new set-up's policy covers older crumbs."""
        service = sentry()
        logging.getLogger("postgres://app:hunter2@db/app").warning("slow")
        service.get_logger("boot").info("customer", customer_ssn="078-05-1120")
        service = sentry(redact_keys=["customer_ssn"])
        service.get_logger("app").error("failed")
        service.flush()

        [event] = server.events
        slow, customer = breadcrumbs(event)
        assert "hunter2" not in slow["category"]
        assert customer["data"] == {"customer_ssn": "[REDACTED:customerssn]"}
        assert b"hunter2" not in server.raw
        assert b"078-05-1120" not in server.raw

    def test_keys_and_numbers_json_has_trouble_with(self, sentry, server):
        """Keys that are not strings and huge integers don't cost later events."""
        service = sentry()
        stdlib = logging.getLogger("db")

        stdlib.info("flags", extra={True: 1, None: "x", Color.RED: 3})
        service.get_logger("db").info("huge", n=10**5000)
        stdlib.error("first")
        stdlib.error("second")
        service.flush()

        first, second = server.events
        flags, huge = breadcrumbs(first)
        assert flags["data"] == {"True": 1, "None": "x", "Color.RED": 3}
        assert huge["data"]["n"].startswith("0x")
        assert breadcrumbs(second) == breadcrumbs(first)

    def test_scrubbed_by_sentry_sdk(self, sentry, server):
        """sentry-sdk's own scrubber still sees the pipeline's breadcrumbs."""
        service = sentry()
        log = service.get_logger("web")

        log.info("request", ip_address="203.0.113.9", path="/install")
        log.error("failed")
        service.flush()

        [event] = server.events
        [crumb] = breadcrumbs(event)
        assert crumb["data"]["path"] == "/install"
        assert crumb["data"]["ip_address"] == "[Filtered]"
        assert b"203.0.113.9" not in server.raw

    def test_in_events_sentry_sdk_captures(self, sentry, server):
        """capture_message and capture_exception carry them, rendered."""
        service = sentry()
        log = service.get_logger("install")

        log.warning("slow mirror", seconds=4.5)
        capture_by_sentry_sdk()
        service.flush()

        assert len(server.events) == 2
        for event in server.events:
            [crumb] = breadcrumbs(event)
            assert crumb["message"] == "slow mirror"
            assert crumb["data"] == {"seconds": 4.5}
            assert crumb["level"] == "warning"

    def test_redacted(self, sentry, server):
        """Pipeline breadcrumbs and sentry-sdk's own reach Sentry redacted."""
        service = sentry()

        service.get_logger().info("login password=hunter2", api_key="K9xq")
        sentry_sdk.add_breadcrumb(
            message="token=t0k3n", data={"authorization": "Bearer s3cr3t"}
        )
        service.get_logger().error("failed")
        service.flush()

        [event] = server.events
        pipeline, own = breadcrumbs(event)
        assert pipeline["message"] == "login password=[REDACTED:pair]"
        assert pipeline["data"] == {"api_key": "[REDACTED:apikey]"}
        assert "t0k3n" not in own["message"]
        for secret in (b"hunter2", b"K9xq", b"t0k3n", b"s3cr3t"):
            assert secret not in server.raw

    def test_per_isolation_scope(self, sentry, server):
        """A request's breadcrumbs stay in its scope; it inherits the ones before."""
        service = sentry()
        log = service.get_logger()

        log.info("before")
        with sentry_sdk.isolation_scope():
            log.info("in the request")
            log.error("request failed")
        log.error("later")
        service.flush()

        request, later = server.events
        assert [b["message"] for b in breadcrumbs(request)] == [
            "before",
            "in the request",
        ]
        assert [b["message"] for b in breadcrumbs(later)] == ["before"]

    def test_cleared_with_the_scope(self, sentry, server):
        """clear_breadcrumbs(), as task integrations call it, clears them too."""
        service = sentry()
        log = service.get_logger()

        log.info("previous task")
        sentry_sdk.get_isolation_scope().clear_breadcrumbs()
        log.error("failed")
        service.flush()

        [event] = server.events
        assert breadcrumbs(event) == []


class TestTags:
    """component, platform, service and host are on every event."""

    def test_every_kind_of_event(self, sentry, server):
        """Pipeline events, events sentry-sdk captures itself and transactions."""
        service = sentry(service="vscode_runtime", sentry_tags={"team": "runtime"})
        expected = {
            "component": "vscode_runtime",
            "platform": platform_name(),
            "service": "vscode_runtime",
            "team": "runtime",
        }

        with sentry_sdk.start_transaction(name="install", op="task"):
            service.get_logger().error("from the pipeline")
        capture_by_sentry_sdk()
        service.flush()

        events = [*server.events, *server.transactions]
        assert len(events) == 4
        for event in events:
            assert expected.items() <= event["tags"].items()
            assert event["tags"]["host"]
        assert server.events[0]["environment"] == "production"
        assert server.events[0]["release"] == "vscode-runtime@1.0.0"

    def test_application_tags_win(self, sentry, server):
        """A tag the application sets on its scope is kept as set."""
        service = sentry()

        sentry_sdk.get_current_scope().set_tag("component", "downloader")
        try:
            service.get_logger().error("tagged")
            service.flush()
        finally:
            sentry_sdk.get_current_scope().remove_tag("component")

        [event] = server.events
        assert event["tags"]["component"] == "downloader"
        assert event["tags"]["platform"] == platform_name()


def held_events():
    """A ``before_send`` that holds the background thread at the first event.

    Returns the event set once it is held, the event that lets it go on,
    and the hook: what is logged meanwhile is built only after it goes on.
    """
    building, go_on = threading.Event(), threading.Event()

    def before_send(event, hint):
        building.set()
        go_on.wait(10)
        return event

    return building, go_on, before_send


class TestScopesAtTheCall:
    """An event carries its caller's Sentry scopes as they were at the call."""

    def test_set_before_kept_set_after_left_out(self, sentry, server):
        """Tags, user and contexts changed after the call stay out of its event."""
        building, go_on, before_send = held_events()
        service = sentry(sentry_before_send=before_send)
        log = service.get_logger()
        with sentry_sdk.isolation_scope(), sentry_sdk.new_scope() as current:
            log.error("first")
            assert building.wait(10)
            sentry_sdk.set_tag("stage", "download")
            sentry_sdk.set_user({"id": "u-1"})
            sentry_sdk.set_context("mirror", {"region": "eu"})
            add_feature_flag("beta", result=True)
            current.set_tag("attempt", "1")
            log.error("second")
            sentry_sdk.set_tag("stage", "install")
            sentry_sdk.set_tag("late", "yes")
            sentry_sdk.set_user({"id": "u-2"})
            sentry_sdk.set_context("mirror", {"region": "us"})
            sentry_sdk.set_context("late", {"seen": True})
            add_feature_flag("late", result=True)
            current.set_tag("attempt", "2")
            go_on.set()
            service.flush()

        first, second = server.events
        assert "stage" not in first["tags"]
        assert second["tags"]["stage"] == "download"
        assert second["tags"]["attempt"] == "1"
        assert "late" not in second["tags"]
        assert second["user"] == {"id": "u-1"}
        assert second["contexts"]["mirror"] == {"region": "eu"}
        assert "late" not in second["contexts"]
        assert second["contexts"]["flags"]["values"] == [
            {"flag": "beta", "result": True}
        ]

    def test_errors_in_a_row(self, sentry, server):
        """Errors logged in a row each carry the user of their own call."""
        building, go_on, before_send = held_events()
        service = sentry(sentry_before_send=before_send)
        log = service.get_logger()
        with sentry_sdk.isolation_scope():
            log.error("first")
            assert building.wait(10)
            log.error("anonymous")
            sentry_sdk.set_user({"id": "u-1"})
            log.error("of u-1")
            log.error("of u-1 again")
            sentry_sdk.set_user({"id": "u-2"})
            go_on.set()
            service.flush()

        users = {e["logentry"]["formatted"]: e.get("user") for e in server.events}
        assert users == {
            "first": None,
            "anonymous": None,
            "of u-1": {"id": "u-1"},
            "of u-1 again": {"id": "u-1"},
        }

    def test_event_processors_of_the_scope(self, sentry, server):
        """A processor added to the caller's scope runs for the pipeline's event."""
        service = sentry()

        def add_request(event, hint):
            event["request"] = {"url": "https://app.example.com/install"}
            return event

        with sentry_sdk.new_scope() as scope:
            scope.add_event_processor(add_request)
            service.get_logger().error("in the request")
        service.get_logger().error("outside")
        service.flush()

        inside, outside = server.events
        assert inside["request"]["url"] == "https://app.example.com/install"
        assert "request" not in outside


class TestGrouping:
    """Events are grouped by their name, not the rendered text."""

    def test_same_name_one_group(self, sentry, server):
        """Two stdlib errors of one template have one fingerprint."""
        service = sentry()
        logger = logging.getLogger("dl")

        logger.error("download of %s failed", "module-1")
        logger.error("download of %s failed", "module-2")
        service.get_logger("dl").error("mirror %s down", "eu-1")
        service.get_logger("dl").error("Cache corrupted", path="/a")
        service.get_logger("dl").error("Cache corrupted", path="/b")
        service.flush()

        fingerprints = [e["fingerprint"] for e in server.events]
        assert fingerprints == [
            ["download of %s failed"],
            ["download of %s failed"],
            ["mirror %s down"],
            ["Cache corrupted"],
            ["Cache corrupted"],
        ]
        formatted = [e["logentry"]["formatted"] for e in server.events[:2]]
        assert formatted == [
            "download of module-1 failed",
            "download of module-2 failed",
        ]

    def test_exceptions_by_name_and_stack(self, sentry, server):
        """An event with an exception is grouped by its stack and its name."""
        service = sentry()

        try:
            raise ValueError("id 1234 is bad")
        except ValueError:
            service.get_logger().exception("Validation failed")
        service.flush()

        [event] = server.events
        assert event["fingerprint"] == ["{{ default }}", "Validation failed"]
        [value] = event["exception"]["values"]
        assert value["type"] == "ValueError"
        assert value["value"] == "id 1234 is bad"
        assert value["stacktrace"]["frames"]


class TestOneExceptionOneEvent:
    """However many paths see an exception, Sentry gets one event."""

    def test_structlog_then_stdlib(self, sentry, server):
        """Logged through both APIs: one event, every line still in the file."""
        service = sentry()

        try:
            raise ZeroDivisionError("division by zero")
        except ZeroDivisionError:
            service.get_logger("a").exception("failed")
            logging.getLogger("b").exception("failed again")
            logging.getLogger("b").error("and once more", exc_info=True)
        service.flush()

        assert len(server.events) == 1
        assert len(sentry.capture.events) == 3

    def test_logged_then_captured_by_sentry_sdk(self, sentry, server):
        """Logged, then handed to sentry_sdk.capture_exception: one event."""
        service = sentry()

        try:
            raise OSError("disk")
        except OSError as error:
            service.get_logger().exception("write failed")
            sentry_sdk.capture_exception(error)
        service.flush()

        assert len(server.events) == 1
        assert server.events[0]["logentry"]["formatted"] == "write failed"

    def test_captured_by_sentry_sdk_then_logged(self, sentry, server):
        """Captured by the application first, then logged: one event."""
        service = sentry()

        try:
            raise OSError("disk")
        except OSError as error:
            sentry_sdk.capture_exception(error)
            service.get_logger().exception("write failed")
        service.flush()

        assert len(server.events) == 1

    def test_logged_then_uncaught(self, sentry, server, capsys):
        """Logged, re-raised and reaching sys.excepthook: one event."""
        service = sentry()

        try:
            try:
                raise RuntimeError("fatal")
            except RuntimeError:
                service.get_logger().exception("giving up")
                raise
        except RuntimeError:
            sys.excepthook(*sys.exc_info())
        service.flush()

        assert len(server.events) == 1
        assert "RuntimeError: fatal" in capsys.readouterr().err

    def test_distinct_exceptions_are_distinct_events(self, sentry, server):
        """Two exceptions, two events; the marker is on each."""
        service = sentry()
        errors = []

        for n in range(2):
            try:
                raise ValueError(n)
            except ValueError as error:
                errors.append(error)
                service.get_logger().exception("bad value")
        service.flush()

        assert len(server.events) == 2
        assert all(getattr(error, SEEN_ATTRIBUTE) for error in errors)


class TestStructuredLogs:
    """With sentry_logs on, events are Sentry logs too, redacted the same way."""

    def test_logs(self, sentry, server):
        """Each event at sentry_logs_level and above is one log with its fields."""
        service = sentry(sentry_logs=True, sentry_logs_level="info", level="debug")
        log = service.get_logger("install")

        log.debug("not a log")
        log.info("Installation started", installationId="i-1")
        log.error("Installation failed", password="hunter2")
        service.flush()

        logs = server.logs
        assert [(entry["level"], entry["body"]) for entry in logs] == [
            ("info", "Installation started"),
            ("error", "Installation failed"),
        ]
        attributes = logs[0]["attributes"]
        assert attributes["log.installationId"]["value"] == "i-1"
        assert attributes["component"]["value"] == "vscode_runtime"
        assert b"hunter2" not in server.raw

    def test_application_logs_are_redacted(self, sentry, server):
        """Logs sent with sentry_sdk.logger directly go through the policy too."""
        import sentry_sdk.logger

        service = sentry(sentry_logs=True)

        sentry_sdk.logger.info(
            "login password=hunter2", attributes={"api_key": "K9xq", "n": 1}
        )
        service.flush()

        [entry] = server.logs
        assert entry["body"] == "login password=[REDACTED:pair]"
        assert entry["attributes"]["n"]["value"] == 1
        assert b"K9xq" not in server.raw
        assert b"hunter2" not in server.raw

    def test_off_by_default(self, sentry, server):
        """No logs unless asked for."""
        service = sentry()

        service.get_logger().info("hello")
        service.get_logger().error("bye")
        service.flush()

        assert server.logs == []
        assert len(server.events) == 1


class TestHooks:
    """The application's own before_send, and sentry-sdk's own voice."""

    def test_application_before_send(self, sentry, server):
        """It runs after redaction and tags, and can change or drop events."""
        seen = []

        def before_send(event, hint):
            seen.append(event)
            if event["logentry"]["formatted"] == "drop me":
                return None
            event["tags"]["checked"] = "yes"
            return event

        service = sentry(sentry_before_send=before_send)

        service.get_logger().error("keep me", token="abc123")
        service.get_logger().error("drop me")
        service.flush()

        [event] = server.events
        assert event["tags"]["checked"] == "yes"
        assert seen[0]["extra"]["token"] == "[REDACTED:token]"
        assert seen[0]["tags"]["component"] == "vscode_runtime"

    def test_before_send_must_be_callable(self, sentry):
        """A non-callable hook fails at configuration time."""
        with pytest.raises(ValueError, match="sentry_before_send"):
            sentry(sentry_before_send="not a function")

    def test_sdk_errors_stay_out(self, sentry, server, monkeypatch):
        """sentry-sdk's own reports, debug on, never reach the pipeline or Sentry."""
        monkeypatch.setenv("SENTRY_DEBUG", "1")
        service = sentry()

        logging.getLogger("sentry_sdk.errors").error("Internal error in sentry_sdk")
        service.get_logger().error("real")
        service.flush()

        assert [e["logentry"]["formatted"] for e in server.events] == ["real"]
        assert [f["event"] for f in sentry.capture.fields] == ["real"]

    def test_nothing_after_shutdown(self, sentry, server, monkeypatch):
        """After shutdown, sentry-sdk's debug reports reach no later set-up."""
        monkeypatch.setenv("SENTRY_DEBUG", "1")
        sentry().shutdown()
        capture = CaptureSink()
        configure_logging(
            env={},
            console="off",
            log_dir="off",
            handle_signals=False,
            level="debug",
            sinks=[capture],
        )

        logging.getLogger("sentry_sdk.errors").warning("late report")

        assert capture.events == []
        assert not sentry_sdk.get_client().is_active()

    def test_sdk_logger_restored(self, sentry):
        """Shutting down gives sentry-sdk's logger back as it was."""
        sdk_logger = logging.getLogger("sentry_sdk.errors")
        before = (sdk_logger.propagate, list(sdk_logger.handlers))

        sentry().shutdown()

        assert (sdk_logger.propagate, list(sdk_logger.handlers)) == before

    def test_sdk_http_breadcrumbs_scrubbed(self, sentry, server):
        """sentry-sdk's own HTTP breadcrumbs lose their secrets, keep the rest."""
        service = sentry()
        api = SentryServer()
        try:
            url = f"http://127.0.0.1:{api.port}/v1/modules?api_key=K9xq&page=2"
            urllib.request.urlopen(url, timeout=5).read()
            service.get_logger().error("after the call")
            service.flush()
        finally:
            api.close()

        [event] = server.events
        [crumb] = [b for b in breadcrumbs(event) if b.get("category") == "httplib"]
        assert "page=2" in str(crumb["data"])
        assert b"K9xq" not in server.raw


class TestIngestServer:
    """The local ingest server decodes what a Sentry transport may send."""

    @pytest.mark.parametrize("encoding", ["gzip", "br", ""])
    def test_envelope_bodies(self, server, encoding):
        """Plain, gzip and brotli envelopes, with and without item lengths."""
        import gzip

        import brotli

        event = json.dumps({"event_id": "e1", "message": "hi"}).encode()
        log = json.dumps({"items": [{"body": "a"}, {"body": "b"}]}).encode()
        body = b"\n".join(
            [
                b'{"event_id":"e1"}',
                json.dumps({"type": "event", "length": len(event)}).encode(),
                event,
                b'{"type":"log"}',
                log,
            ]
        )
        compress = {"gzip": gzip.compress, "br": brotli.compress, "": bytes}
        request = urllib.request.Request(
            f"http://127.0.0.1:{server.port}/api/1/envelope/",
            data=compress[encoding](body),
            headers={"Content-Encoding": encoding} if encoding else {},
            method="POST",
        )

        with urllib.request.urlopen(request, timeout=5) as response:
            status = response.status

        assert status == 200
        assert server.events == [{"event_id": "e1", "message": "hi"}]
        assert [entry["body"] for entry in server.logs] == ["a", "b"]
        assert server.raw == body


class TestReconfigure:
    """configure_logging() again replaces the Sentry set-up without doubling it."""

    def test_twice(self, sentry, server):
        """The second set-up sends each event once, with its own settings."""
        sentry(environment="first")
        service = sentry(environment="second")

        service.get_logger().error("once")
        service.flush()

        assert [e["environment"] for e in server.events] == ["second"]


class TestHealth:
    """The sink's health counts what it handed to sentry-sdk."""

    def test_delivered(self, sentry, server):
        """Two errors: two delivered, nothing dropped or queued."""
        service = sentry()

        service.get_logger().error("one")
        service.get_logger().error("two")
        service.flush()
        health = service.health()["sentry"]

        assert (health.state, health.delivered, health.dropped) == ("healthy", 2, 0)
        assert health.queue_depth == 0

    def test_closed_sink_drops(self, sentry, server):
        """After shutdown, an event handed to the sink is counted as dropped."""
        service = sentry()
        sink = service.sink("sentry")
        service.shutdown()

        sink.emit(LogEvent({"event": "late"}, 40, "late", 0, None))

        assert sink.health().dropped == 1


class TestWarmUp:
    """The first event's one-off work is done as the set-up ends, not at it."""

    def test_installed_packages_read_before_the_first_event(
        self, sentry, server, monkeypatch
    ):
        """sentry-sdk's scan of the installed packages, for ``modules``."""
        monkeypatch.setattr(sentry_sdk.utils, "_installed_modules", None)
        read = threading.Event()
        sdk_reader = sentry_sdk.utils._get_installed_modules

        def installed_modules():
            read.set()
            return sdk_reader()

        monkeypatch.setattr(
            sentry_sdk.utils, "_get_installed_modules", installed_modules
        )
        service = sentry()

        assert read.wait(10)
        assert server.events == []
        service.get_logger().error("first")
        service.flush()
        [event] = server.events
        assert event["modules"]["sentry-sdk"] == sentry_sdk.VERSION

    def test_a_warm_up_that_raises_is_told_and_the_sink_goes_on(
        self, sentry, server, monkeypatch, capfd
    ):
        def broken(sink):
            raise OSError("metadata unreadable")

        monkeypatch.setattr(SentrySink, "warm_up", broken)
        service = sentry()
        service.get_logger().error("still sent")
        service.flush()

        assert [e["logentry"]["formatted"] for e in server.events] == ["still sent"]
        assert "warm-up raised OSError('metadata unreadable')" in capfd.readouterr().err


class TestOptional:
    """sentry-sdk is an extra: loaded only with a DSN, and asked for by name."""

    def test_missing_extra(self, monkeypatch):
        """Without sentry-sdk a DSN fails at configuration with the pip line."""
        monkeypatch.setitem(sys.modules, "sentry_sdk", None)

        with pytest.raises(MissingExtraError) as raised:
            configure_logging(
                env={},
                console="off",
                log_dir="off",
                handle_signals=False,
                sentry_dsn="http://public@127.0.0.1:9/1",
            )

        assert "pip install 'runtime-logging[sentry]'" in str(raised.value)
        assert "`sentry_dsn`" in str(raised.value)

    @pytest.mark.parametrize("dsn", ["not a dsn", "http://127.0.0.1:9/1"])
    def test_bad_dsn(self, dsn):
        """A DSN sentry-sdk refuses fails at configuration, naming the setting."""
        with pytest.raises(ConfigurationError, match="`sentry_dsn` is") as raised:
            configure_logging(
                env={},
                console="off",
                log_dir="off",
                handle_signals=False,
                sentry_dsn=dsn,
            )

        assert "Client Keys" in str(raised.value)
        assert not sentry_sdk.get_client().is_active()

    def test_not_imported_without_dsn(self):
        """configure_logging() without a DSN leaves sentry_sdk unimported."""
        script = textwrap.dedent(
            """
            import sys
            from runtime_logging import configure_logging
            service = configure_logging(env={}, console="off", log_dir="off")
            service.get_logger().error("x")
            service.shutdown()
            print("sentry_sdk" in sys.modules)
            """
        )

        result = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )

        assert result.stdout.strip() == "False"


class TestReadme:
    """The README's Sentry snippet runs as written."""

    def test_before_send_snippet(self, server, tmp_path):
        """The application's hook tags the event; the token is redacted."""
        with open(README, encoding="utf-8") as handle:
            readme = handle.read()
        [code] = re.findall(
            r"<!-- snippet: sentry-before-send -->\n```python\n(.*?)```",
            readme,
            re.DOTALL,
        )
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("RUNTIME_LOGGING_", "SENTRY_"))
        }
        env["SENTRY_DSN"] = server.dsn

        result = subprocess.run(
            [sys.executable, "-c", code],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

        assert result.returncode == 0, result.stderr
        [event] = server.events
        assert event["tags"]["region"] == "eu-west-1"
        assert event["extra"]["token"] == "[REDACTED:token]"
        assert [b["message"] for b in breadcrumbs(event)] == ["Installation started"]
