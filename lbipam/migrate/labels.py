"""Label selector algebra for the translation: OR of several selectors, AND of a requirement,
renamed keys.

MetalLB writes lists of selectors that are ORed (`nodeSelectors`, `serviceSelectors`,
`ipAddressPoolSelectors`); lbipam has one LabelSelector per field. `union` finds the one selector
that selects exactly what the list selects, when there is one: an empty selector among them
selects everything; a selector implied by another drops out; selectors that differ only in the
values of one `key In (...)` merge into one. Otherwise it returns None and the caller decides
(split the object, or carry less and say so). Selectors are the wire shape (dicts). Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from lbipam.core.lbviews import LABEL_SERVICE_NAME
from lbipam.migrate.shapes import as_dict, as_list

Obj = dict[str, Any]
Req = tuple[str, str, tuple[str, ...]]  # key, operator, sorted values

#: A Service selector that selects no Service: every Service carries the synthetic
#: lbipam.io/service-name label (for advertisements that announce PodCIDRs only).
NO_SERVICE: Obj = {"matchExpressions": [{"key": LABEL_SERVICE_NAME, "operator": "DoesNotExist"}]}


def requirements(selector: Mapping[str, Any]) -> frozenset[Req]:
    """The requirements of a selector (matchLabels as `In` of one value); ValueError when a term
    is not a requirement."""
    found: set[Req] = set()
    for key, value in as_dict(selector.get("matchLabels")).items():
        found.add((str(key), "In", (str(value),)))
    for raw in as_list(selector.get("matchExpressions")):
        term = as_dict(raw)
        if "key" not in term or "operator" not in term:
            raise ValueError(f"matchExpressions term {dict(term)!r} needs a key and an operator")
        values = tuple(sorted({str(v) for v in as_list(term.get("values"))}))
        found.add((str(term["key"]), str(term["operator"]), values))
    return frozenset(found)


def to_selector(reqs: Iterable[Req]) -> Obj:
    """The selector of `reqs`: `key In (one value)` as matchLabels, the rest as matchExpressions."""
    labels: dict[str, str] = {}
    expressions: list[Obj] = []
    for key, operator, values in sorted(reqs):
        if operator == "In" and len(values) == 1 and key not in labels:
            labels[key] = values[0]
            continue
        term: Obj = {"key": key, "operator": operator}
        if operator in ("In", "NotIn"):
            term["values"] = list(values)
        expressions.append(term)
    out: Obj = {}
    if labels:
        out["matchLabels"] = labels
    if expressions:
        out["matchExpressions"] = expressions
    return out


def _without_implied(sets: list[frozenset[Req]]) -> list[frozenset[Req]]:
    """Drop every set that has all the requirements of another (it selects a subset of it)."""
    return [s for s in sets if not any(other < s for other in sets)]


def union(selectors: Sequence[Mapping[str, Any]]) -> Obj | None:
    """One selector for the OR of `selectors` (at least one), or None when none exists."""
    sets = _without_implied(sorted(set(map(requirements, selectors)), key=sorted))
    if any(not s for s in sets):
        return {}
    if len(sets) == 1:
        return to_selector(sets[0])
    common = frozenset.intersection(*sets)
    rests = [s - common for s in sets]
    if any(len(rest) != 1 for rest in rests):
        return None
    terms = [next(iter(rest)) for rest in rests]
    keys = {key for key, _, _ in terms}
    if len(keys) != 1 or any(op != "In" for _, op, _ in terms):
        return None
    values = tuple(sorted({v for _, _, vs in terms for v in vs}))
    return to_selector([*common, (keys.pop(), "In", values)])


def conjoin(selector: Mapping[str, Any] | None, *reqs: Req) -> Obj:
    """`selector` AND `reqs`."""
    return to_selector(requirements(selector or {}) | set(reqs))


def rename(selector: Mapping[str, Any], keys: Mapping[str, str]) -> Obj:
    """`selector` with its label keys renamed by `keys` (others kept)."""
    return to_selector((keys.get(k, k), op, values) for k, op, values in requirements(selector))
