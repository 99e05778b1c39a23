"""Label and field selector strings, parsed and matched as the Kubernetes API server does.

The server may not import `lbipam.core` (which has the object-side selector logic), so this
module owns the string syntax of `?labelSelector=` and `?fieldSelector=`. Pure; called by the list
and watch handlers. Parse errors raise `StatusError(400)` like the real server.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from lbipam.apiserver.errors import StatusError
from lbipam.apiserver.kinds.validation import label_value, qualified_name


@dataclass(frozen=True)
class Requirement:
    """One label requirement: op is one of = != in notin exists !exists gt lt."""

    key: str
    op: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key, "")
        if self.op in ("=", "in"):
            return present and value in self.values
        if self.op in ("!=", "notin"):
            return not present or value not in self.values
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        if not present or not re.fullmatch(r"-?\d+", value):
            return False
        bound = int(self.values[0])
        return int(value) > bound if self.op == "gt" else int(value) < bound


LabelSelector = tuple[Requirement, ...]
_SPECIALS = set(",()=!<>")


def _tokens(text: str) -> list[str]:
    """Identifiers and operators; whitespace only separates."""
    tokens: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
        elif text.startswith(("==", "!="), i):
            tokens.append(text[i : i + 2])
            i += 2
        elif ch in _SPECIALS:
            tokens.append(ch)
            i += 1
        else:
            j = i
            while j < len(text) and text[j] not in _SPECIALS and not text[j].isspace():
                j += 1
            tokens.append(text[i:j])
            i = j
    return tokens


def _fail(detail: str) -> StatusError:
    return StatusError(400, f"unable to parse requirement: {detail}")


class _LabelParser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise _fail("found '', expected: identifier")
        self.pos += 1
        return token

    def parse(self) -> LabelSelector:
        reqs: list[Requirement] = []
        while True:
            reqs.append(self.requirement())
            if self.peek() is None:
                return tuple(reqs)
            if self.take() != ",":
                raise _fail(f"found '{self.tokens[self.pos - 1]}', expected: ','")

    def requirement(self) -> Requirement:
        negated = self.peek() == "!"
        if negated:
            self.take()
        key = self.identifier()
        if negated:
            return Requirement(key, "!exists")
        op = self.peek()
        if op is None or op == ",":
            return Requirement(key, "exists")
        self.take()
        if op in ("=", "=="):
            return Requirement(key, "=", (self.value(),))
        if op == "!=":
            return Requirement(key, "!=", (self.value(),))
        if op in (">", "<"):
            bound = self.take()
            if not re.fullmatch(r"-?\d+", bound):
                raise _fail(f"for 'gt', 'lt' operators, the value must be an integer: {bound!r}")
            return Requirement(key, "gt" if op == ">" else "lt", (bound,))
        if op in ("in", "notin"):
            return Requirement(key, op, self.value_set())
        raise _fail(f"found '{op}', expected: in, notin, =, ==, !=, gt, lt")

    def identifier(self) -> str:
        key = self.take()
        if key in _SPECIALS or key in ("==", "!="):
            raise _fail(f"found '{key}', expected: identifier")
        problems = qualified_name(key)
        if problems:
            raise _fail(f"key: Invalid value: {key!r}: {problems[0]}")
        return key

    def value(self) -> str:
        token = self.peek()
        if token is None or token == ",":
            return ""
        value = self.take()
        if value in _SPECIALS:
            raise _fail(f"found '{value}', expected: identifier")
        problems = label_value(value)
        if problems:
            raise _fail(f"values[0][key]: Invalid value: {value!r}: {problems[0]}")
        return value

    def value_set(self) -> tuple[str, ...]:
        if self.take() != "(":
            raise _fail(f"found '{self.tokens[self.pos - 1]}', expected: '('")
        values: list[str] = []
        while True:
            token = self.take()
            if token == ")" and not values:
                raise _fail("for 'in', 'notin' operators, values set can't be empty")
            problems = label_value(token)
            if token in _SPECIALS or problems:
                detail = problems[0] if problems else "expected a value"
                raise _fail(f"values[{len(values)}][{token}]: Invalid value: {token!r}: {detail}")
            values.append(token)
            closing = self.take()
            if closing == ")":
                return tuple(values)
            if closing != ",":
                raise _fail(f"found '{closing}', expected: ',' or ')'")


def parse_label_selector(text: str | None) -> LabelSelector:
    """`app=web,tier in (a,b),!legacy` -> requirements; "" or None selects everything."""
    if not text or not text.strip():
        return ()
    return _LabelParser(text).parse()


def labels_match(selector: LabelSelector, labels: Mapping[str, str] | None) -> bool:
    labels = labels or {}
    return all(req.matches(labels) for req in selector)


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    op: str  # "=" or "!="
    value: str


FieldSelector = tuple[FieldRequirement, ...]


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts, current, escaped = [], [], False
    for ch in text:
        if escaped:
            current.append("\\" + ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if escaped:
        current.append("\\")
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def parse_field_selector(text: str | None, supported: Callable[[str], bool]) -> FieldSelector:
    """`metadata.name=web,metadata.namespace!=kube-system`; unsupported fields -> 400."""
    if not text or not text.strip():
        return ()
    reqs: list[FieldRequirement] = []
    for part in _split_unescaped(text, ","):
        match = re.fullmatch(r"\s*([^=!\s]+)\s*(==|=|!=)(.*)", part)
        if not match:
            raise StatusError(400, f"invalid selector: '{text}'; can't understand '{part}'")
        field, op, value = match.groups()
        if not supported(field):
            raise StatusError(400, f"field label not supported: {field}")
        reqs.append(FieldRequirement(field, "!=" if op == "!=" else "=", _unescape(value.strip())))
    return tuple(reqs)


def fields_match(selector: FieldSelector, value_of: Callable[[str], str]) -> bool:
    return all((value_of(r.field) == r.value) == (r.op == "=") for r in selector)
