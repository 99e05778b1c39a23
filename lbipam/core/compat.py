"""MetalLB's and Cilium's Service annotations read as lbipam's (`lbipam controller --compat`).

A cluster moving over from MetalLB or Cilium LB-IPAM has Services that ask for IPs, pools and
sharing in those projects' words. With `--compat metallb,cilium` the controller reads them as
their lbipam equivalents, so every Service keeps its IP across the switch:

- metallb: `metallb.io/loadBalancerIPs` (or the deprecated `metallb.universe.tf/...`) ->
  `lbipam.io/ips`; `.../address-pool` -> `lbipam.io/pool`; `.../allow-shared-ip` ->
  `lbipam.io/sharing-key`, and `lbipam.io/sharing-cross-namespace: "*"`;
- cilium: `lbipam.cilium.io/ips`, `lbipam.cilium.io/sharing-key` and
  `lbipam.cilium.io/sharing-cross-namespace` -> the `lbipam.io/` annotation of the same name.

Precedence: lbipam's own annotation wins over any compat one (a user who writes lbipam's
annotation means it); MetalLB's `metallb.io/` wins over its deprecated `metallb.universe.tf/`
(as MetalLB reads them); MetalLB before Cilium when a Service carries both. MetalLB shares an IP
between Services of any namespaces that carry the same key, so a MetalLB sharing key also allows
every namespace, unless the Service says otherwise in lbipam's or Cilium's annotation. An empty
MetalLB sharing key means no sharing, as in MetalLB.

Pure: called by `lbipam.controllers.lbipam.convert` when it builds a Service's view, and by
`lbipam migrate` to say which Services need `--compat`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from lbipam.core.lbviews import (
    ANNOTATION_IPS,
    ANNOTATION_POOL,
    ANNOTATION_SHARING_CROSS_NS,
    ANNOTATION_SHARING_KEY,
)

METALLB = "metallb"
CILIUM = "cilium"
SOURCES = (METALLB, CILIUM)

_METALLB_PREFIXES = ("metallb.io/", "metallb.universe.tf/")  # the stable prefix first: it wins
#: lbipam annotation -> the compat annotations that stand for it, per source, in precedence order.
EQUIVALENTS: dict[str, dict[str, tuple[str, ...]]] = {
    METALLB: {
        ANNOTATION_IPS: tuple(p + "loadBalancerIPs" for p in _METALLB_PREFIXES),
        ANNOTATION_POOL: tuple(p + "address-pool" for p in _METALLB_PREFIXES),
        ANNOTATION_SHARING_KEY: tuple(p + "allow-shared-ip" for p in _METALLB_PREFIXES),
    },
    CILIUM: {
        ANNOTATION_IPS: ("lbipam.cilium.io/ips",),
        ANNOTATION_SHARING_KEY: ("lbipam.cilium.io/sharing-key",),
        ANNOTATION_SHARING_CROSS_NS: ("lbipam.cilium.io/sharing-cross-namespace",),
    },
}
#: MetalLB's sharing ignores namespaces: its key stands for "any namespace" too.
ALL_NAMESPACES = "*"


def parse_sources(text: str) -> frozenset[str]:
    """`metallb,cilium` -> the set of sources; ValueError names an unknown one."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [n for n in names if n not in SOURCES]
    if unknown or not names:
        raise ValueError(f"{text!r}: expected a comma list of {', '.join(SOURCES)}")
    return frozenset(names)


def compat_annotations(source: str) -> tuple[str, ...]:
    """Every annotation `source` has an lbipam equivalent for."""
    return tuple(a for names in EQUIVALENTS[source].values() for a in names)


def _first(annotations: Mapping[str, str], names: Iterable[str]) -> tuple[str, str] | None:
    for name in names:
        if name in annotations:
            return name, annotations[name]
    return None


def _says_namespaces(annotations: Mapping[str, str], sources: frozenset[str]) -> bool:
    """Whether lbipam's (or, when read, Cilium's) cross-namespace annotation is there."""
    if ANNOTATION_SHARING_CROSS_NS in annotations:
        return True
    cilium = EQUIVALENTS[CILIUM][ANNOTATION_SHARING_CROSS_NS]
    return CILIUM in sources and _first(annotations, cilium) is not None


def with_compat(annotations: Mapping[str, str], sources: frozenset[str]) -> dict[str, str]:
    """`annotations` plus the lbipam equivalents of the compat annotations of `sources`, each
    added only where the Service does not carry lbipam's own (or an earlier source's)."""
    out = dict(annotations)
    for source in SOURCES:
        if source not in sources:
            continue
        for target, names in EQUIVALENTS[source].items():
            found = _first(annotations, names)
            if found is None or target in out:
                continue
            if source == METALLB and target == ANNOTATION_SHARING_KEY:
                if not found[1]:
                    continue  # MetalLB: an empty key shares with nobody
                if not _says_namespaces(annotations, sources):
                    out[ANNOTATION_SHARING_CROSS_NS] = ALL_NAMESPACES
            out[target] = found[1]
    return out
