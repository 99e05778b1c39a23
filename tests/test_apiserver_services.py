"""Kubernetes' own defaulting and validation on the embedded API server, where lbipam depends on it:
Services in a dual-stack, IPv4-primary cluster, load-balancer status, and Node podCIDRs."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from tests.helpers import api_client

NS = "default"


@pytest.fixture
async def core(kubeconfig: Path) -> AsyncIterator[Any]:
    async with api_client(kubeconfig) as api:
        yield client.CoreV1Api(api)


def svc(name: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"ports": [{"port": 80}], **spec}}


def causes(exc: ApiException) -> list[tuple[str, str]]:
    return [(c["field"], c["message"]) for c in json.loads(exc.body)["details"]["causes"]]


async def test_a_plain_service_gets_the_real_defaults(core: Any) -> None:
    made = await core.create_namespaced_service(NS, svc("web"))
    spec = made.spec
    assert spec.type == "ClusterIP"
    assert spec.session_affinity == "None"
    assert spec.ip_family_policy == "SingleStack"
    assert spec.ip_families == ["IPv4"]
    assert spec.internal_traffic_policy == "Cluster"
    assert ipaddress.ip_address(spec.cluster_ip) in ipaddress.ip_network("10.96.0.0/16")
    assert spec.cluster_ips == [spec.cluster_ip]
    assert (spec.ports[0].protocol, spec.ports[0].target_port) == ("TCP", 80)
    assert spec.ports[0].node_port is None
    assert spec.external_traffic_policy is None


@pytest.mark.parametrize(
    ("policy", "families", "expected"),
    [
        pytest.param("PreferDualStack", None, ["IPv4", "IPv6"], id="prefer"),
        pytest.param("RequireDualStack", None, ["IPv4", "IPv6"], id="require"),
        pytest.param("PreferDualStack", ["IPv6"], ["IPv6", "IPv4"], id="prefer-ipv6-first"),
        pytest.param("SingleStack", ["IPv6"], ["IPv6"], id="single-ipv6"),
    ],
)
async def test_dual_stack_families_and_cluster_ips(
    core: Any, policy: str, families: list[str] | None, expected: list[str]
) -> None:
    spec: dict[str, Any] = {"ipFamilyPolicy": policy}
    if families:
        spec["ipFamilies"] = families
    made = await core.create_namespaced_service(NS, svc("ds", **spec))
    assert made.spec.ip_families == expected
    nets = {"IPv4": "10.96.0.0/16", "IPv6": "fd00:10:96::/112"}
    for family, ip in zip(expected, made.spec.cluster_ips, strict=True):
        assert ipaddress.ip_address(ip) in ipaddress.ip_network(nets[family])


async def test_load_balancer_services_get_node_ports_and_traffic_policy(core: Any) -> None:
    made = await core.create_namespaced_service(NS, svc("lb", type="LoadBalancer"))
    assert made.spec.external_traffic_policy == "Cluster"
    assert made.spec.allocate_load_balancer_node_ports is True
    assert 30000 <= made.spec.ports[0].node_port <= 32767
    local = svc(
        "local", type="LoadBalancer", externalTrafficPolicy="Local", allocateLoadBalancerNodePorts=False
    )
    made = await core.create_namespaced_service(NS, local)
    assert made.spec.ports[0].node_port is None
    assert 30000 <= made.spec.health_check_node_port <= 32767


async def test_a_requested_cluster_ip_is_honoured_once(core: Any) -> None:
    made = await core.create_namespaced_service(NS, svc("a", clusterIP="10.96.5.5"))
    assert made.spec.cluster_ips == ["10.96.5.5"]
    with pytest.raises(ApiException) as info:
        await core.create_namespaced_service(NS, svc("b", clusterIP="10.96.5.5"))
    assert info.value.status == 422
    assert causes(info.value)[0][0] == "spec.clusterIPs"
    assert "provided IP is already allocated" in causes(info.value)[0][1]
    with pytest.raises(ApiException) as info:
        await core.create_namespaced_service(NS, svc("c", clusterIP="192.0.2.1"))
    assert "is not in the valid range" in causes(info.value)[0][1]
    await core.delete_namespaced_service("a", NS)
    again = await core.create_namespaced_service(NS, svc("d", clusterIP="10.96.5.5"))
    assert again.spec.cluster_ip == "10.96.5.5", "deleting a Service frees its IP"


async def test_cluster_ip_cannot_change_but_survives_an_update_without_it(core: Any) -> None:
    made = await core.create_namespaced_service(NS, svc("keep", type="NodePort"))
    body = svc("keep", type="NodePort")
    body["metadata"]["resourceVersion"] = made.metadata.resource_version
    replaced = await core.replace_namespaced_service("keep", NS, body)
    assert replaced.spec.cluster_ip == made.spec.cluster_ip
    assert replaced.spec.ports[0].node_port == made.spec.ports[0].node_port
    with pytest.raises(ApiException) as info:
        await core.patch_namespaced_service(
            "keep", NS, {"spec": {"clusterIP": "10.96.9.9", "clusterIPs": ["10.96.9.9"]}}
        )
    assert ("spec.clusterIPs[0]", 'Invalid value: "10.96.9.9": may not change once set') in causes(info.value)


async def test_a_load_balancer_class_cannot_change_while_the_type_stays(core: Any) -> None:
    await core.create_namespaced_service(
        NS, svc("lb", type="LoadBalancer", loadBalancerClass="lbipam.io/bgp")
    )
    with pytest.raises(ApiException) as info:
        await core.patch_namespaced_service("lb", NS, {"spec": {"loadBalancerClass": "example.com/other"}})
    assert info.value.status == 422
    assert (
        "spec.loadBalancerClass",
        'Invalid value: "example.com/other": may not change once set',
    ) in causes(info.value)
    changed = await core.patch_namespaced_service("lb", NS, {"spec": {"type": "ClusterIP"}})
    assert changed.spec.type == "ClusterIP"  # the class, nodePorts and policy go with the type
    assert (changed.spec.load_balancer_class, changed.spec.ports[0].node_port) == (None, None)
    assert changed.spec.external_traffic_policy is None


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        pytest.param({"type": "Balanced"}, "spec.type", id="unknown-type"),
        pytest.param({"ports": [{"port": 0}]}, "spec.ports[0].port", id="port-zero"),
        pytest.param({"ports": [{"port": 80}, {"port": 81}]}, "spec.ports[0].name", id="unnamed-ports"),
        pytest.param(
            {"ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4", "IPv6"]},
            "spec.ipFamilies",
            id="single-two",
        ),
        pytest.param({"ipFamilies": ["IPv4", "IPv6"]}, "spec.ipFamilyPolicy", id="two-without-policy"),
        pytest.param({"externalTrafficPolicy": "Local"}, "spec.externalTrafficPolicy", id="etp-on-clusterip"),
    ],
)
async def test_invalid_service_specs(core: Any, spec: dict[str, Any], field: str) -> None:
    with pytest.raises(ApiException) as info:
        await core.create_namespaced_service(NS, svc("bad", **spec))
    assert info.value.status == 422
    assert field in [f for f, _ in causes(info.value)]


async def test_service_names_are_dns_1035_labels(core: Any) -> None:
    with pytest.raises(ApiException) as info:
        await core.create_namespaced_service(NS, svc("1web"))
    ((field, message),) = causes(info.value)
    assert field == "metadata.name"
    assert message.startswith('Invalid value: "1web": a DNS-1035 label must consist of')


@pytest.mark.parametrize(
    ("ingress", "field", "message"),
    [
        pytest.param(
            [{"ip": "192.0.2.300"}],
            "status.loadBalancer.ingress[0].ip",
            "must be a valid IP address",
            id="bad-ip",
        ),
        pytest.param(
            [{"ip": "10.0.0.1/32"}],
            "status.loadBalancer.ingress[0].ip",
            "must be a valid IP address",
            id="cidr",
        ),
        pytest.param(
            [{"hostname": "192.0.2.1"}],
            "status.loadBalancer.ingress[0].hostname",
            "must be a DNS name, not an IP address",
            id="ip-as-hostname",
        ),
        pytest.param(
            [{"ip": "192.0.2.1", "ipMode": "Magic"}],
            "status.loadBalancer.ingress[0].ipMode",
            "Unsupported value",
            id="ip-mode",
        ),
    ],
)
async def test_ingress_status_is_validated(
    core: Any, ingress: list[dict[str, Any]], field: str, message: str
) -> None:
    await core.create_namespaced_service(NS, svc("lb", type="LoadBalancer"))
    with pytest.raises(ApiException) as info:
        await core.patch_namespaced_service_status(
            "lb", NS, {"status": {"loadBalancer": {"ingress": ingress}}}
        )
    assert info.value.status == 422
    assert any(f == field and message in m for f, m in causes(info.value)), causes(info.value)
    read = await core.read_namespaced_service("lb", NS)
    assert not read.status.load_balancer.ingress, "nothing was written"


async def test_valid_ingress_gets_ip_mode_and_conditions_are_checked(core: Any) -> None:
    await core.create_namespaced_service(NS, svc("lb", type="LoadBalancer"))
    ingress = [{"ip": "192.0.2.10"}, {"ip": "2001:db8::10"}]
    after = await core.patch_namespaced_service_status(
        "lb", NS, {"status": {"loadBalancer": {"ingress": ingress}}}
    )
    assert [(i.ip, i.ip_mode) for i in after.status.load_balancer.ingress] == [
        ("192.0.2.10", "VIP"),
        ("2001:db8::10", "VIP"),
    ]
    condition = {
        "type": "lbipam.io/IPAMRequestSatisfied",
        "status": "True",
        "reason": "Satisfied",
        "message": "",
        "lastTransitionTime": "2024-05-01T10:00:00.123456+02:00",
    }
    after = await core.patch_namespaced_service_status("lb", NS, {"status": {"conditions": [condition]}})
    raw = await core.read_namespaced_service("lb", NS, _preload_content=False)
    stored = json.loads(await raw.read())["status"]["conditions"][0]
    assert stored["lastTransitionTime"] == "2024-05-01T08:00:00Z", "metav1.Time: UTC, whole seconds"
    bad = dict(condition, reason="not a reason!")
    with pytest.raises(ApiException) as info:
        await core.patch_namespaced_service_status("lb", NS, {"status": {"conditions": [bad]}})
    assert causes(info.value)[0][0] == "status.conditions[0].reason"


async def test_ingress_is_only_for_load_balancers(core: Any) -> None:
    await core.create_namespaced_service(NS, svc("cip"))
    with pytest.raises(ApiException) as info:
        await core.patch_namespaced_service_status(
            "cip", NS, {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}}
        )
    assert causes(info.value)[0][0] == "status.loadBalancer.ingress"


async def test_node_pod_cidr_is_set_once(core: Any) -> None:
    await core.create_node({"metadata": {"name": "n1"}})
    set_once = await core.patch_node("n1", {"spec": {"podCIDR": "10.244.1.0/24"}})
    assert set_once.spec.pod_cidr == "10.244.1.0/24"
    assert set_once.spec.pod_cidrs == ["10.244.1.0/24"]
    for change in (
        {"podCIDR": "10.244.2.0/24", "podCIDRs": ["10.244.2.0/24"]},
        {"podCIDRs": ["10.244.1.0/24", "fd00::/64"]},
    ):
        with pytest.raises(ApiException) as info:
            await core.patch_node("n1", {"spec": change}, _content_type="application/merge-patch+json")
        assert info.value.status == 422
        assert causes(info.value) == [
            ("spec.podCIDRs", 'Forbidden: node updates may not change podCIDR except from "" to valid')
        ]
    assert (await core.read_node("n1")).spec.pod_cidrs == ["10.244.1.0/24"]


async def test_node_pod_cidrs_dual_stack_and_validity(core: Any) -> None:
    both = await core.create_node(
        {"metadata": {"name": "n2"}, "spec": {"podCIDRs": ["10.244.3.0/24", "fd00:1::/64"]}}
    )
    assert both.spec.pod_cidr == "10.244.3.0/24", "podCIDR is always podCIDRs[0]"
    for bad, field in (
        (["10.244.4.0/24", "10.244.5.0/24"], "spec.podCIDRs"),
        (["10.244.4.0/33"], "spec.podCIDRs[0]"),
        (["not-a-cidr"], "spec.podCIDRs[0]"),
    ):
        with pytest.raises(ApiException) as info:
            await core.create_node({"metadata": {"name": "n3"}, "spec": {"podCIDRs": bad}})
        assert field in [f for f, _ in causes(info.value)]
