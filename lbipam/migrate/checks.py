"""What the translated configuration means: checks that add findings, no objects.

Pools: two translated pools that overlap are a note (the newer of the two serves nothing, in lbipam
as in MetalLB and Cilium). Services: a Service moves over with its IP when lbipam's controller
imports that IP into a pool that holds it and selects the Service, and when lbipam handles the
Service at all. So, for every Service of type LoadBalancer in the input (or the cluster):
- an ingress IP in no translated pool is not carried: lbipam keeps it but reports `NoPool`;
- a `loadBalancerClass` other than lbipam's is not carried: lbipam leaves the Service alone, and
  the class cannot be changed (recreate the Service with `lbipam.io/ips` naming its IP);
- MetalLB's or Cilium's annotations are a note: run the controller with `--compat`.
Called by the MetalLB and Cilium translators. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import netaddr

from lbipam.core.compat import compat_annotations
from lbipam.core.lbviews import LB_CLASS
from lbipam.migrate.report import Obj, Report, Source
from lbipam.migrate.shapes import as_dict, as_list

DISPLAY = {"metallb": "MetalLB", "cilium": "Cilium"}


def _blocks(pool: Obj) -> netaddr.IPSet:
    found = netaddr.IPSet()
    for block in pool["spec"]["blocks"]:
        if "cidr" in block:
            found.add(netaddr.IPNetwork(block["cidr"]))
        else:
            found.add(netaddr.IPRange(block["start"], block.get("stop", block["start"])))
    return found


def _pool_set(report: Report) -> netaddr.IPSet:
    """Every address of the translated pools."""
    found = netaddr.IPSet()
    for output in report.outputs:
        if output.kind == "LoadBalancerIPPool":
            found |= _blocks(output.obj)
    return found


def check_overlaps(report: Report) -> None:
    """A note for each pair of translated pools whose blocks overlap."""
    pools = [(o, _blocks(o.obj)) for o in report.outputs if o.kind == "LoadBalancerIPPool"]
    for index, (first, first_set) in enumerate(pools):
        for second, second_set in pools[index + 1 :]:
            common = first_set & second_set
            if common:
                report.note(
                    second.sources[0],
                    "spec",
                    f"overlaps {first.sources[0]}: of two overlapping pools the newer "
                    "(creationTimestamp, then name) serves nothing",
                )


def _check_ingress(where: Source, ingress: list[str], pools: netaddr.IPSet, report: Report) -> None:
    for index, ip in enumerate(ingress):
        try:
            inside = netaddr.IPAddress(ip) in pools
        except (netaddr.AddrFormatError, ValueError):
            inside = False
        if not inside:
            report.drop(
                where,
                f"status.loadBalancer.ingress[{index}].ip",
                f"{ip} lies in no translated pool: lbipam keeps it but reports NoPool",
            )


def _compat_note(annotated: list[str], source: str, report: Report) -> None:
    """One note for all the Services that carry the source's annotations."""
    if not annotated:
        return
    annotated.sort()
    shown = ", ".join(annotated[:3]) + (f" and {len(annotated) - 3} more" if len(annotated) > 3 else "")
    verb = "carries" if len(annotated) == 1 else "carry"
    report.note(
        Source("Services", "", ""),
        "metadata.annotations",
        f"{shown} {verb} {DISPLAY[source]}'s annotations: run lbipam controller --compat {source}",
    )


def check_services(services: Sequence[Mapping[str, Any]], source: str, report: Report) -> None:
    """`source`: "metallb" or "cilium", whose annotations the Services may carry."""
    pools = _pool_set(report)
    theirs = set(compat_annotations(source))
    annotated: list[str] = []
    for obj in services:
        spec = as_dict(obj.get("spec"))
        if spec.get("type") != "LoadBalancer":
            continue
        where = Source.of(obj)
        status = as_dict(as_dict(obj.get("status")).get("loadBalancer"))
        ingress = [str(as_dict(i)["ip"]) for i in as_list(status.get("ingress")) if as_dict(i).get("ip")]
        lb_class = spec.get("loadBalancerClass")
        if lb_class and lb_class != LB_CLASS:
            ips = ",".join(ingress) or "its IP"
            report.drop(
                where,
                "spec.loadBalancerClass",
                f"{lb_class} is not lbipam's class and cannot be changed: recreate the Service without "
                f"it (or with {LB_CLASS}) and with lbipam.io/ips: {ips} to keep its IP",
            )
            continue
        _check_ingress(where, ingress, pools, report)
        if theirs & set(as_dict(as_dict(obj.get("metadata")).get("annotations"))):
            annotated.append(f"{where.namespace}/{where.name}")
    _compat_note(annotated, source, report)
