"""Kubernetes LabelSelector matching as pure functions.

A selector is the metav1.LabelSelector shape: ``{matchLabels: {k: v}, matchExpressions:
[{key, operator, values}]}``, all terms ANDed. Operators: In, NotIn, Exists, DoesNotExist.
An absent selector (None) and an empty one ({}) both select everything, as lbipam's contract says
for pool, peer and advertisement selectors.

`compile_selector` validates once (errors name the field path at fault) and returns a frozen
`Selector` whose `matches` is cheap to call for every Service or Node.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")

# Label keys are an optional DNS-1123 subdomain prefix and a name of at most 63 characters.
# Always used with fullmatch: `$` would also match before a trailing newline.
_NAME = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
_NAME_RULE = "at most 63 alphanumerics, '-', '_' or '.', alphanumeric at both ends"
_PREFIX = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


class SelectorError(ValueError):
    """An invalid selector; `field` is the path at fault, e.g. "matchExpressions[0].operator"."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    operator: str
    values: frozenset[str]

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "Exists":
            return self.key in labels
        if self.operator == "DoesNotExist":
            return self.key not in labels
        if self.operator == "In":
            return self.key in labels and labels[self.key] in self.values
        # NotIn: as in Kubernetes, a missing key satisfies NotIn.
        return self.key not in labels or labels[self.key] not in self.values


@dataclass(frozen=True, slots=True)
class Selector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    @property
    def is_everything(self) -> bool:
        return not self.requirements


EVERYTHING = Selector()


def validate_label_key(key: object) -> str | None:
    """The problem with a label key, or None when it is valid."""
    if not isinstance(key, str) or not key:
        return "a label key must be a non-empty string"
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _PREFIX.fullmatch(prefix)):
        return f"label key {key!r} has an invalid prefix (a DNS-1123 subdomain)"
    if not name or len(name) > 63 or not _NAME.fullmatch(name):
        return f"label key {key!r} is invalid ({_NAME_RULE})"
    return None


def validate_label_value(value: object) -> str | None:
    """The problem with a label value, or None when it is valid."""
    if not isinstance(value, str):
        return f"label value {value!r} must be a string"
    if len(value) > 63 or not _NAME.fullmatch(value):
        return f"label value {value!r} is invalid ({_NAME_RULE})"
    return None


def compile_selector(selector: Mapping[str, Any] | None, field: str = "selector") -> Selector:
    """Validate a LabelSelector and compile it; raises SelectorError naming the field at fault."""
    if selector is None:
        return EVERYTHING
    if not isinstance(selector, Mapping):
        raise SelectorError(field, "must be an object with matchLabels and/or matchExpressions")
    unknown = set(selector) - {"matchLabels", "matchExpressions"}
    if unknown:
        raise SelectorError(field, f"unknown field(s) {', '.join(sorted(unknown))}")
    requirements = [
        *_compile_labels(selector.get("matchLabels") or {}, f"{field}.matchLabels"),
        *_compile_expressions(selector.get("matchExpressions") or [], f"{field}.matchExpressions"),
    ]
    return Selector(tuple(requirements))


def _compile_labels(labels: object, field: str) -> list[Requirement]:
    if not isinstance(labels, Mapping):
        raise SelectorError(field, "must be a map of label keys to values")
    out = []
    for key, value in labels.items():
        problem = validate_label_key(key) or validate_label_value(value)
        if problem:
            raise SelectorError(f"{field}[{key}]", problem)
        out.append(Requirement(key, "In", frozenset([value])))
    return out


def _compile_expressions(expressions: object, field: str) -> list[Requirement]:
    if not isinstance(expressions, list):
        raise SelectorError(field, "must be a list of {key, operator, values}")
    return [_compile_expression(e, f"{field}[{i}]") for i, e in enumerate(expressions)]


def _compile_expression(expression: object, field: str) -> Requirement:
    if not isinstance(expression, Mapping):
        raise SelectorError(field, "must be an object with key, operator and values")
    key, operator = expression.get("key"), expression.get("operator")
    values = expression.get("values") or []
    problem = validate_label_key(key)
    if problem:
        raise SelectorError(f"{field}.key", problem)
    if operator not in OPERATORS:
        raise SelectorError(f"{field}.operator", f"{operator!r} is not one of {', '.join(OPERATORS)}")
    if not isinstance(values, list):
        raise SelectorError(f"{field}.values", "must be a list of strings")
    if operator in ("In", "NotIn") and not values:
        raise SelectorError(f"{field}.values", f"must be non-empty for operator {operator}")
    if operator in ("Exists", "DoesNotExist") and values:
        raise SelectorError(f"{field}.values", f"must be empty for operator {operator}")
    for index, value in enumerate(values):
        problem = validate_label_value(value)
        if problem:
            raise SelectorError(f"{field}.values[{index}]", problem)
    assert isinstance(key, str)  # validated above; narrows the type for mypy
    return Requirement(key, str(operator), frozenset(values))


def matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """One-shot form of compile_selector(selector).matches(labels)."""
    return compile_selector(selector).matches(labels)
