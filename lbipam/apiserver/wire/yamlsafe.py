"""YAML request bodies without their traps: no aliases, bounded nesting, JSON values only.

PyYAML's SafeLoader still expands aliases, so a few hundred bytes of nested `*a` references
become gigabytes (the "billion laughs"), and it nests as deep as Python recurses. A Kubernetes
object never needs an alias (kubectl sends JSON), so `load_one` refuses them outright, counts
nesting as it composes (a 400 beyond `jsonsafe.MAX_DEPTH`), and then holds the value to the same
rules as a JSON body (`jsonsafe.check`). YAML's extra scalar types (timestamps, binary) become
strings, as JSON would carry them. Called by the request decoding in `handlers.py`.
"""

from __future__ import annotations

import json
import math
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.events import AliasEvent

from lbipam.apiserver.errors import StatusError
from lbipam.apiserver.storage import jsonsafe

PREFIX = "error converting YAML to JSON"


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses aliases and counts nesting while composing."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(AliasEvent):
            self._refuse("yaml: aliases are not allowed")
        self._depth += 1
        try:
            if self._depth > jsonsafe.MAX_DEPTH:
                self._refuse(f"nested deeper than {jsonsafe.MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def _refuse(self, problem: str) -> None:
        mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
        raise ComposerError(None, None, problem, mark)


def load_one(data: bytes) -> Any:
    """The one YAML document in `data`, as JSON values; StatusError 400 for anything else.

    A body that is JSON (what kubectl sends) is read as JSON: the same value, far faster."""
    if data.lstrip()[:1] == b"{":
        try:
            value = json.loads(data, parse_constant=jsonsafe.no_constant)
        except (ValueError, UnicodeDecodeError, RecursionError):
            pass  # YAML flow style, or broken: the YAML parser says which
        else:
            jsonsafe.check(value, PREFIX)
            return value
    loader = _Loader(data)
    try:
        docs = []
        while loader.check_data():  # type: ignore[no-untyped-call]
            doc = loader.get_data()
            if doc is not None:
                docs.append(doc)
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as exc:
        raise StatusError(400, f"{PREFIX}: {exc}") from None
    finally:
        loader.dispose()
    if len(docs) != 1:
        raise StatusError(400, f"expected one YAML document in the body, found {len(docs)}")
    value = _json_values(docs[0])
    jsonsafe.check(value, PREFIX)
    return value


def _json_values(value: Any) -> Any:
    """YAML's extra types (dates, non-string keys) as JSON would carry them. Nesting is bounded
    by the loader, so the recursion is too."""
    if isinstance(value, dict):
        return {str(k): _json_values(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_values(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise StatusError(400, f"{PREFIX}: {value} is not valid JSON")
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
