"""Small readers and converters the translators share: loose field access (input objects are
whatever a user wrote), object names, Go durations, addresses and CIDRs, BGP communities.

Every converter raises ValueError with a message fit for a finding; the translators turn it into
one. Pure; used by the MetalLB and Cilium translators of `lbipam.migrate`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import netaddr
import yaml

Obj = dict[str, Any]
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def as_dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def spec_of(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return as_dict(obj.get("spec"))


def labels_of(obj: Mapping[str, Any]) -> dict[str, str]:
    labels = as_dict(as_dict(obj.get("metadata")).get("labels"))
    return {str(k): str(v) for k, v in labels.items()}


def name_of(obj: Mapping[str, Any]) -> str:
    return str(as_dict(obj.get("metadata")).get("name") or "")


def dns_name(*parts: str) -> str:
    """`parts` joined with '-' as a DNS-1123 subdomain: lower case, other characters as '-'."""
    text = "-".join(p for p in parts if p).lower()
    text = re.sub(r"[^a-z0-9.-]+", "-", text)
    labels = [re.sub(r"^[^a-z0-9]+|[^a-z0-9]+$", "", label) for label in text.split(".")]
    name = ".".join(label[:63] for label in labels if label)[:253].strip("-.")
    return name or "unnamed"


def is_dns_name(text: str) -> bool:
    return 0 < len(text) <= 253 and all(_DNS_LABEL.fullmatch(p) for p in text.split("."))


def go_duration(text: Any) -> float:
    """Seconds of a Go duration ("90s", "1m30s", "9m0s", "0s"), as metav1.Duration holds them."""
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a duration such as 90s or 1m30s")
    body = text[1:] if text[:1] in "+-" else text
    if body == "0":
        return 0.0
    parts = _DURATION_PART.findall(body)
    if not body or "".join(n + u for n, u in parts) != body:
        raise ValueError(f"{text!r} is not a duration such as 90s or 1m30s")
    seconds = sum(float(n) * _SECONDS[u] for n, u in parts)
    if text.startswith("-"):
        raise ValueError(f"{text!r} is negative")
    return seconds


def address(text: Any) -> str:
    """An IP address in canonical form (IPv4 without leading zeros, IPv6 compressed)."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{text!r} is not an IP address")
    try:
        parsed = netaddr.IPAddress(text.strip(), flags=netaddr.INET_PTON)
    except (netaddr.AddrFormatError, ValueError):
        raise ValueError(f"{text!r} is not an IP address") from None
    return str(parsed)


def network(text: Any) -> tuple[str, bool]:
    """A CIDR as (network/len, whether host bits were set and cleared): 192.0.2.10/24 is
    192.0.2.0/24, as Go's net.ParseCIDR reads it (MetalLB, Cilium)."""
    if not isinstance(text, str) or "/" not in text:
        raise ValueError(f"{text!r} is not a CIDR")
    addr, _, length = text.strip().partition("/")
    base = address(addr)
    if not length.isdigit():
        raise ValueError(f"{text!r} is not a CIDR")
    bits = 32 if "." in base else 128
    if int(length) > bits:
        raise ValueError(f"{text!r}: prefix length /{length} is longer than /{bits}")
    net = netaddr.IPNetwork(f"{base}/{int(length)}")
    return str(net.cidr), net.cidr.ip != net.ip


def host_prefix(text: Any) -> str:
    """The address of a /32 or /128 CIDR (Cilium's CiliumBGPPeeringPolicy peerAddress)."""
    cidr, _ = network(text)
    addr, _, length = cidr.partition("/")
    if int(length) != (32 if "." in addr else 128):
        raise ValueError(f"{text!r} is not a single address (/32 or /128)")
    return addr


def _decimal(text: str, limit: int) -> int:
    if not text.isdigit() or int(text) > limit:
        raise ValueError(f"{text!r} is not a number 0..{limit}")
    return int(text)


def standard_community(text: Any) -> str:
    """A standard community as "ASN:VALUE": from "64512:100" (leading zeros dropped) or from one
    32-bit decimal (Cilium's 4-byte form)."""
    value = str(text).strip()
    if ":" in value:
        high, _, low = value.partition(":")
        return f"{_decimal(high, 65535)}:{_decimal(low, 65535)}"
    number = _decimal(value, 2**32 - 1)
    return f"{number >> 16}:{number & 0xFFFF}"


def large_community(text: Any) -> str:
    """A large community "A:B:C", each 0..4294967295."""
    parts = str(text).strip().split(":")
    if len(parts) != 3:
        raise ValueError(f"{text!r} is not a large community A:B:C")
    return ":".join(str(_decimal(p, 2**32 - 1)) for p in parts)


class _GoYAMLLoader(yaml.SafeLoader):
    """PyYAML's safe loader without YAML 1.1's base-60 numbers, which Go's YAML (kubectl,
    MetalLB) does not have: `64512:100` stays the community it is, not the integer 3870820."""


_INT, _FLOAT = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
_GoYAMLLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_INT, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_GoYAMLLoader.add_implicit_resolver(
    _INT,
    re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"),
)
_GoYAMLLoader.add_implicit_resolver(
    _FLOAT,
    re.compile(
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9_]+(?:[eE][-+][0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def load_yaml(text: str) -> list[Any]:
    """Every document of a YAML stream, read as Go's YAML reads it (no base-60 numbers)."""
    return list(yaml.load_all(text, Loader=_GoYAMLLoader))  # a SafeLoader subclass
