"""MetalLB IPAddressPools (metallb.io/v1beta1) -> lbipam LoadBalancerIPPools.

- `addresses`: a CIDR becomes a `cidr` block (host bits cleared, as MetalLB's net.ParseCIDR reads
  it); "a-b" becomes a `start`/`stop` block.
- `allowFirstLastIPs: true`: MetalLB hands out every address of a CIDR, network and broadcast
  addresses included, so Services may hold them; `avoidBuggyIPs` and `autoAssign` carry as they are.
- `serviceAllocation`: `namespaces` become `lbipam.io/service-namespace In (...)` in the
  serviceSelector; `namespaceSelectors` (ORed) the namespaceSelector; `serviceSelectors` (ORed)
  the serviceSelector. A list one selector cannot express is dropped, with a finding: the pool
  then serves more Services, never fewer (a Service must keep the IP it holds).
- `priority`: MetalLB tries the pools with a serviceAllocation first, those with a priority by
  priority (lower first), then those without; then the pools without a serviceAllocation. lbipam
  tries pools by priority: a MetalLB priority p carries as p, no priority in a serviceAllocation
  becomes P+1 and no serviceAllocation P+2 (P: the highest priority of the input), when any pool
  has a serviceAllocation.
- Every pool is labelled `lbipam.io/pool-name: <name>` so that advertisements that named their
  pools (`ipAddressPools`) can select them.

Called by `lbipam.migrate.metallb`. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lbipam.core.lbviews import LABEL_SERVICE_NAMESPACE
from lbipam.migrate import labels
from lbipam.migrate.report import Obj, Report, Source
from lbipam.migrate.shapes import address, as_dict, as_list, labels_of, name_of, network, spec_of

API_VERSION = "lbipam.io/v1alpha1"
#: The label every migrated pool carries, so advertisements can select pools by name.
POOL_NAME_LABEL = "lbipam.io/pool-name"


def block(text: Any) -> tuple[Obj, bool]:
    """An lbipam block of a MetalLB address, and whether host bits were cleared."""
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a CIDR or a range a-b")
    if "-" in text:
        first, _, last = text.partition("-")
        start, stop = address(first), address(last)
        if (":" in start) != (":" in stop):
            raise ValueError(f"{text!r} mixes IPv4 and IPv6")
        return {"start": start, "stop": stop}, False
    cidr, cleared = network(text)
    return {"cidr": cidr}, cleared


def _blocks(obj: Mapping[str, Any], source: Source, report: Report) -> list[Obj]:
    out = []
    for index, text in enumerate(as_list(spec_of(obj).get("addresses"))):
        where = f"spec.addresses[{index}]"
        try:
            got, cleared = block(text)
        except ValueError as err:
            report.drop(source, where, f"{text!r}: {err}; MetalLB rejects it too")
            continue
        if cleared:
            report.note(
                source, where, f"{text} has host bits set: carried as {got['cidr']}, as MetalLB reads it"
            )
        out.append(got)
    return out


def _selectors(allocation: Mapping[str, Any], source: Source, report: Report) -> Obj:
    """serviceSelector and namespaceSelector of a serviceAllocation."""
    spec: Obj = {}
    names = sorted({str(n) for n in as_list(allocation.get("namespaces"))})
    ns_selectors = [as_dict(s) for s in as_list(allocation.get("namespaceSelectors"))]
    svc_selectors = [as_dict(s) for s in as_list(allocation.get("serviceSelectors"))]
    service = labels.union(svc_selectors) if svc_selectors else {}
    if service is None:
        report.drop(
            source,
            "spec.serviceAllocation.serviceSelectors",
            f"{len(svc_selectors)} selectors ORed cannot be one LabelSelector: the pool serves "
            "Services of any labels (narrow spec.serviceSelector by hand)",
        )
        service = {}
    if names and ns_selectors:
        report.drop(
            source,
            "spec.serviceAllocation.namespaceSelectors",
            "namespaces and namespaceSelectors ORed cannot be one selector: the pool serves every "
            "namespace (narrow it by hand)",
        )
    elif names:
        service = labels.conjoin(service, (LABEL_SERVICE_NAMESPACE, "In", tuple(names)))
    elif ns_selectors:
        namespace = labels.union(ns_selectors)
        if namespace is None:
            report.drop(
                source,
                "spec.serviceAllocation.namespaceSelectors",
                f"{len(ns_selectors)} selectors ORed cannot be one LabelSelector: the pool serves "
                "every namespace (narrow spec.namespaceSelector by hand)",
            )
        elif namespace:
            spec["namespaceSelector"] = namespace
    if service:
        spec["serviceSelector"] = service
    return spec


def priorities(pools: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """The lbipam priority of each MetalLB pool (by name), in MetalLB's order."""
    allocations = {name_of(p): spec_of(p).get("serviceAllocation") for p in pools}
    if all(a is None for a in allocations.values()):
        return dict.fromkeys(allocations, 0)
    given = [as_dict(a).get("priority") for a in allocations.values()]
    top = max([0, *(p for p in given if isinstance(p, int))])
    out = {}
    for name, allocation in allocations.items():
        priority = as_dict(allocation).get("priority")
        if allocation is None:
            out[name] = top + 2
        elif isinstance(priority, int) and priority > 0:
            out[name] = priority
        else:
            out[name] = top + 1
    return out


def translate_pool(obj: Mapping[str, Any], priority: int, report: Report) -> None:
    source = Source.of(obj)
    spec = spec_of(obj)
    blocks = _blocks(obj, source, report)
    if not blocks:
        report.drop(source, "spec.addresses", "no usable address: the pool is not carried")
        return
    out: Obj = {"blocks": blocks}
    auto = spec.get("autoAssign", True)
    if auto is False:
        out["autoAssign"] = False
    if spec.get("avoidBuggyIPs") is True:
        out["avoidBuggyIPs"] = True
    out["allowFirstLastIPs"] = True
    if priority:
        out["priority"] = priority
    allocation = spec.get("serviceAllocation")
    if allocation is not None:
        out.update(_selectors(as_dict(allocation), source, report))
    pool_labels = labels_of(obj)
    if len(source.name) <= 63:  # a label value's limit; advertisements cannot name a longer pool
        pool_labels[POOL_NAME_LABEL] = source.name
    meta = {"name": source.name, "labels": pool_labels}
    report.emit(
        {"apiVersion": API_VERSION, "kind": "LoadBalancerIPPool", "metadata": meta, "spec": out}, source
    )


def translate_pools(pools: Sequence[Mapping[str, Any]], report: Report) -> None:
    order = priorities(pools)
    for obj in pools:
        translate_pool(obj, order[name_of(obj)], report)
