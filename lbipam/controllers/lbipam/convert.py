"""Services, Namespaces and LoadBalancerIPPools (API dicts) -> the core's frozen views.

The only place where the LB-IPAM controller reads Kubernetes object fields; the planner sees
nothing else (a pool's `status.accepted` is read by `poolrecord`). Annotations that cannot be read
become `problems` (reported as InvalidRequest). Namespaces are matched with the label
`kubernetes.io/metadata.name` added, as Kubernetes 1.21+ sets it, so that a namespaceSelector
on it works on every cluster (and on Namespaces not seen yet).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pydantic

from lbipam.api import LoadBalancerIPPool, describe_errors
from lbipam.controllers.lbipam.poolrecord import recorded
from lbipam.core.compat import with_compat
from lbipam.core.lbviews import (
    ANNOTATION_ALLOCATED_FROM,
    ANNOTATION_IPS,
    ANNOTATION_POOL,
    ANNOTATION_SHARING_CROSS_NS,
    ANNOTATION_SHARING_KEY,
    CONDITION_SATISFIED,
    LB_CLASS,
    SINGLE_STACK,
    CurrentCondition,
    PoolView,
    ServiceView,
)
from lbipam.core.selectors import EVERYTHING

KNOWN_ANNOTATIONS = {
    ANNOTATION_IPS,
    ANNOTATION_POOL,
    ANNOTATION_SHARING_KEY,
    ANNOTATION_SHARING_CROSS_NS,
    ANNOTATION_ALLOCATED_FROM,
}
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_SAFE = re.compile(r"[^\x00-\x1f\x7f]{1,253}")
_FAMILY = {"IPv4": 4, "IPv6": 6}
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
#: Stands in for the address part of an invalid spec, to read the rest of it on its own.
_PLACEHOLDER_ADDRESSES = {
    "blocks": [{"cidr": "192.0.2.0/32"}],
    "allowFirstLastIPs": False,
    "avoidBuggyIPs": False,
}


def handled(obj: Mapping[str, Any], default_class: bool) -> bool:
    """Type LoadBalancer, and no loadBalancerClass (unless --no-default-class) or lbipam's class."""
    spec = obj.get("spec") or {}
    if spec.get("type") != "LoadBalancer":
        return False
    lb_class = spec.get("loadBalancerClass")
    return lb_class == LB_CLASS or (lb_class is None and default_class)


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _annotations(meta: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The lbipam.io/ annotations read, and the problems found in them."""
    annotations = meta.get("annotations") or {}
    readable = ", ".join(sorted(KNOWN_ANNOTATIONS - {ANNOTATION_ALLOCATED_FROM}))
    problems = [
        f"unknown annotation {key} (lbipam reads {readable})"
        for key in sorted(annotations)
        if key.startswith("lbipam.io/") and key not in KNOWN_ANNOTATIONS
    ]
    out: dict[str, Any] = {}
    if ANNOTATION_POOL in annotations:
        pools = _split(annotations[ANNOTATION_POOL])
        bad = [p for p in pools if not _DNS_SUBDOMAIN.fullmatch(p) or len(p) > 253]
        if bad or not pools:
            problems.append(
                f"{ANNOTATION_POOL}: {annotations[ANNOTATION_POOL]!r} is not a list of pool names"
            )
        out["pools"] = pools
    if ANNOTATION_SHARING_KEY in annotations:
        key = annotations[ANNOTATION_SHARING_KEY]
        if not _SAFE.fullmatch(key):
            problems.append(f"{ANNOTATION_SHARING_KEY}: {key!r} must be 1 to 253 printable characters")
        out["sharing_key"] = key
    if ANNOTATION_SHARING_CROSS_NS in annotations:
        spaces = _split(annotations[ANNOTATION_SHARING_CROSS_NS])
        bad = [n for n in spaces if n != "*" and not _DNS_LABEL.fullmatch(n)]
        if bad or not spaces:
            problems.append(
                f"{ANNOTATION_SHARING_CROSS_NS}: {annotations[ANNOTATION_SHARING_CROSS_NS]!r} is not a list "
                "of namespaces or *"
            )
        out["sharing_namespaces"] = frozenset(spaces)
    return out, problems


def _families(spec: Mapping[str, Any]) -> tuple[tuple[int, ...], str]:
    policy = spec.get("ipFamilyPolicy") or SINGLE_STACK
    families = tuple(_FAMILY[f] for f in spec.get("ipFamilies") or ["IPv4"] if f in _FAMILY) or (4,)
    return (families[:1] if policy == SINGLE_STACK else families), policy


def _condition(status: Mapping[str, Any]) -> CurrentCondition | None:
    for cond in status.get("conditions") or []:
        if cond.get("type") == CONDITION_SATISFIED:
            return CurrentCondition(
                str(cond.get("status")), str(cond.get("reason")), str(cond.get("message", ""))
            )
    return None


def service_view(
    obj: Mapping[str, Any],
    namespace_labels: Mapping[str, str],
    default_class: bool,
    compat: frozenset[str] = frozenset(),
) -> ServiceView:
    """`compat`: the projects whose Service annotations count as lbipam's (`--compat`)."""
    meta = obj.get("metadata") or {}
    if compat:  # MetalLB's / Cilium's annotations as their lbipam equivalents (lbipam.core.compat)
        meta = {**meta, "annotations": with_compat(meta.get("annotations") or {}, compat)}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    read, problems = _annotations(meta)
    annotations = meta.get("annotations") or {}
    requested: tuple[str, ...] = ()
    source = ANNOTATION_IPS
    if ANNOTATION_IPS in annotations:
        requested = _split(annotations[ANNOTATION_IPS]) or (annotations[ANNOTATION_IPS],)
    elif spec.get("loadBalancerIP"):
        requested, source = (spec["loadBalancerIP"],), "spec.loadBalancerIP"
    families, policy = _families(spec)
    ingress = tuple(i["ip"] for i in (status.get("loadBalancer") or {}).get("ingress") or [] if i.get("ip"))
    return ServiceView(
        namespace=meta.get("namespace", ""),
        name=meta.get("name", ""),
        uid=meta.get("uid", ""),
        created=meta.get("creationTimestamp", ""),
        generation=int(meta.get("generation") or 0),
        handled=handled(obj, default_class),
        labels=dict(meta.get("labels") or {}),
        namespace_labels={**namespace_labels, NAMESPACE_NAME_LABEL: meta.get("namespace", "")},
        families=families,
        policy=policy,
        requested=requested,
        requested_from=source,
        pools=read.get("pools"),
        sharing_key=read.get("sharing_key"),
        sharing_namespaces=read.get("sharing_namespaces", frozenset()),
        ports=frozenset((p.get("protocol") or "TCP", int(p.get("port", 0))) for p in spec.get("ports") or []),
        traffic_policy=spec.get("externalTrafficPolicy") or "Cluster",
        selector=tuple(sorted((spec.get("selector") or {}).items())),
        ingress=ingress,
        condition=_condition(status),
        marked=ANNOTATION_ALLOCATED_FROM in annotations,
        allocated_from=_split(str(annotations.get(ANNOTATION_ALLOCATED_FROM) or "")),
        problems=tuple(problems),
    )


def pool_view(obj: Mapping[str, Any]) -> PoolView:
    """The view of a pool. A spec that does not validate gives a view with `problems` and no
    blocks, carrying the rest of the spec when that reads on its own, else `frozen`, and the
    address spec the status records (`recorded`: read only then; a pool may hold 100,000 blocks)."""
    meta = obj.get("metadata") or {}
    base: dict[str, Any] = {
        "name": meta.get("name", ""),
        "created": meta.get("creationTimestamp", ""),
        "generation": int(meta.get("generation") or 0),
    }
    try:
        pool = LoadBalancerIPPool.model_validate({**obj, "status": None})
    except pydantic.ValidationError as err:
        problems = tuple(describe_errors(err))
        base["recorded"] = recorded(obj)
        written = obj.get("spec")
        spec: Mapping[str, Any] = written if isinstance(written, Mapping) else {}
        try:
            rules = LoadBalancerIPPool.model_validate(
                {**obj, "status": None, "spec": {**spec, **_PLACEHOLDER_ADDRESSES}}
            )
        except pydantic.ValidationError:
            return PoolView(**base, problems=problems, frozen=True, disabled=True, auto_assign=False)
        return replace(_view(rules, base), blocks=(), problems=problems)
    return _view(pool, base)


def _view(pool: LoadBalancerIPPool, base: dict[str, Any]) -> PoolView:
    spec = pool.spec
    return PoolView(
        **base,
        blocks=tuple(b.block() for b in spec.blocks),
        service_selector=spec.service_selector.compiled() if spec.service_selector else EVERYTHING,
        namespace_selector=spec.namespace_selector.compiled() if spec.namespace_selector else EVERYTHING,
        disabled=spec.disabled,
        auto_assign=spec.auto_assign,
        allow_first_last=spec.allow_first_last_ips,
        avoid_buggy=spec.avoid_buggy_ips,
        priority=spec.priority,
    )
