"""The Service strategy: the real server's defaulting, validation and allocation for Services.

Behaves as a dual-stack cluster with IPv4 primary: `ipFamilyPolicy`/`ipFamilies` defaulting,
`clusterIP(s)` from the service CIDRs, node ports for NodePort and LoadBalancer Services, port
defaults, allocated values kept across updates that omit them, and the status rules lbipam relies
on: valid ingress IPs (with `ipMode` defaulted to VIP, as Kubernetes 1.30+ does) and valid
metav1.Conditions. Called through `objects.py`; `ServiceStrategy.rebuild` restores the allocations
from the stored Services at start-up.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from lbipam.apiserver.errors import (
    Cause,
    StatusError,
    forbidden,
    invalid,
    invalid_object,
)
from lbipam.apiserver.kinds import shapes
from lbipam.apiserver.kinds.ipalloc import Exhausted, IPRange, PortRange
from lbipam.apiserver.kinds.strategy import Strategy, WriteOptions
from lbipam.apiserver.kinds.svcvalidation import condition_causes, ingress_causes, spec_causes
from lbipam.apiserver.kinds.validation import dns1035_label, normalize_time, parse_ip
from lbipam.apiserver.storage.registry import ResourceType
from lbipam.apiserver.storage.store import Obj

EXTERNAL = ("NodePort", "LoadBalancer")
_PORT = {"name": str, "protocol": str, "port": int, "targetPort": shapes.INT_OR_STRING, "nodePort": int}
_INGRESS = {
    "ip": str,
    "hostname": str,
    "ipMode": str,
    "ports": [{"port": int, "protocol": str, "error": str}],
}


def _owner(obj: Obj) -> str:
    meta = obj["metadata"]
    return f"{meta.get('namespace', '')}/{meta['name']}"


class ServiceStrategy(Strategy):
    name_check = staticmethod(dns1035_label)
    generation = True
    return_deleted = True
    shape = {
        "spec": {
            "type": str,
            "ports": [_PORT],
            "selector": shapes.STR_MAP,
            "clusterIP": str,
            "clusterIPs": [str],
            "ipFamilies": [str],
            "ipFamilyPolicy": str,
            "externalTrafficPolicy": str,
            "internalTrafficPolicy": str,
            "allocateLoadBalancerNodePorts": bool,
            "loadBalancerClass": str,
            "loadBalancerIP": str,
            "loadBalancerSourceRanges": [str],
            "externalIPs": [str],
            "externalName": str,
            "sessionAffinity": str,
            "healthCheckNodePort": int,
            "publishNotReadyAddresses": bool,
        },
        "status": {"loadBalancer": {"ingress": [_INGRESS]}, "conditions": [shapes.CONDITION]},
    }

    def __init__(self, service_cidrs: Iterable[str]) -> None:
        self._cidrs = list(service_cidrs)
        self.ranges = {r.family: r for r in (IPRange(c) for c in self._cidrs)}
        self.primary = next(iter(self.ranges)) if self.ranges else "IPv4"
        self.ports = PortRange()

    def reset(self, services: Iterable[Obj]) -> None:
        """Forget every allocation and claim what `services` hold (after a failed commit: what
        writes that were never stored allocated or released is undone)."""
        self.ranges = {r.family: r for r in (IPRange(c) for c in self._cidrs)}
        self.ports = PortRange()
        self.rebuild(services)

    # -- defaulting -------------------------------------------------------------------------

    def prepare(self, rtype: ResourceType, obj: Obj, old: Obj | None, opts: WriteOptions) -> None:
        spec = obj.setdefault("spec", {})
        obj.setdefault("status", {}).setdefault("loadBalancer", {})  # as the typed struct serializes
        if old is not None:
            self._keep_allocated(spec, old.get("spec") or {})
            _drop_type_dependent(spec, old.get("spec") or {})
            if old["spec"].get("type") == "LoadBalancer" and spec.get("type") != "LoadBalancer":
                obj.setdefault("status", {})["loadBalancer"] = {}
        kind = spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec["sessionAffinity"] == "ClientIP":
            spec.setdefault("sessionAffinityConfig", {"clientIP": {"timeoutSeconds": 10800}})
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            if port.get("targetPort") in (None, 0, "") and isinstance(port.get("port"), int):
                port["targetPort"] = port["port"]
        if kind == "ExternalName":
            return
        spec.setdefault("internalTrafficPolicy", "Cluster")
        if kind in EXTERNAL:
            spec.setdefault("externalTrafficPolicy", "Cluster")
        if kind == "LoadBalancer":
            spec.setdefault("allocateLoadBalancerNodePorts", True)
        self._default_families(spec)

    @staticmethod
    def _keep_allocated(spec: dict[str, Any], old_spec: dict[str, Any]) -> None:
        """An update that omits allocated values keeps them (the real patchAllocatedValues)."""
        if spec.get("type", "ClusterIP") != "ExternalName" and old_spec.get("type") != "ExternalName":
            if not spec.get("clusterIP") and old_spec.get("clusterIP"):
                spec["clusterIP"] = old_spec["clusterIP"]
            if not spec.get("clusterIPs") and old_spec.get("clusterIPs"):
                spec["clusterIPs"] = list(old_spec["clusterIPs"])
        if spec.get("type") in EXTERNAL:
            old_ports = {(p.get("port"), p.get("protocol", "TCP")): p for p in old_spec.get("ports") or []}
            for port in spec.get("ports") or []:
                before = old_ports.get((port.get("port"), port.get("protocol", "TCP")))
                if before and before.get("nodePort") and not port.get("nodePort"):
                    port["nodePort"] = before["nodePort"]
            if not spec.get("healthCheckNodePort") and old_spec.get("healthCheckNodePort"):
                spec["healthCheckNodePort"] = old_spec["healthCheckNodePort"]

    def _default_families(self, spec: dict[str, Any]) -> None:
        if spec.get("clusterIP") and not spec.get("clusterIPs"):
            spec["clusterIPs"] = [spec["clusterIP"]]
        headless = spec.get("clusterIP") == "None"
        families = list(spec.get("ipFamilies") or [])
        if not families:
            for text in spec.get("clusterIPs") or []:
                ip = parse_ip(text)
                if ip is not None:
                    families.append(f"IPv{ip.version}")
        if "ipFamilyPolicy" not in spec:
            if headless and not spec.get("selector"):
                spec["ipFamilyPolicy"] = "RequireDualStack"
            elif len(families) > 1 or len(spec.get("clusterIPs") or []) > 1:
                return  # validation reports the missing policy
            else:
                spec["ipFamilyPolicy"] = "SingleStack"
        if not families:
            families = [self.primary]
        if spec["ipFamilyPolicy"] in ("PreferDualStack", "RequireDualStack"):
            families += [f for f in self.ranges if f not in families]
        spec["ipFamilies"] = families

    def prepare_status(self, rtype: ResourceType, obj: Obj, old: Obj, opts: WriteOptions) -> None:
        status = obj.setdefault("status", {})
        status.setdefault("loadBalancer", {})
        for ingress in (status.get("loadBalancer") or {}).get("ingress") or []:
            if ingress.get("ip") and "ipMode" not in ingress:
                ingress["ipMode"] = "VIP"
        for condition in status.get("conditions") or []:
            normalize_time(
                condition, "lastTransitionTime", 'Service in version "v1" cannot be handled as a Service'
            )

    # -- validation -------------------------------------------------------------------------

    def validate(self, rtype: ResourceType, obj: Obj, old: Obj | None) -> list[Cause]:
        causes = super().validate(rtype, obj, old)
        causes += spec_causes(obj.get("spec") or {}, self.ranges)
        if old is not None:
            causes += self._update_causes(obj["spec"], old.get("spec") or {})
        return causes

    @staticmethod
    def _update_causes(spec: dict[str, Any], old_spec: dict[str, Any]) -> list[Cause]:
        if "ExternalName" in (spec.get("type"), old_spec.get("type")):
            return []
        causes = []
        old_ips, new_ips = old_spec.get("clusterIPs") or [], spec.get("clusterIPs") or []
        for index, ip in enumerate(old_ips[:1] + old_ips[1 : len(new_ips)]):
            if index < len(new_ips) and new_ips[index] != ip:
                causes.append(invalid(f"spec.clusterIPs[{index}]", new_ips[index], "may not change once set"))
        old_families, families = old_spec.get("ipFamilies") or [], spec.get("ipFamilies") or []
        if old_families and families and old_families[0] != families[0]:
            causes.append(invalid("spec.ipFamilies[0]", families[0], "may not change once set"))
        both_lb = spec.get("type") == old_spec.get("type") == "LoadBalancer"
        if both_lb and spec.get("loadBalancerClass") != old_spec.get("loadBalancerClass"):
            # As the real server: a LoadBalancer's class is fixed; change the type to drop it.
            causes.append(
                invalid("spec.loadBalancerClass", spec.get("loadBalancerClass"), "may not change once set")
            )
        return causes

    def validate_status(self, rtype: ResourceType, obj: Obj, old: Obj) -> list[Cause]:
        status = obj.get("status") or {}
        ingress = (status.get("loadBalancer") or {}).get("ingress") or []
        causes = ingress_causes(ingress, "status.loadBalancer.ingress")
        if ingress and (obj.get("spec") or {}).get("type") != "LoadBalancer":
            causes.append(
                forbidden(
                    "status.loadBalancer.ingress", "may only be used when `spec.type` is 'LoadBalancer'"
                )
            )
        return causes + condition_causes(status.get("conditions") or [], "status.conditions")

    # -- allocation -------------------------------------------------------------------------

    def allocate(self, obj: Obj, old: Obj | None) -> None:
        """Cluster IPs and node ports for `obj`; what `old` held and `obj` no longer uses is freed."""
        owner, spec = _owner(obj), obj["spec"]
        taken: list[tuple[str, Any]] = []
        try:
            self._allocate_ips(owner, spec, taken)
            self._allocate_ports(owner, spec, taken)
        except StatusError:
            for what, value in taken:
                self._free(what, value, owner)
            raise
        except _Invalid as exc:
            for what, value in taken:
                self._free(what, value, owner)
            meta = obj["metadata"]
            raise invalid_object("Service", meta["name"], "", "Service", [exc.cause]) from None
        if old is not None:
            kept = set(self._held(spec))
            for what, value in self._held(old.get("spec") or {}):
                if (what, value) not in kept:
                    self._free(what, value, owner)

    def _allocate_ips(self, owner: str, spec: dict[str, Any], taken: list[tuple[str, Any]]) -> None:
        if spec.get("type") == "ExternalName" or spec.get("clusterIP") == "None":
            if spec.get("type") == "ExternalName":
                spec.pop("clusterIP", None)
                spec.pop("clusterIPs", None)
            return
        ips = list(spec.get("clusterIPs") or [])
        for index, family in enumerate(spec.get("ipFamilies") or []):
            pool = self.ranges.get(family)
            if pool is None:
                continue
            if index < len(ips) and ips[index]:
                ip = parse_ip(ips[index])
                problem = pool.claim(ip, owner) if ip is not None else "not an IP"
                if problem is not None:
                    raise _Invalid(
                        invalid("spec.clusterIPs", ips, f"failed to allocate IP {ips[index]}: {problem}")
                    )
            else:
                try:
                    ips.append(pool.allocate(owner))
                except Exhausted as exc:
                    raise StatusError(
                        500, f"Internal error occurred: failed to allocate a serviceIP: {exc}"
                    ) from None
            taken.append(("ip", ips[index]))
        if ips:
            spec["clusterIPs"] = ips
            spec["clusterIP"] = ips[0]

    def _allocate_ports(self, owner: str, spec: dict[str, Any], taken: list[tuple[str, Any]]) -> None:
        kind = spec.get("type")
        wants = kind == "NodePort" or (
            kind == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts", True)
        )
        for index, port in enumerate(spec.get("ports") or []):
            if kind not in EXTERNAL:
                port.pop("nodePort", None)
            elif port.get("nodePort"):
                problem = self.ports.claim(port["nodePort"], owner)
                if problem is not None:
                    raise _Invalid(invalid(f"spec.ports[{index}].nodePort", port["nodePort"], problem))
                taken.append(("port", port["nodePort"]))
            elif wants:
                port["nodePort"] = self._new_port(owner)
                taken.append(("port", port["nodePort"]))
        if kind == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local":
            if not spec.get("healthCheckNodePort"):
                spec["healthCheckNodePort"] = self._new_port(owner)
            elif self.ports.claim(spec["healthCheckNodePort"], owner) is not None:
                raise _Invalid(
                    invalid(
                        "spec.healthCheckNodePort",
                        spec["healthCheckNodePort"],
                        "provided port is already allocated",
                    )
                )
            taken.append(("port", spec["healthCheckNodePort"]))
        else:
            spec.pop("healthCheckNodePort", None)

    def _new_port(self, owner: str) -> int:
        try:
            return self.ports.allocate(owner)
        except Exhausted as exc:
            raise StatusError(500, f"Internal error occurred: failed to allocate a nodePort: {exc}") from None

    @staticmethod
    def _held(spec: dict[str, Any]) -> list[tuple[str, Any]]:
        held: list[tuple[str, Any]] = [("ip", ip) for ip in spec.get("clusterIPs") or [] if ip != "None"]
        held += [("port", p["nodePort"]) for p in spec.get("ports") or [] if p.get("nodePort")]
        if spec.get("healthCheckNodePort"):
            held.append(("port", spec["healthCheckNodePort"]))
        return held

    def _free(self, what: str, value: Any, owner: str) -> None:
        if what == "port":
            self.ports.release(value, owner)
            return
        ip = parse_ip(value)
        for pool in self.ranges.values():
            if ip is not None and pool.contains(ip):
                pool.release(value, owner)

    def release(self, obj: Obj) -> None:
        for what, value in self._held(obj.get("spec") or {}):
            self._free(what, value, _owner(obj))

    def rebuild(self, services: Iterable[Obj]) -> None:
        """Claim what the stored Services hold (at start-up)."""
        for obj in services:
            owner = _owner(obj)
            for what, value in self._held(copy.deepcopy(obj.get("spec") or {})):
                if what == "port":
                    self.ports.claim(value, owner)
                else:
                    ip = parse_ip(value)
                    for pool in self.ranges.values():
                        if ip is not None and pool.contains(ip):
                            pool.claim(ip, owner)


class _Invalid(Exception):
    def __init__(self, cause: Cause) -> None:
        super().__init__(cause.message)
        self.cause = cause


def _drop_type_dependent(spec: dict[str, Any], old: dict[str, Any]) -> None:
    """As the real server on an update that changes the type: fields the old type needed and the
    new one does not are dropped when the request left them as they were (so that LoadBalancer ->
    ClusterIP needs no hand-clearing of nodePorts, the class or the traffic policy)."""
    was, now = old.get("type", "ClusterIP"), spec.get("type", "ClusterIP")
    if was == now:
        return
    if was in EXTERNAL and now not in EXTERNAL:
        old_ports = [p.get("nodePort") for p in old.get("ports") or []]
        if [p.get("nodePort") for p in spec.get("ports") or []] == old_ports:
            for port in spec.get("ports") or []:
                port.pop("nodePort", None)
        if spec.get("externalTrafficPolicy") == old.get("externalTrafficPolicy"):
            spec.pop("externalTrafficPolicy", None)
    if was == "LoadBalancer":
        for field in ("healthCheckNodePort", "allocateLoadBalancerNodePorts", "loadBalancerClass"):
            if field in spec and spec.get(field) == old.get(field):
                del spec[field]
