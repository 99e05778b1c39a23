"""Kubernetes 1.32's definitions of the built-in kinds served here, vendored in `data/`.

The JSON-schema form of the OpenAPI definitions (`$ref: "#/$defs/<name>"`, types as lists with
"null") for the served packages and everything they reference, trimmed from the
`kubernetes-validate` package's copy and shipped gzipped (`VENDORED`, 90 kB, instead of a 108 MB
runtime dependency). A test regenerates the trimmed set from kubernetes-validate (a test
dependency) and fails on drift. Read by `typed.py` (what a body of a built-in kind may hold) and
`wire/openapi.py` (the documents kubectl reads).
"""

from __future__ import annotations

import functools
import gzip
import json
from importlib import resources
from typing import Any

from lbipam.apiserver.storage.registry import ResourceType

#: The kubernetes-validate schema set the vendored definitions are trimmed from.
UPSTREAM_SCHEMAS = "v1.32.0-local"
VENDORED = "kubernetes-1.32-definitions.json.gz"
META = "io.k8s.apimachinery.pkg.apis.meta.v1."
# Go package paths of the built-in kinds' definitions, by (group, version).
PACKAGES = {
    ("", "v1"): "io.k8s.api.core.v1",
    ("discovery.k8s.io", "v1"): "io.k8s.api.discovery.v1",
    ("coordination.k8s.io", "v1"): "io.k8s.api.coordination.v1",
    ("events.k8s.io", "v1"): "io.k8s.api.events.v1",
    ("apiextensions.k8s.io", "v1"): "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1",
}


@functools.cache
def upstream() -> dict[str, Any]:
    """The vendored definitions, by name (`io.k8s.api.core.v1.Service`)."""
    packed = (resources.files(__package__) / "data" / VENDORED).read_bytes()
    defs: dict[str, Any] = json.loads(gzip.decompress(packed))
    return defs


def builtin_name(rtype: ResourceType) -> str | None:
    """The definition of a built-in kind (`io.k8s.api.core.v1.Service`); None for others."""
    package = PACKAGES.get((rtype.group, rtype.version))
    return f"{package}.{rtype.kind}" if rtype.builtin and package else None


def trim_definitions(defs: dict[str, Any]) -> dict[str, Any]:
    """The definitions of the served packages and everything they reference (for vendoring)."""
    wanted = {*PACKAGES.values(), META[:-1]}
    need = {k for k in defs if k.rsplit(".", 1)[0] in wanted or k.startswith("io.k8s.apimachinery")}
    frontier = list(need)
    while frontier:
        for ref in set(refs(json.dumps(defs[frontier.pop()]))) - need:
            need.add(ref)
            frontier.append(ref)
    return {k: defs[k] for k in sorted(need)}


def pack_definitions(defs: dict[str, Any]) -> bytes:
    """The vendored file's bytes: deterministic (sorted keys, no gzip timestamp)."""
    text = json.dumps(trim_definitions(defs), sort_keys=True, separators=(",", ":"))
    return gzip.compress(text.encode(), compresslevel=9, mtime=0)


def refs(text: str) -> list[str]:
    """The definition names a JSON text refers to."""
    parts = text.split('"$ref": "')[1:]
    return [p.split('"', 1)[0].rsplit("/", 1)[-1] for p in parts]
