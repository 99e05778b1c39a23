"""Cilium CiliumLoadBalancerIPPools (cilium.io/v2, v2alpha1) -> lbipam LoadBalancerIPPools.

- `blocks` (or the older `cidrs`): `cidr` (host bits cleared, as Go reads it) or `start` and an
  optional `stop`, as they are.
- `serviceSelector`: Cilium's special keys `io.kubernetes.service.name` and
  `io.kubernetes.service.namespace` become lbipam's synthetic labels `lbipam.io/service-name` and
  `lbipam.io/service-namespace`.
- `allowFirstLastIPs`: "Yes" -> true, "No" -> false; absent -> true, as Cilium 1.16 and later read
  it (1.15 reserved them; an IP a Service holds is kept either way).
- `disabled` as it is. Labels carry (CiliumBGPPeeringPolicy selects pools by them).
Called by `lbipam.migrate.cilium`. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lbipam.core.lbviews import LABEL_SERVICE_NAME, LABEL_SERVICE_NAMESPACE
from lbipam.migrate import labels
from lbipam.migrate.metallb_pools import API_VERSION
from lbipam.migrate.report import Obj, Report, Source
from lbipam.migrate.shapes import address, as_dict, as_list, labels_of, network, spec_of

#: Cilium's selector keys that match a Service's name and namespace rather than a label.
SERVICE_KEYS = {
    "io.kubernetes.service.name": LABEL_SERVICE_NAME,
    "io.kubernetes.service.namespace": LABEL_SERVICE_NAMESPACE,
}


def service_selector(selector: Mapping[str, Any]) -> Obj:
    """A Cilium Service selector as lbipam's (special keys renamed)."""
    return labels.rename(selector, SERVICE_KEYS)


def _block(item: Mapping[str, Any], where: str, source: Source, report: Report) -> Obj | None:
    try:
        if item.get("cidr"):
            cidr, cleared = network(item["cidr"])
            if cleared:
                report.note(source, where, f"{item['cidr']} has host bits set: carried as {cidr}")
            return {"cidr": cidr}
        start = address(item.get("start"))
        stop = address(item.get("stop") or start)
    except ValueError as err:
        report.drop(source, where, str(err))
        return None
    return {"start": start, "stop": stop} if stop != start else {"start": start}


def translate_pool(obj: Mapping[str, Any], report: Report) -> None:
    source = Source.of(obj)
    spec = spec_of(obj)
    field = "spec.blocks" if "blocks" in spec else "spec.cidrs"
    blocks = []
    for index, item in enumerate(as_list(spec.get("blocks", spec.get("cidrs")))):
        got = _block(as_dict(item), f"{field}[{index}]", source, report)
        if got is not None:
            blocks.append(got)
    if not blocks:
        report.drop(source, field, "no usable block: the pool is not carried")
        return
    out: Obj = {"blocks": blocks}
    first_last = spec.get("allowFirstLastIPs")
    out["allowFirstLastIPs"] = first_last != "No"
    if first_last is None and any("cidr" in b for b in blocks):
        report.note(source, "spec.allowFirstLastIPs", "absent: carried as true, as Cilium 1.16+ reads it")
    if spec.get("disabled") is True:
        out["disabled"] = True
    if spec.get("serviceSelector") is not None:
        selector = service_selector(as_dict(spec["serviceSelector"]))
        if selector:
            out["serviceSelector"] = selector
    meta = {"name": source.name, "labels": labels_of(obj)}
    report.emit(
        {"apiVersion": API_VERSION, "kind": "LoadBalancerIPPool", "metadata": meta, "spec": out}, source
    )
