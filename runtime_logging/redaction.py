"""One redaction policy for every sink.

It is applied once in the pipeline before any sink sees an event, and by the
Sentry sink to what sentry-sdk gathers on its own.

Two rules:

- a *key* whose name, with case and separators folded (``api_key``,
  ``api-key``, ``apiKey``, ``X-Api-Key`` are all ``apikey`` at the end),
  ends in a sensitive word has its whole value replaced, at any depth;
- a *string* anywhere (the message, field values, exception messages) has
  the secret parts of recognisable patterns replaced: bearer and basic
  credentials, JWTs, URL user-info, secret query parameters (the rest of the
  URL kept), cloud access keys, private-key blocks, ``password=...`` pairs.

A replacement is the marker ``[REDACTED:<what>]``. Containers the caller
passed are never changed: a changed one is copied.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

MARKER = "[REDACTED:{}]"

#: Folded key endings whose values are secret.
DEFAULT_KEYS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "secret",
        "token",
        "apikey",
        "authorization",
        "auth",
        "cookie",
        "cookies",
        "sessionid",
        "session",
        "privatekey",
        "credential",
        "credentials",
        "accesskey",
        "signature",
        "jwt",
        "dsn",
    }
)

_SENSITIVE_PARAMS = (
    r"access_?token|refresh_?token|id_?token|token|code|api_?key|apikey|key|secret|"
    r"client_?secret|password|passwd|pwd|sig|signature|session|sessionid|auth|jwt"
)
_PATTERNS: tuple[tuple[str, re.Pattern[str], str], ...] = (
    (
        "private key",
        re.compile(
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----"
            r".*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)",
            re.DOTALL,
        ),
        "{m}",
    ),
    ("jwt", re.compile(r"\beyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*"), "{m}"),
    (
        "credentials",
        re.compile(r"(?i)\b(bearer|basic|token|digest)(\s+)[\w.~+/=-]{4,}"),
        r"\1\2{m}",
    ),
    ("url credentials", re.compile(r"(://[^/\s:@]*:)[^/\s@]+(@)"), r"\1{m}\2"),
    (
        "query",
        re.compile(rf"(?i)([?&;](?:{_SENSITIVE_PARAMS})=)[^&#\s\"']+"),
        r"\1{m}",
    ),
    ("cloud key", re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA)[0-9A-Z]{16}\b"), "{m}"),
    (
        "pair",
        re.compile(
            r"(?i)\b((?:[\w-]*(?:password|passwd|pwd|secret|token|api[_-]?key|"
            r"session(?:id)?|cookie|auth(?:orization)?))\s*[=:]\s*)"
            r"(\"[^\"]*\"|'[^']*'|[^\s,;&\"']+)"
        ),
        r"\1{m}",
    ),
)
_TRIGGER = re.compile(r"[=:@]|eyJ|AKIA|ASIA|AGPA|AIDA|(?i:bearer|basic|token|digest)\s")
_FOLD = re.compile(r"[^a-z0-9]")
#: Messages remembered with their redacted form; most are constant per call.
_MESSAGE_CACHE_SIZE = 4096
_SKIP_KEYS = frozenset(
    {"timestamp", "level", "logger", "service", "environment", "release", "host", "pid"}
)


def may_hold_secret(text: str) -> bool:
    """Whether *text* might hold a secret pattern: False means it surely does not.

    The same test as the patterns' trigger, in str methods for ASCII text,
    which is several times faster than the regular expression there.
    """
    if not text.isascii():
        # Case folding beyond ASCII (a long s matches an s) is the regex's.
        return _TRIGGER.search(text) is not None
    if "=" in text or ":" in text or "@" in text or "eyJ" in text:
        return True
    # Spelled out: a generator over the words costs more than the tests.
    if "A" in text and (
        "AKIA" in text or "ASIA" in text or "AGPA" in text or "AIDA" in text
    ):
        return True
    if " " not in text and text.isprintable():
        return False  # the credential words count only before a space or tab
    lowered = text.lower()
    return (
        "bearer" in lowered
        or "basic" in lowered
        or "token" in lowered
        or "digest" in lowered
    )


def fold_key(name: str) -> str:
    """*name* lower-cased with every separator removed: ``X-Api-Key`` -> ``xapikey``."""
    return _FOLD.sub("", name.lower())


class RedactionPolicy:
    """Finds and replaces secrets in events, values and text."""

    def __init__(
        self,
        keys: Iterable[str] = (),
        allow_keys: Iterable[str] = (),
        *,
        defaults: bool = True,
    ) -> None:
        """Redact the default key endings plus *keys*, minus *allow_keys*."""
        base = set(DEFAULT_KEYS) if defaults else set()
        base |= {fold_key(k) for k in keys}
        base -= {fold_key(k) for k in allow_keys}
        self.keys = frozenset(base)
        self._key_cache: dict[str, bool] = {}
        self._messages: dict[str, str] = {}
        #: Keys known not to be secret: an event whose keys are all here
        #: needs no key check (one set operation instead of one per key).
        self._plain_keys: set[str] = set()
        self._patterns = tuple(
            (pattern, replacement.replace("{m}", MARKER.format(what)))
            for what, pattern, replacement in _PATTERNS
        )

    def is_secret_key(self, name: object) -> bool:
        """Whether the value under the key *name* is secret as a whole."""
        if not isinstance(name, str):
            return False
        known = self._key_cache.get(name)
        if known is None:
            folded = fold_key(name)
            known = any(folded.endswith(word) for word in self.keys) and folded != ""
            if len(self._key_cache) < 10_000:
                self._key_cache[name] = known
                if not known:
                    self._plain_keys.add(name)
        return known

    def redact_text(self, text: str) -> str:
        """*text* with the secret part of every recognised pattern replaced."""
        if not may_hold_secret(text):
            return text
        for pattern, replacement in self._patterns:
            text = pattern.sub(replacement, text)
        return text

    def redact_value(self, value: Any, depth: int = 0) -> Any:
        """*value* with secrets replaced; unchanged objects are returned as they are."""
        kind = type(value)
        if kind is str:
            return self.redact_text(value)
        if depth > 32:
            return value
        if kind is dict or isinstance(value, Mapping):
            changed = False
            result = {}
            for key, item in value.items():
                if self.is_secret_key(key):
                    new = MARKER.format(fold_key(key) or "key") if item else item
                else:
                    new = self.redact_value(item, depth + 1)
                changed = changed or new is not item
                result[key] = new
            return result if changed else value
        if kind is list or kind is tuple:
            items = [self.redact_value(item, depth + 1) for item in value]
            if any(new is not old for new, old in zip(items, value, strict=True)):
                return items if kind is list else tuple(items)
            return value
        return value

    def __call__(self, fields: dict[str, Any], level: int) -> dict[str, Any]:
        """The pipeline step: redact every field of the event but the fixed ones."""
        del level
        for key, value in fields.items():
            if key in _SKIP_KEYS:
                continue
            kind = type(value)
            if self.is_secret_key(key):
                if value:
                    fields[key] = MARKER.format(fold_key(key))
            elif kind is str:
                if may_hold_secret(value):
                    fields[key] = self.redact_text(value)
            elif kind is not int and kind is not float and kind is not bool:
                fields[key] = self.redact_value(value)
        return fields

    def redact_message(self, message: str) -> str:
        """*message* redacted, remembered: a call site logs the same one often."""
        known = self._messages.get(message)
        if known is None:
            known = self.redact_text(message)
            if len(self._messages) >= _MESSAGE_CACHE_SIZE:
                self._messages.clear()
            self._messages[message] = known
        return known

    def redact_fields(self, fields: dict[str, Any]) -> bool:
        """Redact an event's own *fields* in place, in one pass.

        The same rules as the pipeline step, for the fields the caller passed
        (not the standard ones). Returns whether every value is a plain JSON
        scalar (str, int, bool, None, finite float), which the encoder then
        need not look at again: one loop serves both.
        """
        plain = True
        known_keys = self._plain_keys.issuperset(fields)
        for key, value in fields.items():
            if not known_keys and self.is_secret_key(key):
                if value:
                    fields[key] = MARKER.format(fold_key(key))
                continue
            kind = type(value)
            if kind is str:
                if may_hold_secret(value):
                    fields[key] = self.redact_text(value)
            elif kind is float:
                # inf - inf and nan - nan are nan, which JSON has no token for.
                plain = plain and value - value == 0.0
            elif kind is not int and kind is not bool and value is not None:
                fields[key] = self.redact_value(value)
                plain = False
        return plain
