"""Loads objects into the demo's API server: the CRDs (generated from the models, the same as
`crds/`), then YAML documents, each created (or, for a `--db` that already holds it, replaced).
Status given in a document (a Node's addresses) is written through `/status`, as a kubelet would.
Called by `lbipam.demo.main`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from lbipam.api.crdgen import crd_dicts
from lbipam.k8s.client import Kube
from lbipam.k8s.errors import AlreadyExists
from lbipam.k8s.resources import ALL, CRDS, Resource, object_key

Obj = dict[str, Any]
EXAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "examples"


def resource_of(obj: Mapping[str, Any]) -> Resource:
    for res in (*ALL, CRDS):
        if res.api_version == obj.get("apiVersion") and res.kind == obj.get("kind"):
            return res
    raise ValueError(f"{obj.get('kind')} {obj.get('apiVersion')}: not a kind the demo knows")


def documents(paths: Iterable[Path]) -> list[Obj]:
    return [doc for path in paths for doc in yaml.safe_load_all(path.read_text()) if doc]


async def put(kube: Kube, obj: Obj) -> Obj:
    """Create `obj`, or replace the object of that name; then write its status, if it has one."""
    res = resource_of(obj)
    namespace, name = object_key(obj)
    try:
        stored = await kube.create(res, obj)
    except AlreadyExists:
        current = await kube.get(res, name, namespace=namespace or None)
        meta = {**obj.get("metadata", {}), "resourceVersion": current["metadata"]["resourceVersion"]}
        stored = await kube.replace(res, {**obj, "metadata": meta})
    if obj.get("status") and res.has_status:
        body = {"status": obj["status"]}
        stored = await kube.patch(res, name, body, namespace=namespace or None, subresource="status")
    return stored


async def load_crds(kube: Kube) -> list[str]:
    names = []
    for definition in crd_dicts():
        await put(kube, definition)
        names.append(definition["metadata"]["name"])
    return names


async def established(kube: Kube, names: Iterable[str]) -> bool:
    for name in names:
        crd = await kube.get(CRDS, name)
        conditions = (crd.get("status") or {}).get("conditions") or []
        if not any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
            return False
    return True
