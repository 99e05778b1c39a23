"""Strategies of the plain built-in kinds: Namespaces, Nodes, Secrets, ConfigMaps, Leases, EndpointSlices.

Each follows the real server's registry strategy for its kind where lbipam or kubectl can tell:
namespace phase, labels and protected names; Node podCIDR(s) set once and never changed; Secret
types, base64 data, stringData and immutability; Lease timing fields; EndpointSlice address types.
Services, Events and CRDs have their own modules. Called through `objects.py`.
"""

from __future__ import annotations

import base64
import binascii
import copy
import re
from typing import Any

from lbipam.apiserver.errors import Cause, StatusError, forbidden, invalid, not_supported, required
from lbipam.apiserver.kinds import shapes
from lbipam.apiserver.kinds.strategy import Strategy, WriteOptions
from lbipam.apiserver.kinds.validation import (
    CIDR_MSG,
    dns1123_label,
    normalize_time,
    parse_cidr,
    parse_ip,
)
from lbipam.apiserver.storage.registry import ResourceType
from lbipam.apiserver.storage.store import Obj

PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public")
NAME_LABEL = "kubernetes.io/metadata.name"


class NamespaceStrategy(Strategy):
    name_check = staticmethod(dns1123_label)
    finalize_on_delete = True  # Terminating, emptied, then removed
    return_deleted = True
    extra_fields = ("status.phase",)
    shape = {"spec": {"finalizers": [str]}, "status": {"phase": str}}

    def prepare(self, rtype: ResourceType, obj: Obj, old: Obj | None, opts: WriteOptions) -> None:
        meta = obj["metadata"]
        meta.setdefault("labels", {})[NAME_LABEL] = meta.get("name", "")
        if old is None:
            obj["spec"] = {"finalizers": ["kubernetes"], **(obj.get("spec") or {})}
            obj["status"] = {"phase": "Active"}
        else:
            obj["spec"] = copy.deepcopy(old.get("spec", {}))

    def before_delete(self, rtype: ResourceType, obj: Obj) -> None:
        name = obj["metadata"]["name"]
        if name in PROTECTED_NAMESPACES:
            raise StatusError(
                403,
                f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                details={"name": name, "kind": "namespaces"},
            )

    def terminating(self, obj: Obj) -> None:
        obj.setdefault("status", {})["phase"] = "Terminating"


class NodeStrategy(Strategy):
    status_on_create = True  # Nodes may be created with their status, as kubelets do
    extra_fields = ("spec.unschedulable",)
    shape = {
        "spec": {
            "podCIDR": str,
            "podCIDRs": [str],
            "providerID": str,
            "unschedulable": bool,
            "taints": [dict],
        },
        "status": {"addresses": [{"type": str, "address": str}], "conditions": [dict]},
    }

    def prepare(self, rtype: ResourceType, obj: Obj, old: Obj | None, opts: WriteOptions) -> None:
        # v1 <-> internal conversion: podCIDRs wins, podCIDR is always its first entry.
        spec = obj.get("spec") or {}
        if spec.get("podCIDRs"):
            spec["podCIDR"] = spec["podCIDRs"][0]
        elif spec.get("podCIDR"):
            spec["podCIDRs"] = [spec["podCIDR"]]

    def validate(self, rtype: ResourceType, obj: Obj, old: Obj | None) -> list[Cause]:
        causes = super().validate(rtype, obj, old)
        spec = obj.get("spec") or {}
        cidrs = spec.get("podCIDRs") or []
        families = []
        for index, value in enumerate(cidrs):
            net = parse_cidr(value)
            if net is None:
                causes.append(invalid(f"spec.podCIDRs[{index}]", value, CIDR_MSG))
            else:
                families.append(net.version)
        if len(cidrs) > 2 or (len(families) == 2 and families[0] == families[1]):
            causes.append(
                invalid("spec.podCIDRs", cidrs, "may specify no more than one CIDR for each IP family")
            )
        if old is not None:
            causes += self._update_causes(spec, old.get("spec") or {})
        return causes

    @staticmethod
    def _update_causes(spec: dict[str, Any], old_spec: dict[str, Any]) -> list[Cause]:
        causes = []
        old_cidrs = old_spec.get("podCIDRs") or []
        if old_cidrs and old_cidrs != (spec.get("podCIDRs") or []):
            causes.append(
                forbidden("spec.podCIDRs", 'node updates may not change podCIDR except from "" to valid')
            )
        if old_spec.get("providerID") and old_spec["providerID"] != spec.get("providerID"):
            causes.append(
                forbidden("spec.providerID", 'node updates may not change providerID except from "" to valid')
            )
        return causes


_CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+\Z")
_CONFIG_KEY_MSG = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or "
    "'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
)


def _key_causes(data: dict[str, Any], path: str) -> list[Cause]:
    causes = []
    for key in data:
        if not _CONFIG_KEY.match(key) or len(key) > 253:
            causes.append(invalid(path, key, _CONFIG_KEY_MSG))
    return causes


def _immutable_causes(obj: Obj, old: Obj | None, fields: tuple[str, ...]) -> list[Cause]:
    if old is None or not old.get("immutable"):
        return []
    causes = []
    for name in fields:
        if obj.get(name) != old.get(name):
            causes.append(forbidden(name, "field is immutable when `immutable` is set"))
    if not obj.get("immutable"):
        causes.append(forbidden("immutable", "field is immutable when `immutable` is set"))
    return causes


def _check_base64(data: dict[str, Any], kind: str) -> None:
    for value in data.values():
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise StatusError(
                400, f'{kind} in version "v1" cannot be handled as a {kind}: illegal base64 data: {exc}'
            ) from None


class SecretStrategy(Strategy):
    extra_fields = ("type",)
    shape = {"data": shapes.STR_MAP, "stringData": shapes.STR_MAP, "type": str, "immutable": bool}

    def prepare(self, rtype: ResourceType, obj: Obj, old: Obj | None, opts: WriteOptions) -> None:
        data = obj.setdefault("data", {})
        _check_base64(data, "Secret")
        for key, value in (obj.pop("stringData", None) or {}).items():
            data[key] = base64.b64encode(value.encode()).decode()
        if not data:
            obj.pop("data")
        obj.setdefault("type", "Opaque")

    def validate(self, rtype: ResourceType, obj: Obj, old: Obj | None) -> list[Cause]:
        causes = super().validate(rtype, obj, old) + _key_causes(obj.get("data", {}), "data")
        size = sum(len(base64.b64decode(v)) for v in obj.get("data", {}).values())
        if size > 1024 * 1024:
            causes.append(Cause("data", "Too long: must have at most 1048576 bytes", "FieldValueTooLong"))
        if old is not None and obj.get("type") != old.get("type"):
            causes.append(invalid("type", obj.get("type"), "field is immutable"))
        return causes + _immutable_causes(obj, old, ("data",))


class ConfigMapStrategy(Strategy):
    shape = {"data": shapes.STR_MAP, "binaryData": shapes.STR_MAP, "immutable": bool}

    def prepare(self, rtype: ResourceType, obj: Obj, old: Obj | None, opts: WriteOptions) -> None:
        _check_base64(obj.get("binaryData") or {}, "ConfigMap")

    def validate(self, rtype: ResourceType, obj: Obj, old: Obj | None) -> list[Cause]:
        causes = super().validate(rtype, obj, old)
        causes += _key_causes(obj.get("data") or {}, "data")
        causes += _key_causes(obj.get("binaryData") or {}, "binaryData")
        return causes + _immutable_causes(obj, old, ("data", "binaryData"))


class LeaseStrategy(Strategy):
    shape = {
        "spec": {
            "holderIdentity": str,
            "leaseDurationSeconds": int,
            "acquireTime": str,
            "renewTime": str,
            "leaseTransitions": int,
            "strategy": str,
            "preferredHolder": str,
        }
    }

    def prepare(self, rtype: ResourceType, obj: Obj, old: Obj | None, opts: WriteOptions) -> None:
        spec = obj.get("spec") or {}
        for key in ("acquireTime", "renewTime"):
            normalize_time(spec, key, 'Lease in version "v1" cannot be handled as a Lease', micro=True)

    def validate(self, rtype: ResourceType, obj: Obj, old: Obj | None) -> list[Cause]:
        causes = super().validate(rtype, obj, old)
        spec = obj.get("spec") or {}
        duration = spec.get("leaseDurationSeconds")
        if duration is not None and duration <= 0:
            causes.append(invalid("spec.leaseDurationSeconds", duration, "must be greater than 0"))
        transitions = spec.get("leaseTransitions")
        if transitions is not None and transitions < 0:
            causes.append(invalid("spec.leaseTransitions", transitions, "must be greater than or equal to 0"))
        return causes


_ADDRESS_TYPES = ["IPv4", "IPv6", "FQDN"]
_ENDPOINT = {
    "addresses": [str],
    "conditions": {"ready": bool, "serving": bool, "terminating": bool},
    "hostname": str,
    "nodeName": str,
    "zone": str,
    "targetRef": dict,
}


class EndpointSliceStrategy(Strategy):
    generation = True
    shape = {
        "addressType": str,
        "endpoints": [_ENDPOINT],
        "ports": [{"name": str, "port": int, "protocol": str, "appProtocol": str}],
    }

    def prepare(self, rtype: ResourceType, obj: Obj, old: Obj | None, opts: WriteOptions) -> None:
        for port in obj.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("name", "")

    def validate(self, rtype: ResourceType, obj: Obj, old: Obj | None) -> list[Cause]:
        causes = super().validate(rtype, obj, old)
        address_type = obj.get("addressType")
        if not address_type:
            causes.append(required("addressType"))
        elif address_type not in _ADDRESS_TYPES:
            causes.append(not_supported("addressType", address_type, _ADDRESS_TYPES))
        elif old is not None and old.get("addressType") != address_type:
            causes.append(invalid("addressType", address_type, "field is immutable"))
        for index, endpoint in enumerate(obj.get("endpoints") or []):
            causes += _endpoint_causes(f"endpoints[{index}]", endpoint, address_type)
        for index, port in enumerate(obj.get("ports") or []):
            number = port.get("port")
            if number is not None and not 1 <= number <= 65535:
                causes.append(
                    invalid(f"ports[{index}].port", number, "must be between 1 and 65535, inclusive")
                )
        return causes


def _endpoint_causes(path: str, endpoint: dict[str, Any], address_type: Any) -> list[Cause]:
    addresses = endpoint.get("addresses") or []
    if not addresses:
        return [required(f"{path}.addresses", "must contain at least 1 address")]
    causes = []
    if len(addresses) > 100:
        causes.append(Cause(f"{path}.addresses", f"Too many: {len(addresses)}: must have at most 100 items"))
    for index, address in enumerate(addresses):
        ip = parse_ip(address)
        if address_type == "IPv4" and (ip is None or ip.version != 4):
            causes.append(invalid(f"{path}.addresses[{index}]", address, "must be a valid IPv4 address"))
        elif address_type == "IPv6" and (ip is None or ip.version != 6):
            causes.append(invalid(f"{path}.addresses[{index}]", address, "must be a valid IPv6 address"))
    return causes
