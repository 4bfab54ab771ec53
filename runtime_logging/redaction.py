"""One redaction policy for every sink.

It is applied once in the pipeline before any sink sees an event, and by the
Sentry sink to what sentry-sdk gathers on its own.

Two rules:

- a *key* is secret, its whole value replaced at any depth, when its name
  with case, digits and separators folded (``api_key``, ``api-key``,
  ``apiKey``, ``X-Api-Key`` are all ``apikey`` at the end) ends in a
  sensitive word, or when one of its words (``secret_value``,
  ``password_hash``, ``passwords``) is one of the words that are secret
  wherever they stand, or its last word is a short one (``pass``, ``pw``,
  ``otp``, ``pin``);
- a *string* anywhere (the message, field values, exception messages,
  local variables, bytes read as UTF-8) has the secret parts of recognisable
  patterns replaced: bearer and basic credentials, JWTs, secret header
  lines (``Authorization:``, ``Cookie:``), URL user-info, secret query
  parameters (the rest of the URL kept), cloud and service access keys,
  private-key blocks, ``key=value``, ``key: value`` and ``"key": "value"``
  pairs (quoted or not) whose key is secret by the first rule.

Words of prose that merely look like those names (``token count``, ``basic
usage``, ``author``) are left alone: a scheme's credential must look
generated, a Basic one must decode to ``user:password``. A string with none
of the trigger characters is returned untouched without running a pattern.

Values of other types (exceptions, sets, dataclasses, enums, any object)
are first turned into what the JSON encoder writes for them, so the text
looked at is the text written.

A replacement is the marker ``[REDACTED:<what>]``. Containers the caller
passed are never changed: a changed one is copied.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from runtime_logging._encoding import to_jsonable, unrepresentable

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
        "secretkey",
        "signingkey",
        "encryptionkey",
        "credential",
        "credentials",
        "accesskey",
        "masterkey",
        "sshkey",
        "hmackey",
        "signature",
        "jwt",
        "dsn",
    }
)

#: Words that make a key secret wherever they stand in it, a plural too:
#: ``secret_value``, ``password_hash``, ``passwords``.
DEFAULT_WORDS = frozenset(
    {"password", "passwd", "passphrase", "secret", "credential", "privatekey"}
)
#: Short words that make a key secret only as its last word: ``db_pass``,
#: ``pw``, ``otp``, ``pin`` (not ``bypass_cache`` or ``pinned``).
DEFAULT_LAST_WORDS = frozenset({"pass", "pw", "pwd", "otp", "pin", "totp"})
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+")
#: What a header or key name looks like (``Authorization``, ``x-api-key``,
#: quoted as sentry-sdk shows a local's strings): a 2-item list or tuple is
#: taken for a header pair only when its first item is one, never when it
#: is text that may hold the secret (``--pw=x``).
_KEY_NAME = re.compile(r"(['\"]?)([A-Za-z0-9_-]+)\1").fullmatch

_SENSITIVE_PARAMS = (
    r"access_?token|refresh_?token|id_?token|token|code|api_?key|apikey|key|secret|"
    r"client_?secret|password|passwd|pwd|sig|signature|session|sessionid|auth|jwt|"
    r"x-amz-signature|x-amz-security-token|x-goog-signature|x-goog-credential"
)
_HEADERS_TO_HIDE = r"(?:proxy-)?authorization|(?:set-)?cookie|x-api-key|x-auth-token"


def _credentials(match: re.Match[str]) -> str:
    """``Bearer x`` always; ``Basic x`` when x decodes to ``user:password``."""
    scheme, space, credential = match.group(1, 2, 3)
    kind = scheme.lower()
    if kind == "bearer" or _looks_generated(credential):
        secret = True
    elif kind == "basic":
        secret = _is_basic_pair(credential)
    else:
        secret = False
    return f"{scheme}{space}{MARKER.format('credentials')}" if secret else match[0]


def _looks_generated(word: str) -> bool:
    # Words of prose ("token count", "basic usage") have no digits or symbols.
    return len(word) >= 20 or any(c.isdigit() or c in "+/=_.~-" for c in word)


def _is_basic_pair(credential: str) -> bool:
    padded = credential + "=" * (-len(credential) % 4)
    try:
        return b":" in base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return False


_Replacement = str | Callable[[re.Match[str]], str]
_PATTERNS: tuple[tuple[str, re.Pattern[str], _Replacement], ...] = (
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
        "header",
        re.compile(rf"(?im)(?<![\w-])((?:{_HEADERS_TO_HIDE})\s*:\s*)[^\r\n\"']+"),
        r"\1{m}",
    ),
    (
        "credentials",
        re.compile(r"(?i)\b(bearer|basic|token|digest)(\s+)([\w.~+/=-]{4,})"),
        _credentials,
    ),
    # Up to the last ``@`` of the authority: a password may hold one.
    ("url credentials", re.compile(r"(://[^/\s:@]*:)[^/?#\s]+(@)"), r"\1{m}\2"),
    (
        "url token",
        # A token as the whole user-info (``https://ghp_x1@github.com``); a
        # user name (``git@``, ``deploy@``) has no digits or symbols.
        re.compile(r"(://)([^/?#\s:@]+)(@)"),
        lambda m: (
            f"{m[1]}{MARKER.format('url credentials')}{m[3]}"
            if _looks_generated(m[2])
            else m[0]
        ),
    ),
    (
        "query",
        # A parameter after ``?``, ``&``, ``;`` or a fragment's ``#``, or at
        # the start of a bare query string (``code=abc&x=1``, as Sentry keeps it).
        re.compile(
            rf"(?i)((?:[?&;#]|^(?=\S*$))(?:{_SENSITIVE_PARAMS})=)"
            # ``=>`` is a pair's separator (``password=>"x"``), not a query's.
            r"(?!>)(?!\[REDACTED)[^&#\s\"']+"
        ),
        r"\1{m}",
    ),
    (
        "access key",
        re.compile(
            r"\b(?:(?:AKIA|ASIA|AGPA|AIDA)[0-9A-Z]{16}|AIza[\w-]{35}|"
            r"gh[pousr]_[A-Za-z0-9]{36,}|github_pat_\w{22,}|"
            r"xox[abprs]-[\w-]{10,}|[sr]k_live_[0-9A-Za-z]{10,})\b"
        ),
        "{m}",
    ),
)
#: A ``key=value``, ``"key": "value"``, ``key: value`` or ``--key value`` pair
#: in text. Whether its key is secret is `RedactionPolicy.is_secret_key`'s
#: decision, the one for fields too. Only the key is matched: the value of a
#: key that is not secret (``url: /x?password=y``) is looked at for pairs in
#: turn, and a value is read (`_PAIR_VALUE`) only after a secret key, so a
#: long text of ``k:k:k...`` is not read once per key. Space around the
#: separator stays on its line: an empty ``password=`` keeps the next one.
_PAIR = re.compile(
    r"(?<![\w.-])(?:--([\w-]+)(?:[ \t]+|(?<=\w)(['\"]), ?\2)(?!-)"
    r"|([\w.-]+)\\?[\"']?[ \t]*(?::=|=>|:(?!=)|=(?![=>]))[ \t]*"
    # A quoted key may hold spaces: {"Secret Access Key": "..."}.
    r"|([\"'])([\w .-]+)\4[ \t]*(?::=|=>|:(?!=)|=(?![=>]))[ \t]*)"
    r"(?!\[REDACTED)"
)
#: A command-line flag as a list item: ``--password``, ``-p`` is not one.
_FLAG = re.compile(r"--([\w-]+)").fullmatch
#: A pair's value: quoted, or up to a space, a separator, a quote or a
#: closing bracket (``{"pin": 1234}`` keeps its ``}``).
_PAIR_VALUE = re.compile(
    # Quoted, its escaped quotes kept inside; quoted with escaped quotes, as
    # JSON inside a JSON string has it; bare; or, after a quote never
    # closed, the rest of its line.
    r"b?\"(?:[^\"\\]|\\.)*\"|b?'(?:[^'\\]|\\.)*'|\\\"(?:[^\"\\]|\\[^\"])*\\\""
    r"|[^\s,;&\"')\]}]+|[\"'][^\r\n]*"
)
_PAIR_MARKER = MARKER.format("pair")
#: Every byte but ``a``-``z``: deleted, they leave a text's letters folded as
#: `fold_key` folds a key.
_NOT_LETTERS = bytes(b for b in range(256) if not 97 <= b <= 122)
#: Lower-case words one of which a text must hold for each pattern to match:
#: a pattern whose words are absent is not run (a timestamp or a plain URL
#: holds ``:`` but none of them).
_HINTS = {
    "private key": ("-----begin",),
    "jwt": ("eyj",),
    "header": ("authorization", "cookie", "x-api-key", "x-auth-token"),
    "credentials": ("bearer", "basic", "token", "digest"),
    "url credentials": ("@",),
    "url token": ("@",),
    "query": ("=",),
    "access key": (
        "akia",
        "asia",
        "agpa",
        "aida",
        "aiza",
        "gh",
        "github_pat_",
        "xox",
        "_live_",
    ),
}
_TRIGGER = re.compile(
    r"[=:@]|eyJ|-----BEGIN|AKIA|ASIA|AGPA|AIDA|AIza|gh[pousr]_|github_pat_|xox|"
    r"_live_|(?i:bearer|basic|token|digest)\s|--[\w-]+(?:\s|['\"],)"
)
#: A character that every trigger word holds one of: its ``J``, ``A``, ``G``,
#: ``x`` or ``_``, one of ``=:@``, or the whitespace after a credential word
#: or a ``--flag``.
_CANDIDATE = re.compile(r"[=:@JAGx_\s]").search
_FOLD = re.compile(r"[^a-z]")
#: The trigger's GitHub prefixes: a literal start, which the expression
#: looks for as fast as a str method, and one scan instead of five.
_GITHUB_TOKEN = re.compile(r"gh[pousr]_")
#: Messages remembered with their redacted form; most are constant per call.
_MESSAGE_CACHE_SIZE = 4096
#: Key names remembered with whether they are secret.
_KEY_CACHE_SIZE = 10_000
_SKIP_KEYS = frozenset(
    {"timestamp", "level", "logger", "service", "environment", "release", "host", "pid"}
)


def _lower(text: str) -> str:
    """*text* lower-cased as the patterns' case folding reads it, for hints."""
    lowered = text.lower()
    if not text.isascii() and (
        "\u0130" in text or "\u0131" in text or "\u017f" in text
    ):
        # The letters the expression's case folding takes for i and s.
        lowered = lowered.replace("i\u0307", "i").replace("\u0131", "i")
        lowered = lowered.replace("\u017f", "s")
    return lowered


def may_hold_secret(text: str) -> bool:
    """Whether *text* might hold a secret pattern: False means it surely does not.

    The same test as the patterns' trigger, cheaper. Every trigger word holds
    one of a few characters, so a text without any (most ids, names, paths)
    is cleared by one character-class scan; the rest are looked at with str
    methods: a one-character ``in`` is a memchr, and each longer word is
    looked for only when a letter of it is there, so a long text costs a few
    µs (the trigger expression tries every alternative at every position:
    over 100 µs).
    """
    if _CANDIDATE(text) is None:
        return False
    if "=" in text or ":" in text or "@" in text:
        return True
    # Spelled out: a generator over the words costs more than the tests.
    if "J" in text and "eyJ" in text:
        return True
    if "A" in text and (
        "AKIA" in text
        or "ASIA" in text
        or "AGPA" in text
        or "AIDA" in text
        or "AIza" in text
    ):
        return True
    if "G" in text and "-----BEGIN" in text:
        return True
    if "x" in text and "xox" in text:
        return True
    if "_" in text and (
        "_live_" in text
        or "github_pat_" in text
        or ("gh" in text and _GITHUB_TOKEN.search(text) is not None)
    ):
        return True
    if "-" in text and "--" in text:
        return True
    # The credential words count only before a whitespace character; every
    # one but the space is unprintable (so is any control character: those
    # texts take the longer way, which is only slower).
    if " " not in text and text.isprintable():
        return False
    lowered = _lower(text)
    return (
        "bearer" in lowered
        or "basic" in lowered
        or "token" in lowered
        or "digest" in lowered
    )


def _key_text(name: object) -> str | None:
    """A key as text: bytes read as latin-1, as ASGI gives header names."""
    if isinstance(name, str):
        return name
    if isinstance(name, (bytes, bytearray)):
        return name.decode("latin-1")
    return None


def _holds(value: object) -> bool:
    """Whether a secret key's *value* holds something to hide.

    Empty values are written as they are; a value whose truth can't be told
    (a numpy array, a pandas frame) holds something.
    """
    try:
        return bool(value)
    except Exception:
        return True


def fold_key(name: str) -> str:
    """*name* lower-cased, digits and separators removed: ``Api-Key2`` -> ``apikey``."""
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
        allowed = {fold_key(k) for k in allow_keys}
        base = set(DEFAULT_KEYS) if defaults else set()
        base |= {fold_key(k) for k in keys}
        self.keys = frozenset(base - allowed)
        self._words = (DEFAULT_WORDS - allowed) if defaults else frozenset()
        self._last_words = (DEFAULT_LAST_WORDS - allowed) if defaults else frozenset()
        self._allowed = frozenset(allowed)
        #: A secret key, folded, holds one of these: its ending, one of its
        #: words or its last word (the shortest suffice: ``pass`` for
        #: ``password``).
        words = self.keys | self._words | self._last_words
        by_letter: dict[str, list[str]] = {}
        for word in sorted(words - {""}):
            if not any(other in word for other in words - {word, ""}):
                by_letter.setdefault(word[0], []).append(word[1:])
        # Grouped by first letter: one branch tried where a letter starts one.
        # A key name of no letters (``123``) makes every key secret.
        pattern = "|".join(f"{a}(?:{'|'.join(b)})" for a, b in by_letter.items())
        self._pair_word = re.compile(
            b"" if "" in words else pattern.encode() or b"(?!)"
        ).search
        self._key_cache: dict[str, bool] = {}
        self._messages: dict[str, str] = {}
        #: Keys known not to be secret: an event whose keys are all here
        #: needs no key check (one set operation instead of one per key).
        self._plain_keys: set[str] = set()
        self._query_marker = MARKER.format("query")
        self._patterns = tuple(
            (
                _HINTS[what],
                pattern,
                self._query_parameter
                if what == "query"
                else replacement.replace("{m}", MARKER.format(what))
                if isinstance(replacement, str)
                else replacement,
            )
            for what, pattern, replacement in _PATTERNS
        )

    def _query_parameter(self, match: re.Match[str]) -> str:
        """A secret query parameter's value replaced, unless allowed.

        ``redact_keys_allow`` lets a name through here as it does for fields
        and pairs (``session`` ids, say).
        """
        name = match[1].lstrip("?&;#").rstrip("=")
        if fold_key(name) in self._allowed:
            return match[0]
        return match[1] + self._query_marker

    def is_secret_key(self, name: object) -> bool:
        """Whether the value under the key *name* is secret as a whole."""
        if type(name) is not str:
            name = _key_text(name)
            if name is None:
                return False
        known = self._key_cache.get(name)
        if known is None:
            known = self._is_secret_name(name)
            if len(self._key_cache) >= _KEY_CACHE_SIZE:
                # Keys of pairs in text vary more than fields' keys: start over.
                self._key_cache.clear()
                self._plain_keys.clear()
            self._key_cache[name] = known
            if not known:
                self._plain_keys.add(name)
        return known

    def _is_secret_name(self, name: str) -> bool:
        folded = fold_key(name)
        if not folded or folded in self._allowed:
            return False
        if folded.endswith("s") and not folded.endswith("tokens"):
            # A plural (``api_keys``); not ``tokens``: ``max_tokens`` is a count.
            folded = folded[:-1]
        if any(folded.endswith(word) for word in self.keys):
            return True
        words = [word.lower() for word in _WORD.findall(name)]
        if words and words[-1] in self._last_words:
            return True
        # A word alone or two joined (``private_key``), a plural ``s`` off.
        words += ["".join(pair) for pair in itertools.pairwise(words)]
        return any(
            word in self._words or (word[-1:] == "s" and word[:-1] in self._words)
            for word in words
        )

    def redact_text(self, text: str) -> str:
        """*text* with the secret part of every recognised pattern replaced."""
        if not may_hold_secret(text):
            return text
        lowered = _lower(text)
        for hints, pattern, replacement in self._patterns:
            for hint in hints:
                if hint in lowered:
                    text = pattern.sub(replacement, text)
                    break
        if ("=" in text or ":" in text or "--" in text) and self._may_hold_pair(text):
            text = self._redact_pairs(text)
        return text

    def _may_hold_pair(self, text: str) -> bool:
        """Whether *text* might hold a pair with a secret key: False means not.

        The letters of an ASCII text, folded, hold those of each key in it,
        so a text without any secret key's word has no such pair (over 1 µs
        less than the pattern for a URL or a timestamp).
        """
        if not text.isascii():
            return True  # lower() may make ASCII letters of other ones
        letters = text.encode().lower().translate(None, _NOT_LETTERS)
        return self._pair_word(letters) is not None

    def _redact_pairs(self, text: str) -> str:
        """*text* with the value of each pair whose key is secret replaced."""
        parts: list[str] = []
        done = 0
        for match in _PAIR.finditer(text):
            key = match[1] or match[3] or match[5]
            if match.start() < done or not self.is_secret_key(key):
                continue  # a key inside a value already replaced, or not secret
            value = _PAIR_VALUE.match(text, match.end())
            if value is None:
                continue  # nothing after the separator on its line
            start, end = value.span()
            if text[start] == "b" and text[start + 1 : start + 2] in {'"', "'"}:
                start += 1  # a bytes repr: b'...' keeps its b
            quote = text[start] if text[start] in "\"'" else ""
            parts += (text[done:start], quote, _PAIR_MARKER, quote)
            done = end
        if not parts:
            return text
        parts.append(text[done:])
        return "".join(parts)

    def redact_value(self, value: Any, depth: int = 0) -> Any:
        """*value* with secrets replaced; unchanged objects are returned as they are."""
        kind = type(value)
        if kind is str:
            return self.redact_text(value)
        if kind is int or kind is float or kind is bool or value is None:
            return value
        if isinstance(value, (str, bytes, bytearray)):
            # A str subclass (a pydantic URL, numpy.str_, Markup) is written as
            # its characters, bytes as UTF-8: both are text to look at.
            text = (
                str.__str__(value)
                if isinstance(value, str)
                else value.decode("utf-8", "backslashreplace")
            )
            redacted = self.redact_text(text)
            return value if redacted is text else redacted
        if depth > 32:
            return value
        if kind is dict or isinstance(value, Mapping):
            try:
                return self._redact_mapping(value, depth)
            except Exception:
                # It can't be read, so it can't be shown: its marker is what
                # the encoder would write.
                return unrepresentable(value)
        if kind is list or kind is tuple:
            return self._redact_items(value, depth)
        # The encoder would turn it into text (an exception, a set, an enum, a
        # dataclass, any object's repr): redact that text, the one written.
        return self.redact_value(to_jsonable(value), depth + 1)

    def _redact_mapping(self, value: Mapping[Any, Any], depth: int) -> Any:
        changed = False
        result = {}
        for key, item in value.items():
            if self.is_secret_key(key):
                name = fold_key(_key_text(key) or "")
                new = MARKER.format(name or "key") if _holds(item) else item
            else:
                new = self.redact_value(item, depth + 1)
            changed = changed or new is not item
            result[key] = new
        return result if changed else value

    def redact_local(self, value: Any, depth: int = 0) -> Any:
        """A local variable before its repr is taken: header pairs' values out.

        Its repr is text the patterns look at, but ``('Authorization', 'x')``
        shows no pattern; other values are left to the repr as they are.
        """
        kind = type(value)
        if (kind is not list and kind is not tuple) or depth > 32:
            return value
        return self._redact_items(value, depth, self.redact_local)

    def _redact_items(
        self,
        value: list[Any] | tuple[Any, ...],
        depth: int,
        each: Callable[[Any, int], Any] | None = None,
    ) -> Any:
        """A list or tuple redacted: a header pair's value, or each item."""
        text = _key_text(value[0]) if len(value) == 2 and _holds(value[1]) else None
        name = _KEY_NAME(text) if text is not None else None
        if name is not None and self.is_secret_key(name[2]):
            # A header as a pair: ("Authorization", "Bearer ...").
            pair = [value[0], MARKER.format(fold_key(name[2]))]
            return pair if type(value) is list else tuple(pair)
        each = each or self.redact_value
        items = [each(item, depth + 1) for item in value]
        for index, item in enumerate(value[:-1]):
            # A command line as a list: ["mysqldump", "--password", "x"].
            if type(item) is not str or not item.startswith("--"):
                continue
            flag = _FLAG(item)
            if flag is not None and self.is_secret_key(flag[1]):
                following = value[index + 1]
                if isinstance(following, str) and not following.startswith("-"):
                    items[index + 1] = _PAIR_MARKER
        if any(new is not old for new, old in zip(items, value, strict=True)):
            return items if type(value) is list else tuple(items)
        return value

    def __call__(self, fields: dict[str, Any], level: int) -> dict[str, Any]:
        """The pipeline step: redact every field of the event but the fixed ones."""
        del level
        for key, value in fields.items():
            if key in _SKIP_KEYS:
                continue
            kind = type(value)
            if self.is_secret_key(key):
                if _holds(value):
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
        candidate = _CANDIDATE  # may_hold_secret's first test, without a call
        for key, value in fields.items():
            if not known_keys and self.is_secret_key(key):
                if _holds(value):
                    fields[key] = MARKER.format(fold_key(key))
                continue
            kind = type(value)
            if kind is str:
                if candidate(value) is not None and may_hold_secret(value):
                    fields[key] = self.redact_text(value)
            elif kind is float:
                # inf - inf and nan - nan are nan, which JSON has no token for.
                plain = plain and value - value == 0.0
            elif kind is not int and kind is not bool and value is not None:
                fields[key] = self.redact_value(value)
                plain = False
        return plain
