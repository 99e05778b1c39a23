"""Validation of Service specs, load-balancer status and metav1.Conditions, as the real server does it.

Pure functions returning field causes with the real paths and messages. Called by `services.py`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from lbipam.apiserver.errors import Cause, duplicate, forbidden, invalid, not_supported, required
from lbipam.apiserver.kinds.validation import (
    CIDR_MSG,
    IP_MSG,
    dns1123_label,
    dns1123_subdomain,
    parse_cidr,
    parse_ip,
    qualified_name,
)

TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]
PROTOCOLS = ["SCTP", "TCP", "UDP"]
POLICIES = ["PreferDualStack", "RequireDualStack", "SingleStack"]
FAMILIES = ["IPv4", "IPv6"]
_SVC_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?\Z")
_REASON = re.compile(r"[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?\Z")
REASON_MSG = (
    "a condition reason must start with alphabetic character, optionally followed by a string of "
    "alphanumeric characters or '_,:', and must end with an alphanumeric character or '_' (e.g. "
    "'my_name',  or 'MY_NAME',  or 'MyName',  or 'ReasonA,ReasonB',  or 'ReasonA:ReasonB', regex used "
    "for validation is '[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?')"
)


def spec_causes(spec: dict[str, Any], ranges: Mapping[str, Any]) -> list[Cause]:
    kind = spec.get("type")
    if kind not in TYPES:
        return [not_supported("spec.type", kind, TYPES)]
    causes = _port_causes(spec)
    if kind == "ExternalName":
        name = spec.get("externalName") or ""
        if not name:
            causes.append(required("spec.externalName"))
        causes += [invalid("spec.externalName", name, p) for p in dns1123_subdomain(name)] if name else []
        return causes
    causes += _family_causes(spec, ranges)
    policy = spec.get("externalTrafficPolicy")
    if policy is not None and kind not in ("NodePort", "LoadBalancer"):
        causes.append(
            invalid(
                "spec.externalTrafficPolicy", policy, "may only be set for externally-accessible services"
            )
        )
    elif policy is not None and policy not in ("Cluster", "Local"):
        causes.append(not_supported("spec.externalTrafficPolicy", policy, ["Cluster", "Local"]))
    for index, cidr in enumerate(spec.get("loadBalancerSourceRanges") or []):
        if parse_cidr(cidr) is None:
            causes.append(invalid(f"spec.loadBalancerSourceRanges[{index}]", cidr, CIDR_MSG))
    for index, ip in enumerate(spec.get("externalIPs") or []):
        if parse_ip(ip) is None:
            causes.append(invalid(f"spec.externalIPs[{index}]", ip, IP_MSG))
    if spec.get("loadBalancerIP") and parse_ip(spec["loadBalancerIP"]) is None:
        causes.append(invalid("spec.loadBalancerIP", spec["loadBalancerIP"], IP_MSG))
    if spec.get("loadBalancerClass") is not None and kind != "LoadBalancer":
        causes.append(forbidden("spec.loadBalancerClass", "may only be used when `type` is 'LoadBalancer'"))
    return causes


def _port_causes(spec: dict[str, Any]) -> list[Cause]:
    ports = spec.get("ports") or []
    causes: list[Cause] = []
    if not ports and spec.get("clusterIP") != "None" and spec.get("type") != "ExternalName":
        causes.append(required("spec.ports"))
    names: set[str] = set()
    seen: set[tuple[Any, Any]] = set()
    for index, port in enumerate(ports):
        path = f"spec.ports[{index}]"
        name = port.get("name", "")
        if len(ports) > 1 and not name:
            causes.append(required(f"{path}.name"))
        elif name:
            causes += [invalid(f"{path}.name", name, p) for p in dns1123_label(name)]
            if name in names:
                causes.append(duplicate(f"{path}.name", name))
            names.add(name)
        number = port.get("port")
        if not isinstance(number, int) or not 1 <= number <= 65535:
            causes.append(invalid(f"{path}.port", number, "must be between 1 and 65535, inclusive"))
        protocol = port.get("protocol")
        if protocol not in PROTOCOLS:
            causes.append(not_supported(f"{path}.protocol", protocol, PROTOCOLS))
        if (number, protocol) in seen:
            causes.append(duplicate(path, {"port": number, "protocol": protocol}))
        seen.add((number, protocol))
        causes += _target_port_causes(f"{path}.targetPort", port.get("targetPort"))
        if port.get("nodePort") and spec.get("type") not in ("NodePort", "LoadBalancer"):
            causes.append(
                forbidden(f"{path}.nodePort", f"may not be used when `type` is '{spec.get('type')}'")
            )
    return causes


def _target_port_causes(path: str, target: Any) -> list[Cause]:
    if isinstance(target, int) and not 1 <= target <= 65535:
        return [invalid(path, target, "must be between 1 and 65535, inclusive")]
    if isinstance(target, str) and (len(target) > 15 or not _SVC_NAME.match(target) or "--" in target):
        return [
            invalid(path, target, "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
        ]
    return []


def _family_causes(spec: dict[str, Any], ranges: Mapping[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    policy = spec.get("ipFamilyPolicy")
    families = spec.get("ipFamilies") or []
    ips = spec.get("clusterIPs") or []
    if policy is None:
        return [
            invalid(
                "spec.ipFamilyPolicy",
                "SingleStack",
                "must be RequireDualStack or PreferDualStack when multiple 'ipFamilies' are specified",
            )
        ]
    if policy not in POLICIES:
        causes.append(not_supported("spec.ipFamilyPolicy", policy, POLICIES))
    for index, family in enumerate(families):
        if family not in FAMILIES:
            causes.append(not_supported(f"spec.ipFamilies[{index}]", family, FAMILIES))
        elif family in families[:index]:
            causes.append(duplicate(f"spec.ipFamilies[{index}]", family))
        elif family not in ranges:
            causes.append(invalid(f"spec.ipFamilies[{index}]", family, "not configured on this cluster"))
    if len(families) > 2:
        causes.append(
            invalid("spec.ipFamilies", families, "may specify no more than one IP for each IP family")
        )
    if policy == "SingleStack" and len(families) > 1:
        causes.append(
            invalid(
                "spec.ipFamilies",
                families,
                "when spec.ipFamilyPolicy is SingleStack, only one family may be specified",
            )
        )
    return causes + _cluster_ip_causes(ips, families, spec.get("clusterIP"))


def _cluster_ip_causes(ips: list[Any], families: list[Any], cluster_ip: Any) -> list[Cause]:
    causes: list[Cause] = []
    if ips and cluster_ip and ips[0] != cluster_ip:
        causes.append(invalid("spec.clusterIPs", ips, "first value must match `clusterIP`"))
    for index, text in enumerate(ips):
        if text == "None":
            if index or len(ips) > 1:
                causes.append(
                    invalid(f"spec.clusterIPs[{index}]", text, "must be empty when the first value is 'None'")
                )
            continue
        ip = parse_ip(text)
        if ip is None:
            causes.append(invalid(f"spec.clusterIPs[{index}]", text, IP_MSG))
        elif index < len(families) and f"IPv{ip.version}" != families[index]:
            causes.append(
                invalid(
                    f"spec.clusterIPs[{index}]",
                    text,
                    f"expected an {families[index]} value as indicated by `ipFamilies[{index}]`",
                )
            )
    return causes


def ingress_causes(ingress: list[Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    for index, entry in enumerate(ingress):
        here = f"{path}[{index}]"
        ip, hostname = entry.get("ip", ""), entry.get("hostname", "")
        if ip and parse_ip(ip) is None:
            causes.append(invalid(f"{here}.ip", ip, "must be a valid IP address"))
        if hostname:
            causes += [invalid(f"{here}.hostname", hostname, p) for p in dns1123_subdomain(hostname)]
            if parse_ip(hostname) is not None:
                causes.append(invalid(f"{here}.hostname", hostname, "must be a DNS name, not an IP address"))
        mode = entry.get("ipMode")
        if mode is not None and not ip:
            causes.append(forbidden(f"{here}.ipMode", "may not be specified when `ip` is not set"))
        elif mode is not None and mode not in ("Proxy", "VIP"):
            causes.append(not_supported(f"{here}.ipMode", mode, ["Proxy", "VIP"]))
        for pindex, port in enumerate(entry.get("ports") or []):
            if port.get("protocol") not in PROTOCOLS:
                causes.append(
                    not_supported(f"{here}.ports[{pindex}].protocol", port.get("protocol"), PROTOCOLS)
                )
    return causes


def condition_causes(conditions: list[Any], path: str) -> list[Cause]:
    """metav1.Condition rules (apimachinery's ValidateConditions)."""
    causes: list[Cause] = []
    seen: set[str] = set()
    for index, cond in enumerate(conditions):
        here = f"{path}[{index}]"
        ctype = cond.get("type", "")
        if not ctype:
            causes.append(required(f"{here}.type", "must be set"))
        else:
            causes += [invalid(f"{here}.type", ctype, p) for p in qualified_name(ctype)]
            if ctype in seen:
                causes.append(duplicate(f"{here}.type", ctype))
            seen.add(ctype)
        status = cond.get("status")
        if not status:
            causes.append(required(f"{here}.status", "must be set"))
        elif status not in ("True", "False", "Unknown"):
            causes.append(not_supported(f"{here}.status", status, ["False", "True", "Unknown"]))
        if (cond.get("observedGeneration") or 0) < 0:
            causes.append(
                invalid(
                    f"{here}.observedGeneration",
                    cond["observedGeneration"],
                    "must be greater than or equal to zero",
                )
            )
        if not cond.get("lastTransitionTime"):
            causes.append(required(f"{here}.lastTransitionTime", "must be set"))
        reason = cond.get("reason", "")
        if not reason:
            causes.append(required(f"{here}.reason", "must be set"))
        elif not _REASON.match(reason):
            causes.append(invalid(f"{here}.reason", reason, REASON_MSG))
        elif len(reason) > 1024:
            causes.append(
                Cause(f"{here}.reason", "Too long: may not be more than 1024 bytes", "FieldValueTooLong")
            )
        if len(cond.get("message", "")) > 32768:
            causes.append(
                Cause(f"{here}.message", "Too long: may not be more than 32768 bytes", "FieldValueTooLong")
            )
    return causes
