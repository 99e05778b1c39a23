"""The CRD reference in Markdown, generated from the same structural schemas as `crds/` (so it
cannot drift from them: README.md carries it between markers and a test compares).

One table per kind: every field of `spec` and `status` with its path, type, default and
description. Called by `lbipam crds --reference` and the README test.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from lbipam.api.crdgen import crd_dicts

Schema = dict[str, Any]
START = "<!-- crd-reference:start (generated: lbipam crds --reference) -->"
END = "<!-- crd-reference:end -->"


def _named(node: Schema) -> str | None:
    """The name of a shape shown as one row: a LabelSelector, a list of Conditions."""
    props = node.get("properties") or {}
    if {"matchLabels", "matchExpressions"} <= props.keys():
        return "LabelSelector"
    items = (node.get("items") or {}).get("properties") or {}
    if {"type", "status", "reason", "lastTransitionTime"} <= items.keys():
        return "[]Condition"
    return None


def _type(node: Schema) -> str:
    named = _named(node)
    if named:
        return named
    kind = node.get("type", "")
    if kind == "array":
        return f"[]{_type(node.get('items') or {})}"
    if kind == "object" and "additionalProperties" in node:
        return f"map[string]{_type(node['additionalProperties'] or {})}"
    if node.get("x-kubernetes-int-or-string"):
        return "int-or-string"
    return str(kind or "any")


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _rows(node: Schema, path: str, required: bool) -> Iterator[str]:
    default = f"`{json.dumps(node['default'])}`" if "default" in node else ("required" if required else "")
    description = node.get("description", "")
    limits = [f"{key} {node[key]}" for key in ("minimum", "maximum", "minLength", "maxLength") if key in node]
    if "enum" in node:
        limits.append("one of " + ", ".join(f"`{v}`" for v in node["enum"]))
    extra = f" ({'; '.join(limits)})" if limits else ""
    yield f"| `{path}` | {_type(node)} | {_cell(default)} | {_cell(description + extra)} |"
    if _named(node):
        return
    children = node.get("properties") or (node.get("items") or {}).get("properties") or {}
    needed = set(node.get("required") or (node.get("items") or {}).get("required") or [])
    suffix = "[]" if node.get("type") == "array" else ""
    for name, child in children.items():
        yield from _rows(child, f"{path}{suffix}.{name}", name in needed)


def reference() -> str:
    """The whole reference: one section per kind."""
    parts = []
    for definition in crd_dicts():
        names = definition["spec"]["names"]
        schema = definition["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        short = f" (short name `{', '.join(names['shortNames'])}`)" if names.get("shortNames") else ""
        lines = [f"#### {names['kind']}{short}", ""]
        if schema.get("description"):
            lines += [_cell(schema["description"]), ""]
        lines += ["| field | type | default | description |", "|---|---|---|---|"]
        props = schema.get("properties") or {}
        for top in ("spec", "status"):
            if top in props:
                lines += list(_rows(props[top], top, top in (schema.get("required") or [])))
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"
