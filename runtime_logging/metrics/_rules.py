"""Declarative rules: named events and their fields become metrics.

The format (TOML, or the same as a dict) is documented in the README and in
the shipped reference set, ``reference.toml`` beside this module. Every label
takes its values from an allowlist or is a constant, so a rule can't turn
ids or message text into series; a value outside the allowlist is counted
under ``other``.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from runtime_logging.config import read_toml
from runtime_logging.errors import ConfigurationError
from runtime_logging.metrics._errors import ErrorClassifier
from runtime_logging.schema import field_key

#: The shipped rule set for the reference workload (the README's events table).
REFERENCE_RULES = Path(__file__).with_name("reference.toml")

#: The label value a field gets when its value is not in the allowlist.
OTHER = "other"

KINDS = ("counter", "gauge", "histogram")
ACTIONS = {
    "counter": ("inc",),
    "gauge": ("inc", "dec", "set"),
    "histogram": ("observe",),
}
#: How a gauge of several pre-fork workers is combined (live workers only).
AGGREGATES = {
    "sum": "livesum",
    "max": "livemax",
    "min": "livemin",
    "latest": "livemostrecent",
}

#: Why a counter rule takes no negative number.
_NEVER_DOWN = (
    "a counter never decreases (Prometheus reads a lower value as a restart); "
    'for a number that goes down use `type = "gauge"`'
)
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


@dataclasses.dataclass(frozen=True, eq=False)
class Family:
    """A metric family: its full name, kind, help, labels and layout.

    Compared and hashed by identity: it keys every update on the hot path.
    """

    name: str
    kind: str
    help: str
    labelnames: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()
    aggregate: str = "livesum"
    #: The label values known in advance, whose series start at zero.
    known: tuple[tuple[str, ...], ...] = ()


@dataclasses.dataclass(frozen=True)
class Label:
    """Where one label's value comes from."""

    name: str
    field: str = ""
    allowed: frozenset[str] = frozenset()
    constant: str | None = None

    def value(self, fields: Mapping[str, Any]) -> str:
        """The label's value for an event's *fields*."""
        if self.constant is not None:
            return self.constant
        raw = fields.get(self.field)
        text = raw if type(raw) is str else _label_text(raw)
        return text if text in self.allowed else OTHER


@dataclasses.dataclass(frozen=True)
class Rule:
    """One event turned into one update of one metric."""

    event: str
    family: Family
    action: str
    labels: tuple[Label, ...] = ()
    value_field: str = ""
    value_map: Mapping[str, float] = dataclasses.field(default_factory=dict)
    amount: float = 1.0
    when: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    #: The smallest number the update takes: 0 for a counter, which never
    #: decreases (Prometheus reads a lower value as a restart).
    lowest: float = -math.inf

    def matches(self, fields: Mapping[str, Any]) -> bool:
        """Whether the ``when`` conditions hold for *fields*."""
        return all(fields.get(key) == value for key, value in self.when.items())

    def label_values(self, fields: Mapping[str, Any]) -> tuple[str, ...]:
        """The label values for *fields*, in the family's label order."""
        return tuple(label.value(fields) for label in self.labels)

    def number(self, fields: Mapping[str, Any]) -> float | None:
        """The number the update uses, or None when the field can't give one."""
        if not self.value_field:
            return self.amount
        raw = fields.get(self.value_field)
        if self.value_map:
            return self.value_map.get(_label_text(raw))
        # The exact types first (fast); bool is an int subclass but no number.
        if (type(raw) is not int and type(raw) is not float) and (
            isinstance(raw, bool) or not isinstance(raw, (int, float))
        ):
            return None
        try:
            number = float(raw)
        except OverflowError:  # an int beyond any float
            return None
        return number if math.isfinite(number) and number >= self.lowest else None


@dataclasses.dataclass(frozen=True)
class RuleSet:
    """The rules by event name, their families, and the error classifier."""

    rules: Mapping[str, tuple[Rule, ...]]
    families: tuple[Family, ...]
    classifier: ErrorClassifier


def _label_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    try:
        return str(value)
    except Exception:  # an int too long for decimal text is in no allowlist
        return OTHER


def _fail(where: str, value: object, expected: str) -> ConfigurationError:
    return ConfigurationError(
        f"`metrics_rules` {where} is {value!r}; expected {expected}. "
        "Fix the rule (see the README's metrics rules) or set `metrics_rules` "
        "to 'off'."
    )


def load_rules(source: str | Path | Mapping[str, Any], prefix: str) -> RuleSet:
    """Read a rule set from a TOML file, ``"reference"``, ``"off"`` or a dict.

    Raises:
        ConfigurationError: the file can't be read, or a rule is malformed or
            asks for a label without a bounded set of values.
    """
    table: Mapping[str, Any]
    if isinstance(source, Mapping):
        table = source
    elif str(source) == "off":
        table = {}
    else:
        path = REFERENCE_RULES if str(source) == "reference" else Path(source)
        table = read_toml(
            "metrics_rules",
            path,
            str(source),
            "point it at a TOML rules file, or use 'reference' or 'off'",
        )
    unknown = set(table) - {"errors", "rules"}
    if unknown:
        raise _fail("has the table", min(unknown), "'errors' or 'rules'")
    classifier = _classifier(table.get("errors", {}))
    families: dict[str, Family] = {}
    by_event: dict[str, list[Rule]] = {}
    raw_rules = table.get("rules", [])
    if not isinstance(raw_rules, list):
        raise _fail("`rules`", raw_rules, "an array of tables ([[rules]])")
    for index, raw in enumerate(raw_rules):
        rule = _rule(index, raw, prefix, families)
        by_event.setdefault(rule.event, []).append(rule)
    return RuleSet(
        {event: tuple(rules) for event, rules in by_event.items()},
        tuple(families.values()),
        classifier,
    )


def _classifier(raw: object) -> ErrorClassifier:
    if not isinstance(raw, Mapping):
        raise _fail("`errors`", raw, "a table")
    allowed = {"infrastructure", "domain", "application", "loggers", "replace_defaults"}
    for key in raw:
        if key not in allowed:
            raise _fail("`errors` key", key, "one of " + ", ".join(sorted(allowed)))
    lists = {}
    for kind in ("infrastructure", "domain", "application"):
        names = raw.get(kind, [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise _fail(f"`errors.{kind}`", names, "a list of exception type names")
        lists[kind] = names
    loggers = raw.get("loggers", {})
    if not isinstance(loggers, Mapping):
        raise _fail("`errors.loggers`", loggers, "a table of logger prefix = type")
    return ErrorClassifier(
        lists["infrastructure"],
        lists["domain"],
        lists["application"],
        dict(loggers),
        replace_defaults=bool(raw.get("replace_defaults", False)),
    )


_RULE_KEYS = {
    "event",
    "metric",
    "type",
    "action",
    "help",
    "labels",
    "value",
    "value_map",
    "amount",
    "when",
    "buckets",
    "aggregate",
}


def _rule(index: int, raw: object, prefix: str, families: dict[str, Family]) -> Rule:
    where = f"rule {index + 1}"
    if not isinstance(raw, Mapping):
        raise _fail(where, raw, "a table")
    for key in raw:
        if key not in _RULE_KEYS:
            raise _fail(f"{where} key", key, "one of " + ", ".join(sorted(_RULE_KEYS)))
    event, metric, kind, action = _names(where, raw, prefix)
    labels = _labels(where, raw.get("labels", {}), kind)
    family = _family(where, raw, prefix + metric, kind, labels, action)
    known = families.setdefault(family.name, family)
    if dataclasses.astuple(known) != dataclasses.astuple(family):
        raise _fail(
            f"{where} `metric`",
            metric,
            "the same type, labels, help, buckets and aggregate as the other "
            "rules that update it",
        )
    value_field, value_map, amount, when = _numbers(where, raw, kind, action)
    # Rules name fields as the caller wrote them; a field named like a
    # standard key (`service`) sits under its prefixed name in the event.
    return Rule(
        event,
        known,
        action,
        labels,
        field_key(value_field) if value_field else "",
        {str(k): float(v) for k, v in value_map.items()},
        amount,
        {field_key(str(k)): v for k, v in when.items()},
        0.0 if kind == "counter" else -math.inf,
    )


def _names(
    where: str, raw: Mapping[str, Any], prefix: str
) -> tuple[str, str, str, str]:
    event, metric, kind = raw.get("event"), raw.get("metric"), raw.get("type")
    if not isinstance(event, str) or not event:
        raise _fail(f"{where} `event`", event, "the event name, a string")
    if not isinstance(metric, str) or not _METRIC_NAME.fullmatch(prefix + metric):
        raise _fail(f"{where} `metric`", metric, "a metric name such as 'jobs_total'")
    if not isinstance(kind, str) or kind not in KINDS:
        raise _fail(f"{where} `type`", kind, "one of " + ", ".join(KINDS))
    if kind == "counter" and not metric.endswith("_total"):
        raise _fail(f"{where} `metric`", metric, "a counter name ending in '_total'")
    action = raw.get("action", ACTIONS[kind][0])
    if kind == "counter" and action == "dec":
        raise _fail(f"{where} `action`", action, "'inc': " + _NEVER_DOWN)
    if action not in ACTIONS[kind]:
        raise _fail(f"{where} `action`", action, "one of " + ", ".join(ACTIONS[kind]))
    return event, metric, kind, action


def _numbers(
    where: str, raw: Mapping[str, Any], kind: str, action: str
) -> tuple[str, Mapping[str, Any], float, Mapping[str, Any]]:
    value_field = raw.get("value", "")
    if not isinstance(value_field, str):
        raise _fail(f"{where} `value`", value_field, "the name of a numeric field")
    if (kind == "histogram" or action == "set") and not value_field:
        raise _fail(f"{where} `value`", value_field, "the field that holds the number")
    value_map = raw.get("value_map", {})
    if not isinstance(value_map, Mapping) or not all(
        _is_number(v) for v in value_map.values()
    ):
        raise _fail(f"{where} `value_map`", value_map, "a table of value = number")
    if kind == "counter" and any(v < 0 for v in value_map.values()):
        raise _fail(
            f"{where} `value_map`", value_map, "numbers of 0 or more: " + _NEVER_DOWN
        )
    amount = raw.get("amount", 1)
    if not _is_number(amount):
        raise _fail(f"{where} `amount`", amount, "a finite number")
    if kind == "counter" and amount < 0:
        raise _fail(f"{where} `amount`", amount, "0 or more: " + _NEVER_DOWN)
    when = raw.get("when", {})
    if not isinstance(when, Mapping):
        raise _fail(f"{where} `when`", when, "a table of field = value")
    return value_field, value_map, float(amount), when


def _is_number(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond any float
        return False


def _family(
    where: str,
    raw: Mapping[str, Any],
    name: str,
    kind: str,
    labels: tuple[Label, ...],
    action: str,
) -> Family:
    buckets: tuple[float, ...] = ()
    if kind == "histogram":
        given = raw.get("buckets", list(_DEFAULT_BUCKETS))
        if (
            not isinstance(given, list)
            or not given
            or not all(isinstance(b, (int, float)) for b in given)
            or any(low > high for low, high in itertools.pairwise(given))
        ):
            raise _fail(f"{where} `buckets`", given, "a rising list of numbers")
        buckets = tuple(float(b) for b in given)
    aggregate = raw.get("aggregate", "latest" if action == "set" else "sum")
    if aggregate not in AGGREGATES:
        raise _fail(
            f"{where} `aggregate`", aggregate, "one of " + ", ".join(AGGREGATES)
        )
    help_text = raw.get("help", f"{name}, from the event {raw.get('event')!r}.")
    if not isinstance(help_text, str):
        raise _fail(f"{where} `help`", help_text, "a string")
    known: tuple[tuple[str, ...], ...] = ((),)
    for label in labels:
        values = (
            [label.constant] if label.constant is not None else sorted(label.allowed)
        )
        known = tuple((*k, v) for k in known for v in values)
    return Family(
        name,
        kind,
        help_text,
        tuple(label.name for label in labels),
        buckets,
        AGGREGATES[aggregate] if kind == "gauge" else "",
        known if kind == "counter" or (kind == "gauge" and action != "set") else (),
    )


def _labels(where: str, raw: object, kind: str) -> tuple[Label, ...]:
    if not isinstance(raw, Mapping):
        raise _fail(f"{where} `labels`", raw, "a table of label = allowed values")
    labels = []
    for name, spec in raw.items():
        if (
            not _LABEL_NAME.fullmatch(name)
            or name.startswith("__")
            or (kind == "histogram" and name == "le")
        ):
            raise _fail(f"{where} label name", name, "a Prometheus label name")
        labels.append(_label(f"{where} label {name!r}", name, spec))
    return tuple(labels)


def _label(where: str, name: str, spec: object) -> Label:
    field, values = name, spec
    if isinstance(spec, str):
        return Label(name, constant=spec)
    if isinstance(spec, Mapping):
        field, values = spec.get("field", name), spec.get("values")
        if not isinstance(field, str):
            raise _fail(f"{where} `field`", field, "a field name")
    if not _is_value_list(values):
        raise ConfigurationError(
            f"`metrics_rules` {where} takes its values from the field {field!r} "
            f"without a bounded set of values ({values!r}); a label with "
            "unbounded values (ids, messages, paths) makes one series per value. "
            "List the allowed values, e.g. "
            f'{name} = {{ field = "{field}", values = ["a", "b"] }}, or keep the '
            "field in the log line only."
        )
    allowed = frozenset(_label_text(v) for v in cast("Sequence[object]", values))
    return Label(name, field_key(field), allowed)


def _is_value_list(values: object) -> bool:
    return (
        isinstance(values, Sequence)
        and not isinstance(values, str)
        and 0 < len(values) <= 64
        and all(isinstance(v, (str, int, bool)) for v in values)
        and OTHER not in values
    )
