"""Loads objects into the demo's API server: the CRDs (generated from the models, the same as
`crds/`), the example objects, and the demo's own BGPPeers. Called by `lbipam.demo.main`.

The examples ship inside the package (`lbipam/examples/`, package data: see
`lbipam.demo.preflight`), so `lbipam demo` finds them after `pip install` of a checkout or a
wheel, from any directory. An example is created
when missing and otherwise left as it is: a `--db` of an earlier demo resumes with what that demo
(and whoever used its kubeconfig) made of them; a Node's PodCIDRs, say, cannot be taken back.
Status given in a document (a Node's addresses) is written through `/status`, as a kubelet would,
when the object is created. The demo's BGPPeers change with its flags (a free port, BIRD's port,
--peer), so they carry a label and are replaced on every start.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from lbipam.api.crdgen import crd_dicts
from lbipam.k8s.client import Kube
from lbipam.k8s.errors import AlreadyExists
from lbipam.k8s.resources import ALL, BGPPEERS, CRDS, Resource, object_key
from lbipam.usererror import UserError

Obj = dict[str, Any]
#: The label of the BGPPeers the demo makes for itself (and replaces on every start).
DEMO_PEER_LABEL = "lbipam.io/demo-peer"


def resource_of(obj: Mapping[str, Any]) -> Resource:
    for res in (*ALL, CRDS):
        if res.api_version == obj.get("apiVersion") and res.kind == obj.get("kind"):
            return res
    raise UserError(f"{obj.get('kind')} {obj.get('apiVersion')}: not a kind the demo knows")


def documents(paths: Iterable[Path]) -> list[Obj]:
    out = []
    for path in paths:
        try:
            out += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
        except (OSError, yaml.YAMLError) as err:
            raise UserError(f"{path}: {err}") from None
    return out


async def create_if_missing(kube: Kube, obj: Obj) -> bool:
    """Create `obj` (and write its status, if it has one); False when it exists already."""
    res = resource_of(obj)
    namespace, name = object_key(obj)
    try:
        await kube.create(res, obj)
    except AlreadyExists:
        return False
    if obj.get("status") and res.has_status:
        body = {"status": obj["status"]}
        await kube.patch(res, name, body, namespace=namespace or None, subresource="status")
    return True


async def put(kube: Kube, obj: Obj) -> Obj:
    """Create `obj`, or replace the object of that name with it."""
    res = resource_of(obj)
    namespace, name = object_key(obj)
    try:
        return await kube.create(res, obj)
    except AlreadyExists:
        current = await kube.get(res, name, namespace=namespace or None)
        meta = {**obj.get("metadata", {}), "resourceVersion": current["metadata"]["resourceVersion"]}
        return await kube.replace(res, {**obj, "metadata": meta})


async def replace_demo_peers(kube: Kube, peers: list[Obj]) -> None:
    """Make the demo's BGPPeers exactly `peers`: the ones an earlier demo made go."""
    wanted = {p["metadata"]["name"] for p in peers}
    for peer in peers:
        labels = peer["metadata"].setdefault("labels", {})
        labels[DEMO_PEER_LABEL] = "true"
        await put(kube, peer)
    for old in (await kube.list_all(BGPPEERS, label_selector=DEMO_PEER_LABEL)).items:
        if old["metadata"]["name"] not in wanted:
            await kube.delete(BGPPEERS, old["metadata"]["name"])


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
