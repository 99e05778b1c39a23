"""CustomResourceDefinitions generated from the pydantic models (`lbipam crds`).

Owns the translation of each model's JSON schema into a Kubernetes *structural*
openAPIV3Schema (every $ref inlined, Optional collapsed to the plain type, no titles, no
`additionalProperties: false`), the CRD names, and the printer columns. The output is
deterministic, so `crds/*.yaml` can be committed and checked for drift by a test. Called by the
CLI and the tests; touches the filesystem only in `write_crds`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from lbipam.api.bgpadvertisement import BGPAdvertisement
from lbipam.api.bgpnodestate import BGPNodeState
from lbipam.api.bgppeer import BGPPeer
from lbipam.api.common import GROUP, VERSION
from lbipam.api.lbpool import LoadBalancerIPPool
from lbipam.api.podcidrpool import PodCIDRPool

Schema = dict[str, Any]


def column(name: str, kind: str, path: str, priority: int = 0, description: str = "") -> Schema:
    """One additionalPrinterColumns entry."""
    out: Schema = {"name": name, "type": kind, "jsonPath": path}
    if priority:
        out["priority"] = priority
    if description:
        out["description"] = description
    return out


AGE = column("Age", "date", ".metadata.creationTimestamp")
#: The Ready condition's status ("True"/"False"), as cert-manager's and Cluster API's kinds show it.
READY = column("Ready", "string", '.status.conditions[?(@.type=="Ready")].status')


def _usage(family: str, priority: int = 0, *, total: bool = False) -> list[Schema]:
    key = family.lower()
    totals = [column(f"{family} Total", "string", f".status.{key}.total", priority)] if total else []
    return [
        *totals,
        column(f"{family} Used", "string", f".status.{key}.used", priority),
        column(f"{family} Available", "string", f".status.{key}.available", priority),
    ]


@dataclass(frozen=True)
class Kind:
    """What a CRD needs beyond the model: names and printer columns."""

    model: type[BaseModel]
    plural: str
    short_names: tuple[str, ...]
    columns: tuple[Schema, ...]

    @property
    def name(self) -> str:
        return self.model.__name__


KINDS = (
    Kind(
        LoadBalancerIPPool,
        "loadbalancerippools",
        ("lbpool",),
        (
            READY,
            column("Disabled", "boolean", ".spec.disabled"),
            column("Blocks", "string", ".status.blocks", description="The blocks the pool serves from."),
            *_usage("IPv4", total=True),
            *_usage("IPv6", total=True),
            AGE,
        ),
    ),
    Kind(
        PodCIDRPool,
        "podcidrpools",
        ("pcpool",),
        (
            READY,
            column("Disabled", "boolean", ".spec.disabled"),
            column("IPv4 CIDRs", "string", ".spec.ipv4.cidrs"),
            column("IPv4 Mask", "integer", ".spec.ipv4.maskSize"),
            *_usage("IPv4"),
            column("IPv6 CIDRs", "string", ".spec.ipv6.cidrs"),
            column("IPv6 Mask", "integer", ".spec.ipv6.maskSize"),
            *_usage("IPv6"),
            AGE,
        ),
    ),
    Kind(
        BGPPeer,
        "bgppeers",
        (),
        (
            READY,
            column("Address", "string", ".spec.peerAddress"),
            column("PeerASN", "integer", ".spec.peerASN"),
            column("LocalASN", "integer", ".spec.localASN"),
            column("Port", "integer", ".spec.peerPort", priority=1),
            column("Families", "string", ".spec.families", priority=1),
            AGE,
        ),
    ),
    Kind(
        BGPAdvertisement,
        "bgpadvertisements",
        (),
        (
            READY,
            column("Peers", "string", ".spec.peers", description="Empty: every peer."),
            column("Communities", "string", ".spec.communities"),
            column("LocalPref", "integer", ".spec.localPreference"),
            column("PodCIDRs", "boolean", ".spec.podCIDRs"),
            AGE,
        ),
    ),
    Kind(
        BGPNodeState,
        "bgpnodestates",
        (),
        (
            column("Peers", "string", ".status.peers[*].name"),
            column("States", "string", ".status.peers[*].state"),
            column("Advertised", "string", ".status.peers[*].advertised", priority=1),
            AGE,
        ),
    ),
)

_TOP_LEVEL: dict[str, Schema] = {
    "apiVersion": {
        "type": "string",
        "description": "APIVersion defines the versioned schema of this representation of an object.",
    },
    "kind": {"type": "string", "description": "Kind is the REST resource this object represents."},
    "metadata": {"type": "object"},
}


def _map_children(node: Schema, fn: Callable[[Schema], Schema]) -> Schema:
    """`node` with `fn` applied to each subschema (never to data such as default or enum)."""
    out = dict(node)
    if "properties" in out:
        out["properties"] = {name: fn(sub) for name, sub in out["properties"].items()}
    for key in ("items", "additionalProperties", "not"):
        if isinstance(out.get(key), dict):
            out[key] = fn(out[key])
    for key in ("anyOf", "oneOf", "allOf"):
        if key in out:
            out[key] = [fn(sub) for sub in out[key]]
    return out


def _resolve(node: Schema, defs: dict[str, Schema]) -> Schema:
    """Replace a $ref by its target; keywords next to the $ref (description, default) win."""
    if "$ref" not in node:
        return node
    target = defs[node["$ref"].rsplit("/", 1)[-1]]
    return {**target, **{k: v for k, v in node.items() if k != "$ref"}}


def structural(node: Schema, defs: dict[str, Schema]) -> Schema:
    """A pydantic JSON schema node made structural, recursively."""
    node = _resolve(node, defs)
    variants = node.get("anyOf", [])
    if {"type": "null"} in variants:
        # Optional[X]: the plain X. The API server prunes nulls of non-nullable fields.
        rest = [v for v in variants if v != {"type": "null"}]
        if len(rest) == 1:
            others = {k: v for k, v in node.items() if k != "anyOf"}
            node = {**_resolve(rest[0], defs), **others}
    out = {
        key: value
        for key, value in node.items()
        if key not in ("title", "$defs")
        and not (key == "additionalProperties" and value is False)
        and not (key == "default" and value is None)
    }
    if "const" in out:
        out["enum"] = [out.pop("const")]
    return _map_children(out, lambda sub: structural(sub, defs))


def openapi_schema(model: type[BaseModel]) -> Schema:
    """The structural openAPIV3Schema of a top-level kind model."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    schema = structural(raw, raw.get("$defs", {}))
    schema["properties"] = {**schema["properties"], **_TOP_LEVEL}
    schema["required"] = [r for r in schema.get("required", []) if r not in _TOP_LEVEL]
    if not schema["required"]:
        del schema["required"]
    return schema


def crd(kind: Kind) -> Schema:
    """The apiextensions.k8s.io/v1 CustomResourceDefinition of one kind."""
    names: Schema = {
        "kind": kind.name,
        "listKind": f"{kind.name}List",
        "plural": kind.plural,
        "singular": kind.name.lower(),
        "categories": ["lbipam"],
    }
    if kind.short_names:
        names["shortNames"] = list(kind.short_names)
    version = {
        "name": VERSION,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": openapi_schema(kind.model)},
        "subresources": {"status": {}},
        "additionalPrinterColumns": [dict(c) for c in kind.columns],
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{kind.plural}.{GROUP}"},
        "spec": {"group": GROUP, "names": names, "scope": "Cluster", "versions": [version]},
    }


def crd_dicts() -> list[Schema]:
    """Every lbipam CRD, ordered by name."""
    return sorted((crd(k) for k in KINDS), key=lambda c: str(c["metadata"]["name"]))


def crd_filename(definition: Schema) -> str:
    """`<group>_<plural>.yaml`, as controller-gen names them."""
    return f"{definition['spec']['group']}_{definition['spec']['names']['plural']}.yaml"


class _Dumper(yaml.SafeDumper):
    """A SafeDumper that writes shared subtrees out in full (no &anchors and *aliases)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render_crd_yaml(definition: Schema) -> str:
    """One CRD as a YAML document (sorted keys: stable output)."""
    return yaml.dump(definition, Dumper=_Dumper, sort_keys=True, default_flow_style=False, width=100)


def render_crds_yaml() -> str:
    """Every CRD as multi-document YAML, each document starting with `---`."""
    return "".join(f"---\n{render_crd_yaml(d)}" for d in crd_dicts())


def write_crds(directory: str | Path) -> list[Path]:
    """Write one `<group>_<plural>.yaml` per CRD into `directory`; returns the paths."""
    paths = []
    for definition in crd_dicts():
        path = Path(directory) / crd_filename(definition)
        path.write_text(render_crd_yaml(definition), encoding="utf-8")
        paths.append(path)
    return paths
