"""One redaction policy for every sink: the policy, a corpus, and C8."""

from __future__ import annotations

import base64
import dataclasses
import enum
import io
import json
import logging

import pytest
import sentry_sdk
from loki_server import LokiReceiver
from sentry_server import SentryServer

from runtime_logging import RedactionPolicy, configure_logging
from runtime_logging.sinks.console import ConsoleSink


def secret(n: int) -> str:
    """A distinct secret that no marker, id or ordinary word contains."""
    return f"Zq{n:03d}xW7k"


KEYS = [
    "password",
    "Password",
    "PASSWORD",
    "passwd",
    "pwd",
    "db_password",
    "passphrase",
    "api_key",
    "api-key",
    "apiKey",
    "X-Api-Key",
    "access_token",
    "refreshToken",
    "id-token",
    "client_secret",
    "clientSecret",
    "secret",
    "secret_key",
    "Authorization",
    "Proxy-Authorization",
    "cookie",
    "Set-Cookie",
    "session_id",
    "sessionId",
    "private_key",
    "aws_secret_access_key",
    "jwt",
    "sentry_dsn",
    "db_credentials",
    "signature",
    "auth",
    "X-Auth-Token",
    "SECRET_KEY",
    "secretKey",
    "passwords",
    "secrets",
    "secret_value",
    "api_secret_value",
    "encryption_key",
    "signing_key",
    "master_key",
    "ssh_key",
    "password2",
    "password_hash",
    "pass",
    "db_pass",
    "pw",
    "otp",
    "pin",
    "refresh_token",
    "api_keys",
]

BASIC = base64.b64encode(f"admin:{secret(900)}".encode()).decode()
JWT = (
    f"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ{secret(901)}In0.{secret(902)}sig"
)
AWS = "AKIAZQ903XW7KQAAAAAA"


class _Note:
    """An object whose repr, the text the encoder writes, holds a secret."""

    def __repr__(self) -> str:
        return f"Note(password={secret(140)})"


class _Mode(enum.Enum):
    CONNECT = f"token={secret(141)}"


class _Dsn(str):
    """A str subclass, as pydantic's URLs, numpy.str_ and Markup are."""

    __slots__ = ()


@dataclasses.dataclass
class _Login:
    user: str
    note: str


#: (what, message, fields, the secrets that must not appear).
TEXT_CASES = [
    ("free text pair", f"login password={secret(100)} ok", {}, [secret(100)]),
    ("free text colon", f"retry with token: {secret(101)}", {}, [secret(101)]),
    ("quoted json", f'body {{"password": "{secret(102)}"}}', {}, [secret(102)]),
    ("single quotes", f"secret='{secret(103)}' set", {}, [secret(103)]),
    ("bearer", f"sent Bearer {secret(104)} upstream", {}, [secret(104)]),
    ("basic", f"sent Basic {BASIC} upstream", {}, [BASIC]),
    ("jwt", f"session {JWT}", {}, [secret(901), secret(902)]),
    ("url userinfo", f"db postgres://app:{secret(105)}@db:5432/x", {}, [secret(105)]),
    (
        "query in message",
        f"GET https://api/x?api_key={secret(106)}&page=2",
        {},
        [secret(106)],
    ),
    ("aws key", f"using {AWS} now", {}, [AWS]),
    (
        "private key",
        (
            f"key -----BEGIN RSA PRIVATE KEY-----\nMII{secret(107)}\n"
            "-----END RSA PRIVATE KEY----- loaded"
        ),
        {},
        [secret(107)],
    ),
    ("google key", f"maps AIza{secret(130)}{'x' * 26} used", {}, [secret(130)]),
    ("credentials pair", f"db credentials={secret(131)} set", {}, [secret(131)]),
    ("github pat", f"clone github_pat_{secret(132)}{'a' * 20}", {}, [secret(132)]),
    ("github token", "push ghp_" + secret(108) * 4, {}, [secret(108) * 4]),
    ("slack token", f"hook xoxb-{secret(109)}-{secret(110)}", {}, [secret(109)]),
    ("stripe key", f"charge sk_live_{secret(111)}abcdef", {}, [secret(111)]),
    ("header line", f"Authorization: Bearer {secret(112)}", {}, [secret(112)]),
    ("cookie line", f"Cookie: sid={secret(113)}; theme=dark", {}, [secret(113)]),
    ("api key header", f"X-Api-Key: {secret(114)}", {}, [secret(114)]),
    ("url field", "fetch", {"url": f"/cb?code={secret(115)}&x=1"}, [secret(115)]),
    (
        "websocket url",
        "open",
        {"target": f"wss://h/socket?access_token={secret(116)}"},
        [secret(116)],
    ),
    (
        "nested headers",
        "call",
        {"request": {"headers": {"Authorization": f"Bearer {secret(117)}"}}},
        [secret(117)],
    ),
    (
        "list of dicts",
        "batch",
        {"items": [{"id": 1}, {"token": secret(118)}]},
        [secret(118)],
    ),
    (
        "header pairs",
        "raw headers",
        {"headers": [["Accept", "json"], ["X-Api-Key", secret(119)]]},
        [secret(119)],
    ),
    (
        "tuple pairs",
        "raw headers",
        {"headers": (("cookie", secret(120)),)},
        [secret(120)],
    ),
    (
        "deep nesting",
        "deep",
        {"a": {"b": [{"c": {"d": {"e": {"clientSecret": secret(121)}}}}]}},
        [secret(121)],
    ),
    (
        "text inside nesting",
        "nested text",
        {"steps": [{"note": f"used password={secret(122)}"}]},
        [secret(122)],
    ),
    (
        "bytes value",
        "bytes",
        {"payload": f"password={secret(123)}".encode()},
        [secret(123)],
    ),
    (
        "json in a string",
        "body",
        {"body": f'{{"password": "{secret(124)}"}}'},
        [secret(124)],
    ),
    ("header list", "raw", {"h": [("X-Api-Key", secret(125))]}, [secret(125)]),
    (
        "exception as a field",
        "failed",
        {"err": ValueError(f"token={secret(126)}")},
        [secret(126)],
    ),
    ("set", "set", {"tags": {f"password={secret(127)}"}}, [secret(127)]),
    ("frozenset", "set", {"tags": frozenset({f"token={secret(128)}"})}, [secret(128)]),
    ("object repr", "object", {"note": _Note()}, [secret(140)]),
    ("enum", "enum", {"mode": _Mode.CONNECT}, [secret(141)]),
    (
        "dataclass",
        "dataclass",
        {"login": _Login("bob", f"password={secret(142)}")},
        [secret(142)],
    ),
    (
        "exception in a list",
        "failed",
        {"errors": [KeyError(f"api_key={secret(143)}")]},
        [secret(143)],
    ),
    (
        "url token as user-info",
        f"clone https://ghp_{secret(144)}@github.com/o/r.git",
        {},
        [secret(144)],
    ),
    (
        "presigned url",
        "s3",
        {"url": f"https://b.s3/k?X-Amz-Signature={secret(145)}&x=1"},
        [secret(145)],
    ),
    (
        "fragment code",
        f"back at https://h/cb#code={secret(146)}&s=1",
        {},
        [secret(146)],
    ),
    (
        "fragment token",
        "cb",
        {"u": f"https://h/#access_token={secret(147)}"},
        [secret(147)],
    ),
    (
        "password holding @",
        f"db postgres://user:P@{secret(148)}@db/x",
        {},
        [secret(148)],
    ),
    (
        "str subclass",
        _Dsn(f"login password={secret(149)}"),
        {
            "url": _Dsn(f"postgres://app:{secret(150)}@db:5432/app"),
            "notes": [_Dsn(f"Authorization: Bearer {secret(151)}")],
        },
        [secret(149), secret(150), secret(151)],
    ),
    (
        "argument pair",
        "running",
        {"argv": [f"--db-password={secret(152)}", "--verbose"]},
        [secret(152)],
    ),
    ("text pair", "pairs", {"kv": (f"password={secret(153)}", "x")}, [secret(153)]),
    (
        "bytes header pairs",
        "request",
        {"headers": [(b"host", b"h"), (b"x-auth-token", secret(154).encode())]},
        [secret(154)],
    ),
    ("bytes keys", "request", {"h": {b"password": secret(155)}}, [secret(155)]),
    (
        "pairs named as fields",
        f"env SECRET_KEY={secret(156)} signing_key: {secret(157)} dsn={secret(158)}",
        {
            "err": ValueError(
                f"bad {{'db_pass': '{secret(159)}', 'otp': '{secret(160)}'}}"
            )
        },
        [secret(n) for n in range(156, 161)],
    ),
    ("flag and value", f"ran --db-password {secret(163)} -v", {}, [secret(163)]),
    ("long s in a scheme", f"sent Ba\u017fic {BASIC} upstream", {}, [BASIC]),
    (
        "pair inside a value",
        f"seen x:password={secret(161)} and hmac_key => '{secret(162)}'",
        {},
        [secret(161), secret(162)],
    ),
]
KEY_CASES = [
    (f"key {key}", f"keyed {n}", {key: secret(n)}, [secret(n)])
    for n, key in enumerate(KEYS, start=200)
]
CORPUS = TEXT_CASES + KEY_CASES

ORDINARY_TEXT = [
    "accept",
    "token count",
    "Token count: 5",
    "author",
    "authority",
    "keyboard",
    "passage",
    "basic usage",
    "secretary",
    "tokenizer",
    "max_tokens=100",
    "status code=500 returned",
    "password reset requested",
    "cookie policy accepted",
    "https://example.com/modules?page=2&sort=asc",
    "ratio 3:4 at 12:00:01",
    "mail ops@example.com",
    "session started for user 42",
    "digest algorithm",
    "tool --max-tokens 100 --verbose",
]
ORDINARY_FIELDS = {
    "author": "Jane",
    "authority": "ca-1",
    "token_count": 5,
    "max_tokens": 100,
    "keyboard_layout": "us",
    "passage": "text",
    "accept": "application/json",
    "session_count": 3,
    "cookie_policy": "strict",
    "url": "https://cdn.example.com/x.zip?version=2",
    "compass": "north",
    "bypass_cache": True,
    "pinned": True,
    "tokenizer": "bpe",
    "key_id": "k-1",
    "keyId": "k-2",
    "spin_count": 2,
    "passport_country": "fr",
    "secretary": "Ann",
    "mirror": "ssh://git@github.com/o/r.git",
}


class TestPolicy:
    """The policy on its own: what it replaces, and what it leaves alone."""

    @pytest.mark.parametrize(("what", "message", "fields", "secrets"), CORPUS)
    def test_secret_is_replaced(self, what, message, fields, secrets):
        """Each corpus input loses its secret and gains a marker."""
        policy = RedactionPolicy()

        event = policy({"event": message, **fields}, 40)

        text = repr(event)
        assert [s for s in secrets if s in text] == []
        assert "[REDACTED:" in text

    def test_fast_check_agrees_with_the_trigger(self):
        """The str-method check says what the trigger expression says."""
        from runtime_logging.redaction import _TRIGGER, may_hold_secret

        texts = [m for _, m, *_ in CORPUS] + ORDINARY_TEXT + [JWT, AWS, BASIC]
        texts += ["ghp_" + secret(1) * 4, "high_score", "plain", "naïve token x"]

        assert [
            t for t in texts if may_hold_secret(t) != bool(_TRIGGER.search(t))
        ] == []

    @pytest.mark.parametrize("text", ORDINARY_TEXT)
    def test_ordinary_text_unchanged(self, text):
        """Words that only look like secret names come through as they are."""
        assert RedactionPolicy().redact_text(text) == text

    def test_ordinary_fields_unchanged(self):
        """Fields named like, but not, secrets keep their values."""
        fields = {"event": "x", **ORDINARY_FIELDS}

        assert RedactionPolicy()(dict(fields), 20) == fields

    def test_only_the_secret_part_goes(self):
        """The rest of a URL, a cookie line and a sentence is kept."""
        policy = RedactionPolicy()

        assert policy.redact_text("/cb?code=abc&token=t0k&x=1") == (
            "/cb?code=[REDACTED:query]&token=[REDACTED:query]&x=1"
        )
        assert policy.redact_text("code=abc&x=1") == "code=[REDACTED:query]&x=1"
        assert policy.redact_text("https://u:p4ss@h/x") == (
            "https://u:[REDACTED:url credentials]@h/x"
        )
        assert policy.redact_text("login password=hunter2 ok") == (
            "login password=[REDACTED:pair] ok"
        )
        assert policy.redact_text('{"token": "t0k1"}') == '{"token": "[REDACTED:pair]"}'

    def test_redacted_text_stays_as_it_is(self):
        """Redacting twice (the file, then Sentry's event) changes nothing more."""
        policy = RedactionPolicy()

        for text in (
            "cfg pw=>hunter2 x",
            'h = {"token" => "t0k"}',
            "a: b",
            "pw:=x",
            'password=>"hunter2"',
            "token=>'t0k'",
        ):
            once = policy.redact_text(text)
            assert "hunter2" not in once
            assert "t0k" not in once
            assert policy.redact_text(once) == once

    def test_pair_rule_needs_a_key_name(self):
        """Only a name first makes a header pair; other pairs are text."""
        policy = RedactionPolicy()

        event = policy(
            {
                "argv": ["--db-password=Hunter2A", "--verbose"],
                "header": ("x-api-key", "k1"),
                "asgi": [(b"x-auth-token", b"k2")],
            },
            20,
        )

        assert event == {
            "argv": ["--db-password=[REDACTED:pair]", "--verbose"],
            "header": ("x-api-key", "[REDACTED:xapikey]"),
            "asgi": [(b"x-auth-token", "[REDACTED:xauthtoken]")],
        }

    def test_text_pairs_follow_the_key_rule(self):
        """A pair in text is secret exactly when its key is secret as a field."""
        policy = RedactionPolicy(keys=["card_number"], allow_keys=["session"])

        secret_keys = [*KEYS, "card_number", "cardNumber"]
        leaks = [
            text
            for key in secret_keys
            for text in (f"{key}={secret(1)}", f'{{"{key}": "{secret(1)}"}}')
            if secret(1) in policy.redact_text(text)
        ]
        plain = [f"{key}={value}" for key, value in ORDINARY_FIELDS.items()]
        plain += ["started session=s-1", "session: s-2"]

        assert leaks == []
        assert [t for t in plain if policy.redact_text(t) != t] == []

    def test_key_name_without_letters_agrees_too(self):
        """A redact_keys name of no letters: fields and text still agree."""
        for keys in (["123"], ["x"], []):
            policy = RedactionPolicy(keys=keys, defaults=False)

            as_field = policy({"foo": "bar"}, 20)["foo"] != "bar"
            as_text = policy.redact_text("foo=bar") != "foo=bar"

            assert (keys, as_field) == (keys, as_text)

    def test_marker_names_the_key(self):
        """A secret key's value is replaced by a marker naming the key."""
        assert RedactionPolicy()({"X-Api-Key": "k"}, 20) == {
            "X-Api-Key": "[REDACTED:xapikey]"
        }

    def test_extend_and_reduce(self):
        """redact_keys adds key endings, redact_keys_allow lets defaults through."""
        policy = RedactionPolicy(keys=["installation_note"], allow_keys=["session"])

        event = policy({"installationNote": "n", "session": "s", "token": "t"}, 20)

        assert event == {
            "installationNote": "[REDACTED:installationnote]",
            "session": "s",
            "token": "[REDACTED:token]",
        }

    def test_callers_containers_unchanged(self):
        """A nested dict the caller passed is copied, never changed."""
        headers = {"Authorization": "Bearer x1"}

        RedactionPolicy()({"headers": headers}, 20)

        assert headers == {"Authorization": "Bearer x1"}

    def test_clean_event_is_returned_as_is(self):
        """An event without secrets keeps its very objects (the cheap path)."""
        nested = {"module": "python", "sizes": [1, 2, 3]}

        event = RedactionPolicy()({"event": "Installation started", "m": nested}, 20)

        assert event["m"] is nested


def _raise_with(text, password):
    url = f"https://api/x?token={password}&page=2"  # noqa: F841 - a local to redact
    header = ("Authorization", password)  # noqa: F841 - shown as its repr
    raise ConnectionError(text)


def _fail_and_log(log, text, password):
    # Only this frame and the one raising are in the traceback: their locals
    # hold the secrets under names and in forms the policy recognises.
    try:
        _raise_with(text, password)
    except ConnectionError:
        log.exception("connect failed")


EXCEPTION_CASES = [
    (f"connect failed: password={secret(300)}", secret(301)),
    (f"https://app:{secret(302)}@db/x refused", secret(303)),
    (f"upstream said Bearer {secret(304)}", secret(305)),
]


class Outputs:
    """Every sink's output in one set-up: file, consoles, Sentry, Loki."""

    def __init__(self, tmp_path):
        self.sentry = SentryServer()
        self.loki = LokiReceiver()
        self.pretty, self.json = io.StringIO(), io.StringIO()
        for scope in (sentry_sdk.get_isolation_scope(), sentry_sdk.get_current_scope()):
            scope.clear_breadcrumbs()
        self.service = configure_logging(
            env={},
            console="off",
            log_dir=str(tmp_path),
            handle_signals=False,
            include_locals=True,
            sentry_dsn=self.sentry.dsn,
            sentry_logs=True,
            traces_sample_rate=1.0,
            profiles_sample_rate=0.0,
            loki_url=self.loki.url,
            loki_batch_interval=0.05,
            sinks=[
                ConsoleSink(self.pretty, style="pretty", color="never"),
                ConsoleSink(self.json, style="json"),
            ],
        )
        self.file = tmp_path / "app.log"

    def raw(self) -> dict[str, bytes]:
        # A hundred Sentry events go out one at a time: on a busy machine
        # that takes longer than the default drain, so wait as long as needed.
        self.service.flush(timeout=60.0)
        return {
            "file": self.file.read_bytes(),
            "console pretty": self.pretty.getvalue().encode(),
            "console json": self.json.getvalue().encode(),
            "sentry": self.sentry.raw,
            "loki": "\n".join(self.loki.lines()).encode()
            + repr(self.loki.stream_labels).encode(),
        }

    def close(self):
        self.service.shutdown()
        self.sentry.close()
        self.loki.stop()


@pytest.fixture
def outputs(tmp_path):
    outputs = Outputs(tmp_path)
    yield outputs
    outputs.close()


def _leaks(raw: dict[str, bytes], secrets) -> list[tuple[str, str]]:
    return [
        (sink, text)
        for sink, data in raw.items()
        for text in secrets
        if text.encode() in data
    ]


class TestCorpusInEverySink:
    """At least 50 secret-bearing inputs, zero leaks in any sink's bytes."""

    def test_corpus(self, outputs):
        """Messages, fields, nesting, URLs, headers, exceptions, locals, stdlib."""
        log = outputs.service.get_logger("corpus")
        secrets = [s for *_, case_secrets in CORPUS for s in case_secrets]

        with sentry_sdk.start_transaction(name="corpus", op="test"):
            for _, message, fields, _ in CORPUS:
                log.info(message, **fields)
                log.error(message, **fields)
            for text, password in EXCEPTION_CASES:
                _fail_and_log(log, text, password)
            secrets += [secret(n) for n in range(300, 306)]
            logging.getLogger("corpus.stdlib").error(
                "upstream header %s", f"Bearer {secret(400)}"
            )
            logging.getLogger("corpus.stdlib").error(
                "login", extra={"api_key": secret(401)}
            )
            secrets += [secret(400), secret(401)]
        raw = outputs.raw()

        assert len(CORPUS) + len(EXCEPTION_CASES) >= 50
        assert len(outputs.sentry.events) == len(CORPUS) + len(EXCEPTION_CASES) + 2
        assert len(outputs.sentry.transactions) == 1
        assert len(outputs.loki.lines()) == len(raw["file"].splitlines())
        assert _leaks(raw, secrets) == []

    def test_ordinary_inputs_come_through(self, outputs):
        """Ordinary words and fields reach every sink unchanged."""
        log = outputs.service.get_logger("ordinary")

        for text in ORDINARY_TEXT:
            log.error(text, **ORDINARY_FIELDS)
        raw = outputs.raw()

        for sink in ("file", "console json", "sentry", "loki"):
            missing = [t for t in ORDINARY_TEXT if t.encode() not in raw[sink]]
            assert (sink, missing) == (sink, [])
        assert b"REDACTED" not in raw["file"]


class TestC8:
    """C8: one error event's secrets, searched for in every output's bytes."""

    def test_scrubbing_reaches_everywhere(self, outputs):
        """No s3cr3t, abc, t0k, K, hunter2 or zzz anywhere; x=1 survives."""
        log = outputs.service.get_logger("c8")
        url = "/cb?code=abc&token=t0k&x=1"

        def request_data(event, hint):
            # What a web framework integration attaches to events.
            event["request"] = {
                "url": "https://app.example.com/cb",
                "query_string": "code=abc&token=t0k&x=1",
                "headers": {"Authorization": "Bearer s3cr3t", "Cookie": "session=zzz"},
                "cookies": {"session": "zzz"},
            }
            return event

        with sentry_sdk.new_scope() as scope:
            scope.add_event_processor(request_data)
            with sentry_sdk.start_transaction(name=url, op="http.server"):
                with sentry_sdk.start_span(op="http.client", name=f"GET {url}") as span:
                    span.set_data("url", "https://api/v1?api_key=K&page=1")
                sentry_sdk.add_breadcrumb(
                    message="login password=hunter2",
                    data={"url": "https://api/v1?api_key=K&page=1"},
                )
                log.info(
                    "login password=hunter2", url="https://api/v1?api_key=K&page=1"
                )
                log.error(
                    "Callback failed",
                    headers={"Authorization": "Bearer s3cr3t", "Cookie": "session=zzz"},
                    request={"url": url, "headers": {"Cookie": "session=zzz"}},
                )
        raw = outputs.raw()

        bare = ["s3cr3t", "t0k", "hunter2", "zzz"]
        # "abc" and "K" alone occur in hex ids and words: searched with their "=".
        keyed = ["code=abc", "=abc", "api_key=K", "=K&"]
        assert _leaks(raw, bare + keyed) == []
        for sink, data in raw.items():
            assert (sink, b"x=1" in data) == (sink, True)
        line = raw["file"].splitlines()[-1]
        assert b"/cb?code=[REDACTED:query]&token=[REDACTED:query]&x=1" in line
        [event] = outputs.sentry.events
        assert event["request"]["query_string"].endswith("&x=1")
        crumbs = event["breadcrumbs"]["values"]
        assert {"login password=[REDACTED:pair]"} <= {c.get("message") for c in crumbs}
        [transaction] = outputs.sentry.transactions
        assert transaction["transaction"].endswith("&x=1")


class TestQuickTest:
    """The str test that spares most values the patterns never misses one."""

    FRAGMENTS = (
        "=",
        ":",
        "@",
        "eyJ",
        "-----BEGIN",
        "AKIA",
        "ASIA",
        "AGPA",
        "AIDA",
        "AIza",
        "ghp_",
        "gho_",
        "ghs_",
        "github_pat_",
        "xox",
        "_live_",
        "Bearer ",
        "BASIC\t",
        "token\n",
        "Digest ",
        "gh",
        "_",
        " ",
        "\x1c",
        "\u017f",
        "bas\u0131c ",
        "é",
        "inst-4f2a",
        "A",
        "manifest",
        "--",
        "-pass",
        "-",
    )

    def test_every_text_the_trigger_finds_is_looked_at(self):
        import random

        from runtime_logging.redaction import _TRIGGER, may_hold_secret

        chooser = random.Random(11)
        for _ in range(20_000):
            text = "".join(
                chooser.choice(self.FRAGMENTS) for _ in range(chooser.randint(1, 4))
            )
            if _TRIGGER.search(text):
                assert may_hold_secret(text), text

    def test_every_secret_pair_is_looked_at(self):
        """The letters check passes every text whose pairs would change."""
        import random

        policy = RedactionPolicy(keys=["card_number"])
        fragments = (
            *("pa", "ss", "word", "_", "-", "2", "API", "key", "Card", "number"),
            *("db", "pin", "ned", "=", ":", " ", '"', "'", "x", "\u212a", "\u017f"),
        )
        chooser = random.Random(12)
        for _ in range(20_000):
            text = "".join(chooser.choices(fragments, k=chooser.randint(2, 7)))
            if policy._redact_pairs(text) != text:
                assert policy._may_hold_pair(text), text

    def test_hints_never_skip_a_pattern(self):
        """Each pattern's words are looked for as its case folding reads them."""
        import random

        policy = RedactionPolicy()
        fragments = (
            *("Ba\u017fic ", "BAS\u0130C ", "bas\u0131c ", BASIC, "Bearer "),
            *("Author\u0131zation: ", "Coo\u212aie: ", "\u017fecret=", "to"),
            *("ken ", "x9y8z7w6", " ", ":", "=", "@", "://u", "?code="),
        )
        chooser = random.Random(13)
        for _ in range(5_000):
            text = "".join(chooser.choices(fragments, k=chooser.randint(1, 5)))
            every = text
            for _, pattern, replacement in policy._patterns:
                every = pattern.sub(replacement, every)
            assert policy.redact_text(text) == policy._redact_pairs(every), text

    def test_plain_values_are_spared(self):
        from runtime_logging.redaction import may_hold_secret

        for text in ("inst-4f2a9c81", "manifest-update", "Module verified", ""):
            assert not may_hold_secret(text)


class Ambiguous:
    """A value whose truth can't be told, as a numpy array's can't."""

    def __bool__(self):
        raise ValueError("the truth value is ambiguous")

    def __repr__(self):
        return "Ambiguous()"


class TestPairsInLongAndOddText:
    def test_many_keys_in_one_token_are_read_once(self):
        """A 300 KB text of ``k:k:...`` pairs with no space: read in one pass.

        Each value is read only after a secret key; reading one per key made
        this text take 15 s, and a 1 MB one minutes.
        """
        text = "|".join(f"user:{n}:session" for n in range(16_000))

        # ``session`` is a secret key's word, but no ``session`` here has a
        # separator after it: nothing to replace.
        assert RedactionPolicy().redact_text(text) == text

        flood = "password:" * 100_000
        assert RedactionPolicy().redact_text(flood) == "password:[REDACTED:pair]"

    def test_an_empty_value_keeps_the_next_line(self):
        text = "user=bob\npassword=\nhost=db"

        assert RedactionPolicy().redact_text(text) == text

    def test_closing_brackets_stay(self):
        policy = RedactionPolicy()

        assert policy.redact_text('{"pin": 1234}') == '{"pin": [REDACTED:pair]}'
        assert (
            policy.redact_text("User(name='a', pin=1234)")
            == "User(name='a', pin=[REDACTED:pair])"
        )

    def test_values_without_a_truth_are_redacted_not_lost(self, tmp_path):
        """A secret key's numpy-like value is hidden; the event is written."""
        service = configure_logging(
            env={}, console="off", log_dir=str(tmp_path), handle_signals=False
        )
        try:
            service.get_logger("t").info(
                "weights", token=Ambiguous(), layer=("authorization", Ambiguous())
            )
        finally:
            service.shutdown()

        [line] = [
            json.loads(raw) for raw in (tmp_path / "app.log").read_bytes().splitlines()
        ]
        assert line["token"] == "[REDACTED:token]"
        assert line["layer"] == ["authorization", "[REDACTED:authorization]"]


class TestCommandLines:
    def test_a_secret_flag_s_value_in_a_list_and_in_its_text(self, tmp_path):
        """argv as a list, and as CalledProcessError writes it, hide the value."""
        import subprocess
        import sys

        service = configure_logging(
            env={}, console="off", log_dir=str(tmp_path), handle_signals=False
        )
        log = service.get_logger("backup")
        try:
            try:
                subprocess.run(
                    [
                        sys.executable,
                        "-c",
                        "raise SystemExit(1)",
                        "--password",
                        "S3c-1",
                    ],
                    check=True,
                )
            except subprocess.CalledProcessError:
                log.exception("backup failed")
            log.info("running", argv=["mysqldump", "--password", "S3c-2", "--verbose"])
        finally:
            service.shutdown()

        text = (tmp_path / "app.log").read_text()
        assert "S3c-" not in text
        lines = [json.loads(raw) for raw in text.splitlines()]
        assert lines[1]["argv"] == [
            "mysqldump",
            "--password",
            "[REDACTED:pair]",
            "--verbose",
        ]

    def test_ordinary_flags_keep_their_values(self):
        policy = RedactionPolicy()

        argv = ["rsync", "--verbose", "src", "--exclude", "*.tmp"]
        assert policy.redact_value(argv) is argv
        text = "Command '['rsync', '--exclude', '*.tmp']' returned 1"
        assert policy.redact_text(text) == text


def test_allowed_keys_are_let_through_in_urls_too():
    """README: redact_keys_allow = ["session"] keeps session ids, in URLs too."""
    policy = RedactionPolicy(allow_keys=["session"])

    assert policy.redact_text("GET /x?session=abc&token=t1&x=1") == (
        "GET /x?session=abc&token=[REDACTED:query]&x=1"
    )
    assert policy.redact_text("session=abc") == "session=abc"
    assert (
        RedactionPolicy().redact_text("/x?session=abc") == "/x?session=[REDACTED:query]"
    )


def test_dotted_and_quoted_multi_word_keys_in_text():
    """Keys secret as field names are secret in text with dots or spaces too."""
    policy = RedactionPolicy()

    assert policy.redact_text("api.key=AbCd1234") == "api.key=[REDACTED:pair]"
    assert policy.redact_text('{"Secret Access Key": "AbCdEf123"}') == (
        '{"Secret Access Key": "[REDACTED:pair]"}'
    )
    for text in ("host example.com:8080 ok", "version 1.2.3: done", "a.b.c=1"):
        assert policy.redact_text(text) == text


def test_json_inside_a_json_string_and_escaped_quotes():
    """A dumped event body (JSON in a JSON string) and escaped quotes hide it all."""
    policy = RedactionPolicy()
    body = json.dumps({"body": json.dumps({"user": "a", "password": "S3c-1"})})

    redacted = policy.redact_text(body)
    assert "S3c-1" not in redacted
    assert '\\"user\\": \\"a\\"' in redacted
    assert policy.redact_text('password="ab\\"cd S3c-2" next') == (
        'password="[REDACTED:pair]" next'
    )
    assert "S3c-3" not in policy.redact_text('token: "S3c-3 never closed\nnext')


def test_bytes_values_in_reprs_and_comparisons():
    """b'...' values lose their secret; ``==`` is no pair to mangle."""
    policy = RedactionPolicy()

    assert policy.redact_text("{'password': b'S3c-1'}") == (
        "{'password': b'[REDACTED:pair]'}"
    )
    comparison = "if password == expected:"
    assert policy.redact_text(comparison) == comparison
