"""The public face: a sorted __all__, docstrings everywhere, the schema documented."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import re
from pathlib import Path

import jsonschema

import runtime_logging
from runtime_logging.schema import FIELD_PREFIX, SCHEMA_VERSION, STANDARD_KEYS

ROOT = Path(__file__).resolve().parent.parent


def _public_modules():
    for info in pkgutil.walk_packages(runtime_logging.__path__, "runtime_logging."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            yield importlib.import_module(info.name)


class TestExports:
    def test_all_is_sorted_and_complete(self):
        """__all__ is sorted (constants, classes, functions) and every name exists."""
        names = runtime_logging.__all__

        def order(name):
            return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

        assert names == sorted(names, key=order)
        assert all(hasattr(runtime_logging, name) for name in names)

    def test_every_public_name_has_a_docstring(self):
        """Every public module, class, function and method says what it is."""
        missing = []
        for module in [runtime_logging, *_public_modules()]:
            if not inspect.getdoc(module):
                missing.append(module.__name__)
            for name, value in vars(module).items():
                if (
                    name.startswith("_")
                    or getattr(value, "__module__", None) != module.__name__
                ):
                    continue
                documented = inspect.getdoc(value)
                if (
                    inspect.isclass(value) or inspect.isfunction(value)
                ) and not documented:
                    missing.append(f"{module.__name__}.{name}")
                if inspect.isclass(value):
                    for attribute, member in vars(value).items():
                        if attribute.startswith("_") or not inspect.isfunction(member):
                            continue
                        if not inspect.getdoc(member):
                            missing.append(f"{module.__name__}.{name}.{attribute}")

        assert missing == []


class TestSchemaDocument:
    def test_schema_md_matches_the_code(self):
        """SCHEMA.md states the version, the prefix and the keys in order."""
        text = (ROOT / "SCHEMA.md").read_text()
        table_keys = re.findall(r"^\| `([a-z_]+)`", text, flags=re.MULTILINE)

        assert f"schema {SCHEMA_VERSION}" in text
        assert f"`{FIELD_PREFIX}<name>`" in text
        documented = [key for key in table_keys if key in STANDARD_KEYS]
        assert documented[:4] == list(STANDARD_KEYS[:4])

    def test_example_line_and_real_lines_validate(self, log_file):
        """The documented example and real lines validate against the JSON schema."""
        schema = json.loads(
            (ROOT / "runtime_logging" / "log-line.schema.json").read_text()
        )
        example = re.search(
            r"```json\n(.*?)\n```", (ROOT / "SCHEMA.md").read_text(), re.DOTALL
        )
        log = log_file.service.get_logger("x")
        log.info("plain", n=1)
        try:
            raise ValueError("bad") from KeyError("k")
        except ValueError:
            log.exception("failed")

        for line in [json.loads(example.group(1)), *log_file.lines()]:
            jsonschema.validate(line, schema)
            assert list(line)[: len(STANDARD_KEYS)] == list(STANDARD_KEYS)


class TestReadme:
    def test_every_setting_is_documented(self):
        """The README's settings table names every setting."""
        from runtime_logging.config import SETTING_NAMES

        readme = (ROOT / "README.md").read_text()

        assert [name for name in SETTING_NAMES if f"| `{name}` |" not in readme] == []
