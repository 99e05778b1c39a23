"""`lbipam controller --compat`: MetalLB's and Cilium's Service annotations read as lbipam's
(lbipam.core.compat), as a table of annotations in and annotations the controller sees out, and
through the converter the controller uses."""

from __future__ import annotations

import pytest

from lbipam.controllers.lbipam.convert import service_view
from lbipam.core.compat import parse_sources, with_compat

BOTH = frozenset({"metallb", "cilium"})
METALLB = frozenset({"metallb"})
CILIUM = frozenset({"cilium"})
XNS = "lbipam.io/sharing-cross-namespace"

CASES = [
    ("metallb ips", METALLB, {"metallb.io/loadBalancerIPs": "192.0.2.1"}, {"lbipam.io/ips": "192.0.2.1"}),
    (
        "deprecated metallb prefix",
        METALLB,
        {"metallb.universe.tf/loadBalancerIPs": "192.0.2.1,2001:db8::1"},
        {"lbipam.io/ips": "192.0.2.1,2001:db8::1"},
    ),
    (
        "stable metallb prefix wins",
        METALLB,
        {"metallb.universe.tf/address-pool": "old", "metallb.io/address-pool": "new"},
        {"lbipam.io/pool": "new"},
    ),
    (
        "metallb sharing allows every namespace",
        METALLB,
        {"metallb.io/allow-shared-ip": "dns"},
        {"lbipam.io/sharing-key": "dns", XNS: "*"},
    ),
    ("empty metallb key shares with nobody", METALLB, {"metallb.io/allow-shared-ip": ""}, {}),
    (
        "lbipam's own annotation wins",
        BOTH,
        {
            "lbipam.io/ips": "192.0.2.9",
            "metallb.io/loadBalancerIPs": "192.0.2.1",
            "lbipam.cilium.io/ips": "192.0.2.2",
        },
        {"lbipam.io/ips": "192.0.2.9"},
    ),
    (
        "lbipam's own namespaces win over metallb's any",
        METALLB,
        {"metallb.io/allow-shared-ip": "k", XNS: "team-b"},
        {"lbipam.io/sharing-key": "k", XNS: "team-b"},
    ),
    (
        "lbipam's own key: metallb's neither key nor namespaces",
        METALLB,
        {"metallb.io/allow-shared-ip": "theirs", "lbipam.io/sharing-key": "ours"},
        {"lbipam.io/sharing-key": "ours"},
    ),
    (
        "cilium annotations",
        CILIUM,
        {
            "lbipam.cilium.io/ips": "192.0.2.3",
            "lbipam.cilium.io/sharing-key": "web",
            "lbipam.cilium.io/sharing-cross-namespace": "a,b",
        },
        {"lbipam.io/ips": "192.0.2.3", "lbipam.io/sharing-key": "web", XNS: "a,b"},
    ),
    (
        "metallb before cilium; cilium's namespaces kept",
        BOTH,
        {
            "metallb.io/allow-shared-ip": "m",
            "lbipam.cilium.io/sharing-key": "c",
            "lbipam.cilium.io/sharing-cross-namespace": "x",
        },
        {"lbipam.io/sharing-key": "m", XNS: "x"},
    ),
    ("a source not asked for is not read", CILIUM, {"metallb.io/loadBalancerIPs": "192.0.2.1"}, {}),
    ("no compat: nothing", frozenset(), {"lbipam.cilium.io/ips": "192.0.2.3"}, {}),
]


@pytest.mark.parametrize(("sources", "given", "added"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_annotations_read_as_lbipams(
    sources: frozenset[str], given: dict[str, str], added: dict[str, str]
) -> None:
    got = with_compat(given, sources)
    assert {k: v for k, v in got.items() if k.startswith("lbipam.io/")} == {
        **{k: v for k, v in given.items() if k.startswith("lbipam.io/")},
        **added,
    }
    assert {k: v for k, v in got.items() if not k.startswith("lbipam.io/")} == {
        k: v for k, v in given.items() if not k.startswith("lbipam.io/")
    }


def test_the_controller_view_sees_them_only_with_compat() -> None:
    svc = {
        "metadata": {
            "name": "dns",
            "namespace": "shop",
            "annotations": {"metallb.io/loadBalancerIPs": "192.0.2.53", "metallb.io/allow-shared-ip": "dns"},
        },
        "spec": {"type": "LoadBalancer", "ports": [{"port": 53, "protocol": "UDP"}]},
    }
    plain = service_view(svc, {}, True)
    assert (plain.requested, plain.sharing_key) == ((), None)
    view = service_view(svc, {}, True, METALLB)
    assert view.requested == ("192.0.2.53",)
    assert view.sharing_key == "dns"
    assert view.sharing_namespaces == frozenset({"*"})
    assert view.problems == ()
    assert svc["metadata"]["annotations"] == {  # the Service itself is left as it is
        "metallb.io/loadBalancerIPs": "192.0.2.53",
        "metallb.io/allow-shared-ip": "dns",
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [("metallb", METALLB), ("metallb,cilium", BOTH), (" cilium , metallb ", BOTH)],
)
def test_parse_sources(text: str, expected: frozenset[str]) -> None:
    assert parse_sources(text) == expected


@pytest.mark.parametrize("text", ["", "calico", "metallb,,calico", ","])
def test_parse_sources_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="expected a comma list of metallb, cilium"):
        parse_sources(text)


def test_lbipam_check_reads_them_with_compat_too() -> None:
    from lbipam.core.audit import audit
    from lbipam.tools.check import gather_facts

    def svc(namespace: str, protocol: str) -> dict[str, object]:
        return {
            "metadata": {
                "name": "dns",
                "namespace": namespace,
                "annotations": {"metallb.io/allow-shared-ip": "dns"},
            },
            "spec": {"type": "LoadBalancer", "ports": [{"port": 53, "protocol": protocol}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.53"}]}},
        }

    pool = {
        "apiVersion": "lbipam.io/v1alpha1",
        "kind": "LoadBalancerIPPool",
        "metadata": {"name": "p"},
        "spec": {"blocks": [{"cidr": "192.0.2.0/24"}]},
    }
    objects = {"Service": [svc("a", "TCP"), svc("b", "UDP")], "LoadBalancerIPPool": [pool]}
    plain = audit(*gather_facts(objects, "none"))
    assert [f.code for f in plain] == ["DuplicateIP"]  # MetalLB's sharing is invisible to lbipam
    assert audit(*gather_facts(objects, "none", compat=METALLB)) == []
