"""The agent configurations in monitoring/agents ship what the Loki sink pushes.

Promtail's file is read by a YAML parser; Alloy's by the small parser below
(no parser of Alloy's syntax installs from PyPI or Debian), which covers the
syntax the file uses: blocks with labels, attributes, strings, lists,
objects and references.
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import pytest
import yaml

from runtime_logging import load_settings
from runtime_logging.sinks.file import backup_name
from runtime_logging.sinks.loki import LokiSink

AGENTS = Path(__file__).parent.parent / "monitoring" / "agents"
SETTINGS = load_settings(env={})
LABELS = list(SETTINGS.loki_labels)
LOG_GLOB = str(SETTINGS.log_dir / "*.log")


@pytest.fixture
def event(capture_events):
    from runtime_logging import get_logger

    get_logger("installer").warning("download slow", module="python", seconds=12.5)
    return capture_events.events[0]


def _sink_labels(event):
    kept = LokiSink("http://127.0.0.1:9").keep(event)
    return {name: kept.fields[name] for name in LABELS}


class TestPromtail:
    """Promtail's configuration parses and makes the sink's streams."""

    @pytest.fixture
    def config(self):
        return yaml.safe_load((AGENTS / "promtail.yaml").read_text())

    @pytest.fixture
    def stages(self, config):
        [job] = config["scrape_configs"]
        return {
            name: body
            for stage in job["pipeline_stages"]
            for name, body in stage.items()
        }

    def test_reads_the_live_log_files_only(self, config):
        """The glob takes app.log, not its rotated or compressed copies."""
        [job] = config["scrape_configs"]
        [static] = job["static_configs"]
        glob = static["labels"]["__path__"]
        live = SETTINGS.log_dir / "app.log"
        rotated = [live.with_name("app.log.1"), backup_name(live, 0.0)]
        rotated.append(rotated[-1].with_name(rotated[-1].name + ".gz"))

        assert glob == LOG_GLOB
        assert fnmatch.fnmatch(str(live), glob)
        assert not any(fnmatch.fnmatch(str(path), glob) for path in rotated)

    def test_labels_are_the_sinks(self, stages):
        """The labels stage and the allow-list name exactly the sink's labels."""
        assert sorted(stages["labels"]) == sorted(LABELS)
        assert sorted(stages["labelallow"]) == sorted(LABELS)
        assert set(LABELS) <= set(stages["json"]["expressions"])

    def test_a_real_line_gets_the_sinks_label_values(self, stages, event):
        """Applied to a JSON line of the file, the stages give the sink's labels."""
        import json

        line = json.loads(event.json_line)
        extracted = {
            name: line[key] for name, key in stages["json"]["expressions"].items()
        }
        labels = {
            name: extracted[source or name] for name, source in stages["labels"].items()
        }

        assert labels == _sink_labels(event)
        assert stages["timestamp"]["source"] == "timestamp"

    def test_listens_and_pushes_on_loopback(self, config):
        assert config["server"]["http_listen_address"] == "127.0.0.1"
        assert all(c["url"].startswith("http://127.0.0.1:") for c in config["clients"])


class TestAlloy:
    """Alloy's configuration parses and makes the sink's streams."""

    @pytest.fixture
    def components(self):
        blocks = parse_alloy((AGENTS / "alloy.alloy").read_text())
        return {(name, label): body for name, label, body in blocks}

    def test_references_resolve(self, components):
        """Each `forward_to` and `targets` names a component of the file."""
        text = (AGENTS / "alloy.alloy").read_text()
        for reference in re.findall(r"\b((?:local|loki)\.[a-z_.]+)\b", text):
            parts = reference.split(".")
            if len(parts) > 3:
                assert (".".join(parts[:2]), parts[2]) in components, reference

    def test_labels_are_the_sinks(self, components):
        body = components[("loki.process", "vscode_runtime")]
        stages = {name: inner for name, _, inner in body["blocks"]}

        assert sorted(stages["stage.labels"]["values"]) == sorted(LABELS)
        assert sorted(stages["stage.label_keep"]["values"]) == sorted(LABELS)
        assert set(LABELS) <= set(stages["stage.json"]["expressions"])
        assert stages["stage.timestamp"]["source"] == "timestamp"

    def test_a_real_line_gets_the_sinks_label_values(self, components, event):
        import json

        body = components[("loki.process", "vscode_runtime")]
        stages = {name: inner for name, _, inner in body["blocks"]}
        line = json.loads(event.json_line)
        extracted = {k: line[v] for k, v in stages["stage.json"]["expressions"].items()}
        values = stages["stage.labels"]["values"]

        assert {k: extracted[v or k] for k, v in values.items()} == _sink_labels(event)

    def test_files_and_endpoint(self, components):
        [target] = components[("local.file_match", "vscode_runtime")]["path_targets"]
        [endpoint] = components[("loki.write", "default")]["blocks"]

        assert target == {"__path__": LOG_GLOB}
        assert endpoint[2]["url"].startswith("http://127.0.0.1:")


_TOKEN = re.compile(
    r'\s+|//[^\n]*|(?P<string>"(?:[^"\\\n]|\\.)*")|(?P<number>-?\d+(?:\.\d+)?)'
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)"
    r"|(?P<punct>[{}\[\]=,])"
)


def _tokens(text):
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise SyntaxError(f"unexpected {text[position : position + 20]!r}")
        position = match.end()
        kind = match.lastgroup
        if kind is not None:
            yield kind, match.group(kind)


def parse_alloy(text):
    """Top-level blocks as (name, label, body); raises SyntaxError on bad syntax."""
    tokens = [*_tokens(text), ("end", "")]
    body, _ = _body(tokens, 0, "end")
    if body["attributes"]:
        raise SyntaxError("attributes outside any block")
    return body["blocks"]


def _body(tokens, position, closing):
    body = {"attributes": {}, "blocks": []}
    while tokens[position] != ("punct", closing) and tokens[position][0] != "end":
        kind, name = tokens[position]
        if kind != "name":
            raise SyntaxError(f"expected a name, got {name!r}")
        position += 1
        if tokens[position] == ("punct", "="):
            if "." in name or name in body["attributes"]:
                raise SyntaxError(f"bad or repeated attribute {name!r}")
            value, position = _value(tokens, position + 1)
            body["attributes"][name] = value
            continue
        label = None
        if tokens[position][0] == "string":
            label = tokens[position][1][1:-1]
            position += 1
        _expect(tokens, position, "{")
        inner, position = _body(tokens, position + 1, "}")
        _expect(tokens, position, "}")
        position += 1
        body["blocks"].append((name, label, {**inner["attributes"], **inner}))
    if closing == "end" and tokens[position][0] != "end":
        raise SyntaxError("unbalanced '}'")
    if closing == "}" and tokens[position] != ("punct", "}"):
        raise SyntaxError("missing '}'")
    return body, position


def _value(tokens, position):
    kind, text = tokens[position]
    if kind == "string":
        return text[1:-1].encode().decode("unicode_escape"), position + 1
    if kind == "number":
        return float(text), position + 1
    if kind == "name":
        return {"true": True, "false": False, "null": None}.get(
            text, text
        ), position + 1
    if text == "[":
        return _list(tokens, position + 1)
    if text == "{":
        return _object(tokens, position + 1)
    raise SyntaxError(f"unexpected {text!r}")


def _list(tokens, position):
    items = []
    while tokens[position] != ("punct", "]"):
        item, position = _value(tokens, position)
        items.append(item)
        if tokens[position] == ("punct", ","):
            position += 1
        elif tokens[position] != ("punct", "]"):
            raise SyntaxError("expected ',' or ']'")
    return items, position + 1


def _object(tokens, position):
    mapping = {}
    while tokens[position] != ("punct", "}"):
        key_kind, key = tokens[position]
        if key_kind not in {"name", "string"}:
            raise SyntaxError(f"bad object key {key!r}")
        _expect(tokens, position + 1, "=")
        value, position = _value(tokens, position + 2)
        mapping[key.strip('"')] = value
        if tokens[position] == ("punct", ","):
            position += 1
        elif tokens[position] != ("punct", "}"):
            raise SyntaxError("expected ',' or '}'")
    return mapping, position + 1


def _expect(tokens, position, punct):
    if tokens[position] != ("punct", punct):
        raise SyntaxError(f"expected {punct!r}, got {tokens[position][1]!r}")


class TestAlloyParser:
    """The parser refuses what Alloy refuses, so passing it means something."""

    @pytest.mark.parametrize(
        "text",
        [
            'a "x" {\n b = \n}',
            'a "x" {\n b = "c"\n',
            'a "x" {\n b = [1, 2\n}',
            'a "x" {\n b = {c = 1 d = 2}\n}',
            'a "x" {\n b = "c"\n b = "d"\n}',
            "x = 1",
            'a "x" { b = "c" } }',
        ],
    )
    def test_bad_syntax_refused(self, text):
        with pytest.raises(SyntaxError):
            parse_alloy(text)
