"""The vendored Kubernetes definitions equal a fresh trim of kubernetes-validate's copy."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from lbipam.apiserver.kinds import definitions


def test_vendored_definitions_match_upstream() -> None:
    kv = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is a test dependency")
    root = resources.files(kv) / "kubernetes-json-schema" / definitions.UPSTREAM_SCHEMAS
    upstream = json.loads((root / "_definitions.json").read_text())["$defs"]
    vendored = resources.files(definitions.__package__) / "data" / definitions.VENDORED
    assert vendored.read_bytes() == definitions.pack_definitions(upstream), (
        "regenerate: python -c 'import json; from importlib import resources; "
        "from lbipam.apiserver.kinds import definitions as o; "
        'r = resources.files("kubernetes_validate") / "kubernetes-json-schema" / '
        'o.UPSTREAM_SCHEMAS; d = json.loads((r / "_definitions.json").read_text())["$defs"]; '
        'open("lbipam/apiserver/kinds/data/" + o.VENDORED, "wb").write(o.pack_definitions(d))\''
    )


def test_served_kinds_have_their_definitions() -> None:
    defs = definitions.upstream()
    for name in (
        "io.k8s.api.core.v1.Service",
        "io.k8s.api.discovery.v1.EndpointSlice",
        "io.k8s.api.coordination.v1.Lease",
    ):
        assert name in defs
