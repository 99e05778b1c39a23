"""Nodes and PodCIDRPools (API dicts) -> the PodCIDR core's frozen views. The only place the
PodCIDR controller reads those objects' fields (the targets read what they write)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pydantic

from lbipam.api import PodCIDRPool, describe_errors
from lbipam.core.lbviews import CurrentCondition
from lbipam.core.pcviews import CONDITION_PODCIDRS, FamilySpec, NodeView, PCPoolView
from lbipam.core.selectors import EVERYTHING


def pcpool_view(obj: Mapping[str, Any]) -> PCPoolView:
    """The view of a pool; a spec that does not validate gives a view with `problems`."""
    meta = obj.get("metadata") or {}
    name = meta.get("name", "")
    created, generation = meta.get("creationTimestamp", ""), int(meta.get("generation") or 0)
    try:
        pool = PodCIDRPool.model_validate({**obj, "status": None})
    except pydantic.ValidationError as err:
        return PCPoolView(name, created, generation, problems=tuple(describe_errors(err)))
    spec = pool.spec
    families = {
        version: FamilySpec(tuple(family.blocks()), family.mask_size)
        for version in (4, 6)
        if (family := spec.family(version)) is not None
    }
    return PCPoolView(
        name,
        created,
        generation,
        families=families,
        node_selector=spec.node_selector.compiled() if spec.node_selector else EVERYTHING,
        disabled=spec.disabled,
        priority=spec.priority,
    )


def accepted_view(obj: Mapping[str, Any]) -> PCPoolView | None:
    """The pool as last accepted: its spec with the families its status says the pool serves
    from (`status.accepted`, written by us). None when the status has none or it does not
    validate; the spec is then the starting point."""
    accepted = (obj.get("status") or {}).get("accepted")
    if not isinstance(accepted, Mapping) or not (accepted.get("ipv4") or accepted.get("ipv6")):
        return None
    spec = {**(obj.get("spec") or {}), "ipv4": accepted.get("ipv4"), "ipv6": accepted.get("ipv6")}
    view = pcpool_view({**obj, "spec": spec})
    return view if view.valid else None


def accepted_status(view: PCPoolView | None) -> dict[str, Any] | None:
    """`status.accepted` for a pool serving from `view` (None: it serves from nothing)."""
    if view is None:
        return None
    return {
        f"ipv{version}": (
            {"cidrs": [str(b) for b in family.cidrs], "maskSize": family.mask}
            if (family := view.families.get(version)) is not None
            else None
        )
        for version in (4, 6)
    }


def node_view(node: Mapping[str, Any], cidrs: tuple[str, ...]) -> NodeView:
    meta = node.get("metadata") or {}
    condition = None
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == CONDITION_PODCIDRS:
            condition = CurrentCondition(
                str(cond.get("status")), str(cond.get("reason")), str(cond.get("message", ""))
            )
    return NodeView(
        name=meta.get("name", ""),
        uid=meta.get("uid", ""),
        created=meta.get("creationTimestamp", ""),
        labels=dict(meta.get("labels") or {}),
        cidrs=cidrs,
        condition=condition,
    )
