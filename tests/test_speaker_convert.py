"""bgp.convert: API dicts -> the speaker's views, and the problems it reports (pure functions)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from bgp.convert import (
    advertisement_view,
    announced_service,
    handled,
    node_info,
    peer_view,
    pod_pool_infos,
    pool_infos,
    slice_service,
)
from bgp.views import NodeInfo
from lbipam.core.bgpcheck import MAX_MD5_KEY, SecretRead, secret_ref

Obj = dict[str, Any]
NODE = NodeInfo(name="node-a", labels={"rack": "r1"}, ipv4="192.0.2.21")


def peer(name: str = "tor", **spec: Any) -> Obj:
    body = {"peerAddress": "192.0.2.1", "peerASN": 64512, "localASN": 64513, **spec}
    return {"apiVersion": "lbipam.io/v1alpha1", "kind": "BGPPeer", "metadata": {"name": name}, "spec": body}


def advertisement(name: str = "ad", **spec: Any) -> Obj:
    return {
        "apiVersion": "lbipam.io/v1alpha1",
        "kind": "BGPAdvertisement",
        "metadata": {"name": name},
        "spec": spec,
    }


def secret_data(**values: str) -> SecretRead:
    return SecretRead(data={k: base64.b64encode(v.encode()).decode() for k, v in values.items()})


def service(name: str = "web", *ips: str, **spec: Any) -> Obj:
    return {
        "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
        "spec": {"type": "LoadBalancer", **spec},
        "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}},
    }


def endpoint_slice(service: str, *endpoints: tuple[str, bool | None]) -> Obj:
    eps = []
    for node, ready in endpoints:
        conditions = {} if ready is None else {"ready": ready}
        eps.append({"addresses": ["10.0.0.1"], "nodeName": node, "conditions": conditions})
    return {
        "metadata": {
            "name": f"{service}-x",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": "IPv4",
        "endpoints": eps,
    }


def pool(name: str, *cidrs: str, created: str = "2026-01-01T00:00:00Z", labels: Obj | None = None) -> Obj:
    return {
        "metadata": {"name": name, "creationTimestamp": created, "labels": labels or {}},
        "spec": {"blocks": [{"cidr": c} for c in cidrs]},
    }


# ---- peers --------------------------------------------------------------------------------------
def test_peer_fields_and_defaults() -> None:
    view, problems = peer_view(
        peer(sourceAddress="192.0.2.22", ebgpMultihop=2, gracefulRestart={"enabled": True}), NODE, {}
    )
    assert problems == []
    assert (view.name, view.address, view.asn, view.local_asn, view.port) == (
        "tor",
        "192.0.2.1",
        64512,
        64513,
        179,
    )
    assert (view.source, view.router_id, view.multihop, view.hold_time) == ("192.0.2.22", "192.0.2.21", 2, 90)
    assert (view.graceful_restart, view.restart_time, view.password) == (True, 120, None)
    assert view.families == ("ipv4-unicast", "ipv6-unicast")
    assert not view.ibgp


def test_peer_address_is_canonical_and_router_id_falls_back_to_an_ipv4_source() -> None:
    node = NodeInfo(name="v6only", ipv6="2001:db8::21")
    view, problems = peer_view(peer(peerAddress="2001:DB8:0::1", sourceAddress="2001:db8::21"), node, {})
    assert view.address == "2001:db8::1"
    assert [p.reason for p in problems] == ["NoRouterID"]
    assert problems[0].message.startswith("spec.routerID:")
    view, problems = peer_view(peer(sourceAddress="198.51.100.7"), node, {})
    assert (view.router_id, problems) == ("198.51.100.7", [])
    view, problems = peer_view(peer(routerID="203.0.113.9"), node, {})
    assert (view.router_id, problems) == ("203.0.113.9", [])


def test_peer_node_selector() -> None:
    view, _ = peer_view(peer(nodeSelector={"matchLabels": {"rack": "r2"}}), NODE, {})
    assert not view.node_selector.matches(NODE.labels)
    assert view.node_selector.matches({"rack": "r2"})


REF = {"namespace": "kube-system", "name": "bgp-auth"}


@pytest.mark.parametrize(
    ("read", "reason", "field"),
    [
        pytest.param(None, "SecretNotRead", "spec.passwordSecretRef:", id="not-read"),
        pytest.param(SecretRead(missing=True), "SecretNotFound", "spec.passwordSecretRef:", id="missing"),
        pytest.param(
            SecretRead(error="403 Forbidden"), "SecretUnreadable", "spec.passwordSecretRef:", id="denied"
        ),
        pytest.param(secret_data(other="x"), "SecretKeyMissing", "spec.passwordSecretRef.key:", id="no-key"),
        pytest.param(secret_data(password=""), "InvalidPassword", "spec.passwordSecretRef:", id="empty"),
        pytest.param(
            secret_data(password="a\nb"), "InvalidPassword", "spec.passwordSecretRef:", id="newline"
        ),
        pytest.param(
            secret_data(password="x" * (MAX_MD5_KEY + 1)),
            "InvalidPassword",
            "spec.passwordSecretRef:",
            id="long",
        ),
        pytest.param(
            SecretRead(data={"password": "!!"}), "InvalidPassword", "spec.passwordSecretRef:", id="b64"
        ),
    ],
)
def test_password_problems_name_the_field(read: SecretRead | None, reason: str, field: str) -> None:
    reads = {} if read is None else {("kube-system", "bgp-auth"): read}
    view, problems = peer_view(peer(passwordSecretRef=REF), NODE, reads)
    assert [p.reason for p in problems] == [reason]
    assert problems[0].message.startswith(field)
    assert "kube-system/bgp-auth" in problems[0].message
    assert view.problems == (problems[0].message,)
    assert view.password is None


def test_password_from_the_named_key() -> None:
    ref = {**REF, "key": "md5"}
    reads = {("kube-system", "bgp-auth"): secret_data(md5="s3cret pass", password="other")}
    view, problems = peer_view(peer(passwordSecretRef=ref), NODE, reads)
    assert (view.password, problems, view.problems) == ("s3cret pass", [], ())
    assert secret_ref(peer(passwordSecretRef=ref)) is not None
    assert secret_ref(peer()) is None


def test_invalid_peer_spec_is_a_problem_naming_the_field() -> None:
    view, problems = peer_view(peer(peerASN=0, holdTime=2), NODE, {})
    assert {p.reason for p in problems} == {"InvalidSpec"}
    messages = " | ".join(p.message for p in problems)
    assert "spec.peerASN" in messages
    assert "spec.holdTime" in messages
    assert view.problems
    assert view.name == "tor"


# ---- advertisements -----------------------------------------------------------------------------
def test_advertisement_fields() -> None:
    view, problems = advertisement_view(
        advertisement(
            poolSelector={"matchLabels": {"bgp": "yes"}},
            peers=["tor"],
            communities=["64512:100", "no-export"],
            largeCommunities=["64512:1:1"],
            localPreference=200,
            med=50,
            aggregationLength=24,
            aggregationLengthV6=64,
            podCIDRs=True,
        )
    )
    assert problems == []
    assert view.pool_selector.matches({"bgp": "yes"})
    assert not view.pool_selector.matches({})
    assert view.service_selector.is_everything
    assert view.node_selector.is_everything
    assert (view.peers, view.communities, view.large_communities) == (
        ("tor",),
        ("64512:100", "no-export"),
        ("64512:1:1",),
    )
    assert (view.local_pref, view.med, view.aggregation_v4, view.aggregation_v6, view.pod_cidrs) == (
        200,
        50,
        24,
        64,
        True,
    )


def test_invalid_advertisement_announces_nothing_and_says_why() -> None:
    view, problems = advertisement_view(advertisement(communities=["64512:100\nannounce route 0.0.0.0/0"]))
    assert [p.reason for p in problems] == ["InvalidSpec"]
    assert problems[0].message.startswith("spec.communities[0]:")
    assert view.problems == (problems[0].message,)
    assert view.communities == ()


# ---- services -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param({"type": "LoadBalancer"}, True, id="no-class"),
        pytest.param({"type": "LoadBalancer", "loadBalancerClass": "lbipam.io/bgp"}, True, id="our-class"),
        pytest.param({"type": "LoadBalancer", "loadBalancerClass": "other.io/lb"}, False, id="other-class"),
        pytest.param({"type": "ClusterIP"}, False, id="cluster-ip"),
    ],
)
def test_handled_services(spec: Obj, expected: bool) -> None:
    assert handled({"spec": spec}) is expected


def test_default_class_off_serves_only_our_class() -> None:
    assert not handled({"spec": {"type": "LoadBalancer"}}, default_class=False)
    assert handled(
        {"spec": {"type": "LoadBalancer", "loadBalancerClass": "lbipam.io/bgp"}}, default_class=False
    )


def test_announced_service_endpoints_and_labels() -> None:
    slices = [endpoint_slice("web", ("node-a", True), ("node-b", False), ("node-c", None))]
    view = announced_service(
        service("web", "2001:DB8::5", "192.0.2.5", externalTrafficPolicy="Local"), slices
    )
    assert view is not None
    assert view.key == "default/web"
    assert view.ips == ("192.0.2.5", "2001:db8::5")
    assert view.local
    assert view.ready_anywhere
    assert view.ready_nodes == frozenset({"node-a", "node-c"})
    assert view.labels == {
        "app": "web",
        "lbipam.io/service-name": "web",
        "lbipam.io/service-namespace": "default",
    }
    assert slice_service(slices[0]) == ("default", "web")


def test_service_without_ready_endpoints_or_ips() -> None:
    view = announced_service(service("web", "192.0.2.5"), [endpoint_slice("web", ("node-a", False))])
    assert view is not None
    assert not view.ready_anywhere
    assert view.ready_nodes == frozenset()
    assert not view.local
    assert announced_service(service("web"), []) is None
    assert announced_service(service("web", "192.0.2.5", loadBalancerClass="other.io/lb"), []) is None


# ---- pools and nodes ----------------------------------------------------------------------------
def test_pools_overlap_the_newer_loses_and_invalid_keeps_the_last_accepted() -> None:
    old = pool("old", "192.0.2.0/24", created="2026-01-01T00:00:00Z", labels={"bgp": "yes"})
    new = pool("new", "192.0.2.128/25", created="2026-01-02T00:00:00Z")
    v6 = pool("v6", "2001:db8::/64")
    accepted, serving = pool_infos([new, old, v6], {})
    assert [p.name for p in serving] == ["old", "v6"]
    assert set(accepted) == {"old", "new", "v6"}
    assert serving[0].labels == {"bgp": "yes"}
    assert [str(b) for b in serving[0].blocks] == ["192.0.2.0/24"]
    broken = pool("v6", "2001:db8::1/64")  # host bits set: does not validate
    accepted2, serving2 = pool_infos([old, broken], accepted)
    assert [p.name for p in serving2] == ["old", "v6"]
    assert [str(b) for b in accepted2["v6"].blocks] == ["2001:db8::/64"]
    assert pool_infos([broken], {})[1] == []


def test_an_invalid_pool_serves_from_status_accepted_in_a_speaker_started_meanwhile() -> None:
    broken = pool("p", "192.0.2.1/24")  # host bits set: does not validate
    broken["status"] = {"accepted": {"blocks": [{"cidr": "192.0.2.0/24"}, {"start": "198.51.100.7"}]}}
    accepted, serving = pool_infos([broken], {})  # no previous: a speaker just started
    assert [str(b) for b in accepted["p"].blocks] == ["192.0.2.0/24", "198.51.100.7"]
    assert [p.name for p in serving] == ["p"]
    # The status is ours to trust only when it reads: a broken record serves nothing new.
    broken["status"] = {"accepted": {"blocks": [{"cidr": "192.0.2.1/24"}]}}
    assert pool_infos([broken], {})[1] == []
    valid = pool("p", "203.0.113.0/24")
    valid["status"] = {"accepted": {"blocks": [{"cidr": "192.0.2.0/24"}]}}  # the spec wins when valid
    assert [str(b) for b in pool_infos([valid], {})[0]["p"].blocks] == ["203.0.113.0/24"]


def test_node_info() -> None:
    node = {
        "metadata": {"name": "node-a", "labels": {"rack": "r1"}},
        "spec": {"podCIDRs": ["10.244.1.0/24", "fd00:10:244:1::/64"]},
        "status": {
            "addresses": [
                {"type": "Hostname", "address": "node-a"},
                {"type": "ExternalIP", "address": "203.0.113.1"},
                {"type": "InternalIP", "address": "192.0.2.21"},
                {"type": "InternalIP", "address": "2001:DB8::21"},
                {"type": "InternalIP", "address": "192.0.2.99"},
            ]
        },
    }
    info = node_info(node)
    assert (info.name, info.labels, info.ipv4, info.ipv6) == (
        "node-a",
        {"rack": "r1"},
        "192.0.2.21",
        "2001:db8::21",
    )
    assert info.pod_cidrs == ("10.244.1.0/24", "fd00:10:244:1::/64")
    assert node_info({"metadata": {"name": "n"}, "spec": {"podCIDR": "10.0.0.0/24"}}).pod_cidrs == (
        "10.0.0.0/24",
    )


def test_a_cordoned_or_deleted_node_says_so() -> None:
    assert node_info({"metadata": {"name": "n"}, "spec": {"unschedulable": True}}).unschedulable
    assert not node_info({"metadata": {"name": "n"}, "spec": {}}).unschedulable
    assert node_info({"metadata": {"name": "n", "deletionTimestamp": "2024-01-01T00:00:00Z"}}).deleting


def pcpool(name: str, spec: Obj, accepted: Obj | None = None) -> Obj:
    status = {"accepted": accepted} if accepted is not None else {}
    return {"metadata": {"name": name}, "spec": spec, "status": status}


def test_pod_cidr_pools_give_their_spec_and_what_was_accepted() -> None:
    v4 = {"ipv4": {"cidrs": ["10.244.0.0/16"], "maskSize": 24}}
    refused = {"ipv4": {"cidrs": ["not a cidr"], "maskSize": 24}}  # invalid: the accepted one serves
    infos = pod_pool_infos(
        [
            pcpool("a", v4),
            pcpool("b", refused, accepted={"ipv4": {"cidrs": ["10.96.0.0/16"], "maskSize": 24}}),
        ]
    )
    assert [(i.name, [str(b) for b in i.blocks]) for i in infos] == [
        ("a", ["10.244.0.0/16"]),
        ("b", ["10.96.0.0/16"]),
    ]
    assert pod_pool_infos([pcpool("c", refused)]) == []
