"""Where a Node's pod CIDRs go (`lbipam controller --podcidr-target`), and where they are read
back from at start-up. One class per target; each says what the Node carries now and which merge
patch makes it carry a plan (None when nothing is to write). CIDRs are only ever written where
none are yet: Kubernetes makes `spec.podCIDRs` immutable, and the other targets keep that rule.

- `node`: Node spec.podCIDR / spec.podCIDRs, as kube-controller-manager --allocate-node-cidrs.
- `node-annotations`: io.cilium.network.ipv4-pod-cidr / ipv6-pod-cidr on the Node.
- `ciliumnode`: CiliumNode spec.ipam.podCIDRs; failures in status.ipam.operator-status.error.
- `ciliumnode-pool`: as `ciliumnode` (the node's CIDR is recorded in spec.ipam.podCIDRs), plus
  individual IPs of it published in spec.ipam.pool, kept stocked by watermarks (`ippool`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import netaddr

from lbipam.core.ippool import pool_changes
from lbipam.core.pcplanner import NodePlan
from lbipam.k8s.resources import CILIUMNODES, NODES, Resource

Obj = Mapping[str, Any]
ANNOTATIONS = {4: "io.cilium.network.ipv4-pod-cidr", 6: "io.cilium.network.ipv6-pod-cidr"}


@dataclass(frozen=True)
class Write:
    resource: Resource
    obj: Obj
    fragment: dict[str, Any]


class Target(ABC):
    name: str = ""
    uses_ciliumnodes = False

    @abstractmethod
    def current(self, node: Obj, cn: Obj | None) -> tuple[str, ...]:
        """The CIDRs the target shows for this node now."""

    @abstractmethod
    def write(self, plan: NodePlan, node: Obj, cn: Obj | None) -> Write | None:
        """The patch that makes the target carry `plan`, or None."""

    def report(self, plan: NodePlan, cn: Obj | None) -> Write | None:
        """A status patch saying why the node has no CIDR (ciliumnode targets), or None."""
        return None


class NodeSpec(Target):
    name = "node"

    def current(self, node: Obj, cn: Obj | None) -> tuple[str, ...]:
        spec = node.get("spec") or {}
        cidrs = spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else [])
        return tuple(cidrs)

    def write(self, plan: NodePlan, node: Obj, cn: Obj | None) -> Write | None:
        if not plan.cidrs or self.current(node, cn):
            return None
        return Write(NODES, node, {"spec": {"podCIDR": plan.cidrs[0], "podCIDRs": list(plan.cidrs)}})


class NodeAnnotations(Target):
    name = "node-annotations"

    def current(self, node: Obj, cn: Obj | None) -> tuple[str, ...]:
        notes = (node.get("metadata") or {}).get("annotations") or {}
        return tuple(notes[key] for key in ANNOTATIONS.values() if notes.get(key))

    def write(self, plan: NodePlan, node: Obj, cn: Obj | None) -> Write | None:
        notes = (node.get("metadata") or {}).get("annotations") or {}
        wanted = {ANNOTATIONS[netaddr.IPNetwork(c).version]: c for c in plan.cidrs}
        missing = {k: v for k, v in wanted.items() if not notes.get(k)}
        return Write(NODES, node, {"metadata": {"annotations": missing}}) if missing else None


class CiliumNodeSpec(Target):
    name = "ciliumnode"
    uses_ciliumnodes = True

    def current(self, node: Obj, cn: Obj | None) -> tuple[str, ...]:
        return tuple(_ipam(cn, "spec").get("podCIDRs") or [])

    def write(self, plan: NodePlan, node: Obj, cn: Obj | None) -> Write | None:
        if cn is None or not plan.cidrs or self.current(node, cn):
            return None
        return Write(CILIUMNODES, cn, {"spec": {"ipam": {"podCIDRs": list(plan.cidrs)}}})

    def report(self, plan: NodePlan, cn: Obj | None) -> Write | None:
        if cn is None:
            return None
        return Write(CILIUMNODES, cn, {"ipam": {"operator-status": {"error": plan.error}}})


class CiliumNodePool(CiliumNodeSpec):
    name = "ciliumnode-pool"

    def __init__(self, pre_allocate: int = 8, max_above_watermark: int = 8) -> None:
        self.pre_allocate = pre_allocate
        self.max_above = max_above_watermark

    def write(self, plan: NodePlan, node: Obj, cn: Obj | None) -> Write | None:
        if cn is None or not plan.cidrs:
            return None
        spec = _ipam(cn, "spec")
        ipam: dict[str, Any] = {}
        if not spec.get("podCIDRs"):
            ipam["podCIDRs"] = list(plan.cidrs)
        # CiliumNode's own watermarks win over the flags. As in Cilium, pre-allocate 0 means
        # unset (a pool kept at zero free IPs serves no pod); max-above-watermark 0 is a value.
        pre = int(spec.get("pre-allocate") or self.pre_allocate)
        above = spec.get("max-above-watermark")
        above = self.max_above if above is None else int(above)
        pool = spec.get("pool") or {}
        used = _ipam(cn, "status").get("used") or {}
        changes: dict[str, Any] = {}
        for cidr in plan.cidrs:
            add, remove = pool_changes(cidr, pool, used, pre, above)
            changes.update({ip: {} for ip in add})
            changes.update(dict.fromkeys(remove))  # None: a merge patch deletes the key
        if changes:
            ipam["pool"] = changes
        return Write(CILIUMNODES, cn, {"spec": {"ipam": ipam}}) if ipam else None


def _ipam(cn: Obj | None, part: str) -> Mapping[str, Any]:
    return ((cn or {}).get(part) or {}).get("ipam") or {}


def make_target(name: str, pre_allocate: int = 8, max_above_watermark: int = 8) -> Target | None:
    """The target called `name`; None for "none" (PodCIDR management off)."""
    if name == "none":
        return None
    targets: dict[str, Target] = {
        "node": NodeSpec(),
        "node-annotations": NodeAnnotations(),
        "ciliumnode": CiliumNodeSpec(),
        "ciliumnode-pool": CiliumNodePool(pre_allocate, max_above_watermark),
    }
    if name not in targets:
        raise ValueError(f"unknown --podcidr-target {name!r}: one of {', '.join([*targets, 'none'])}")
    return targets[name]
