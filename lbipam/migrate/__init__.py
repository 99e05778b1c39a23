"""`lbipam migrate`: MetalLB's or Cilium's LB-IPAM and BGP configuration, translated to lbipam's.

A pure translation core: input objects (dicts, as read from files or a cluster) in, a `Report`
out, holding the lbipam objects to print (validated against lbipam's own models) and a finding for
every field or object that could not be carried, with the reason. No I/O: `lbipam.tools.migrate`
reads files or the cluster (through `lbipam.k8s`) and prints.

- `metallb` (with `metallb_pools`, `metallb_bgp`, `metallb_ads`, `metallb_legacy`): metallb.io.
- `cilium` (with `cilium_pools`, `cilium_bgp`, `cilium_policy`): cilium.io.
- `services`: what the result means for the Services there are.
- `labels`, `shapes`: selector algebra and field converters; `report`, `validate`, `output`: the
  result, its check against the models, its YAML and report text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lbipam.migrate import cilium, metallb
from lbipam.migrate.report import Options, Report

SOURCES = ("metallb", "cilium")


def translate(source: str, documents: Sequence[Mapping[str, Any]], options: Options | None = None) -> Report:
    """Translate `documents` of `source` ("metallb" or "cilium")."""
    if source == "metallb":
        return metallb.translate(documents, options or Options())
    return cilium.translate(documents, options or Options())


def recognised(source: str, documents: Sequence[dict[str, Any]]) -> bool:
    """Whether `documents` hold any object of `source` at all."""
    return metallb.recognised(documents) if source == "metallb" else cilium.recognised(documents)


__all__ = ["SOURCES", "Options", "Report", "recognised", "translate"]
