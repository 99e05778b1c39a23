"""Zero-churn handovers, end to end with real parts: a cluster on the embedded API server as
MetalLB (then Cilium) leaves it (their CRDs and objects, Services with their annotations and the
ingress IPs they assigned), `lbipam migrate --kubeconfig` on it, its output applied with kubectl,
then `lbipam controller --compat` and `lbipam speaker` (ExaBGP) as their own processes, peering
with a real BIRD. No Service ever changes IP (an informer watches them throughout), every one
ends `lbipam.io/IPAMRequestSatisfied=True/Satisfied`, and BIRD receives the prefixes, communities
and local preference the old configuration asked for."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lbipam.core.lbviews import ANNOTATION_ALLOCATED_FROM, CONDITION_SATISFIED
from lbipam.k8s.resources import SERVICES
from tests.bgplab import PORT, Bird, Neighbor, have
from tests.controller_harness import until
from tests.migrate_harness import (
    DATA,
    Kubectl,
    announced,
    controller_process,
    ingress_log,
    ingress_of,
    kubectl_path,
    left_by,
    run_migrate,
)
from tests.speaker_harness import Cluster, addresses, cluster, endpoint_slice

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not have("bird", "birdc"), reason="needs BIRD 2"),
    pytest.mark.skipif(kubectl_path() is None, reason="needs kubectl"),
]
NODE_V4 = "192.0.2.21"
PASSWORD = "md5 handover"  # a literal MetalLB password: it must reach BIRD through a Secret
NAMESPACES = ["metallb-system", "lbipam-system", "shop", "edge", "team", "kube-system"]


def service(
    namespace: str, name: str, port: int = 80, protocol: str = "TCP", **extra: object
) -> dict[str, object]:
    meta: dict[str, object] = {"name": name, "namespace": namespace}
    meta.update({k: v for k, v in extra.items() if k in ("annotations", "labels")})
    spec = {
        "type": "LoadBalancer",
        "selector": {"app": name},
        "ports": [{"name": "p", "port": port, "protocol": protocol}],
    }
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec}


def manifests(*docs: dict[str, object]) -> str:
    namespaces = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in NAMESPACES]
    return yaml.safe_dump_all([*namespaces, *docs], sort_keys=False)


def crd_files(crds: Path) -> tuple[list[Path], list[str]]:
    """The CRD files in `crds` and `crd/<name>` of each."""
    paths = sorted(crds.glob("*.yaml"))
    return paths, [f"crd/{yaml.safe_load(p.read_text())['metadata']['name']}" for p in paths]


async def install(kubectl: Kubectl, crds: Path) -> None:
    """Their CRDs, applied with kubectl, Established."""
    paths, names = crd_files(crds)
    await kubectl.apply(*paths)
    await kubectl.run("wait", "--for", "condition=established", "--timeout=30s", *names)


async def left_as_it_was(client: Cluster, before: dict[tuple[str, str], tuple[str, ...]]) -> None:
    """Services as the old controller left them, their endpoints on node-a."""
    await client.node("node-a", ipv4=NODE_V4, labels={"rack": "r1"})
    await left_by(client.kube, before)
    for (namespace, name), _ in before.items():
        await client.apply(endpoint_slice(name, f"{name}-1", ("node-a", True), namespace=namespace))


async def handover(kubectl: Kubectl, kubeconfig: Path, source: str) -> tuple[str, str]:
    """`lbipam migrate` on the cluster, its output applied: the report (stderr) and the YAML."""
    code, out, err = await run_migrate(kubeconfig, source)
    assert code == 0, err
    await kubectl.apply_text(out)
    return err, out


async def all_satisfied(
    client: Cluster, before: dict[tuple[str, str], tuple[str, ...]]
) -> dict[tuple[str, str], dict[str, object]] | None:
    found = {}
    for namespace, name in before:
        svc = await client.kube.get(SERVICES, name, namespace=namespace)
        conds = {c["type"]: c for c in (svc.get("status") or {}).get("conditions") or []}
        cond = conds.get(CONDITION_SATISFIED)
        if cond is None or (cond["status"], cond["reason"]) != ("True", "Satisfied"):
            return None
        if ANNOTATION_ALLOCATED_FROM not in (svc["metadata"].get("annotations") or {}):
            return None  # written next to the status, in a write of its own
        found[(namespace, name)] = svc
    return found


async def moved_over(
    client: Cluster, before: dict[tuple[str, str], tuple[str, ...]], pools: dict[tuple[str, str], str]
) -> None:
    """Every Service Satisfied with the IPs it had, from the pool that holds them."""
    services = await until(lambda: all_satisfied(client, before), timeout=40)
    assert {key: ingress_of(svc) for key, svc in services.items()} == before
    assert {
        key: svc["metadata"]["annotations"][ANNOTATION_ALLOCATED_FROM] for key, svc in services.items()
    } == pools


async def test_metallb_handover_keeps_every_ip_and_route(
    kubeconfig: Path, lbipam_crds: list[str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    router, (speaker,) = addresses(request.node.nodeid)
    kubectl = Kubectl(kubeconfig, tmp_path / "home")
    await install(kubectl, DATA / "metallb" / "crds")
    v1b1, v1b2, ns = "metallb.io/v1beta1", "metallb.io/v1beta2", "metallb-system"
    metallb = [
        {
            "apiVersion": v1b1,
            "kind": "IPAddressPool",
            "metadata": {"name": "public", "namespace": ns},
            "spec": {"addresses": ["198.51.100.0/28"]},
        },
        {
            "apiVersion": v1b1,
            "kind": "IPAddressPool",
            "metadata": {"name": "reserved", "namespace": ns},
            "spec": {"addresses": ["203.0.113.8-203.0.113.15"], "autoAssign": False},
        },
        {
            "apiVersion": v1b1,
            "kind": "IPAddressPool",
            "metadata": {"name": "tenant", "namespace": ns, "labels": {"tier": "tenant"}},
            "spec": {
                "addresses": ["192.0.2.0/28"],
                "serviceAllocation": {"priority": 5, "namespaces": ["team"]},
            },
        },
        {
            "apiVersion": v1b1,
            "kind": "Community",
            "metadata": {"name": "aliases", "namespace": ns},
            "spec": {
                "communities": [
                    {"name": "edge", "value": "64512:7"},
                    {"name": "big", "value": "large:64512:1:1"},
                ]
            },
        },
        {
            "apiVersion": v1b2,
            "kind": "BGPPeer",
            "metadata": {"name": "tor", "namespace": ns},
            "spec": {
                "myASN": 65000,
                "peerASN": 65000,
                "peerAddress": router,
                "peerPort": PORT,
                "sourceAddress": speaker,
                "password": PASSWORD,
                "enableGracefulRestart": True,
                "holdTime": "30s",
            },
        },
        {
            "apiVersion": v1b1,
            "kind": "BGPAdvertisement",
            "metadata": {"name": "local", "namespace": ns},
            "spec": {
                "ipAddressPools": ["public", "reserved"],
                "communities": ["edge", "big", "64512:100"],
                "localPref": 150,
                "peers": ["tor"],
            },
        },
        {
            "apiVersion": v1b1,
            "kind": "BGPAdvertisement",
            "metadata": {"name": "aggregate", "namespace": ns},
            "spec": {"ipAddressPools": ["public"], "aggregationLength": 28},
        },
        {
            "apiVersion": v1b1,
            "kind": "BGPAdvertisement",
            "metadata": {"name": "tenant", "namespace": ns},
            "spec": {
                "ipAddressPoolSelectors": [{"matchLabels": {"tier": "tenant"}}],
                "communities": ["64512:200"],
            },
        },
    ]
    services = [
        service("shop", "web", annotations={"metallb.universe.tf/address-pool": "public"}),
        service("shop", "plain"),
        service("shop", "dns-tcp", 53, annotations={"metallb.io/allow-shared-ip": "dns"}),
        service("edge", "dns-udp", 53, "UDP", annotations={"metallb.io/allow-shared-ip": "dns"}),
        service("shop", "api", 443, annotations={"metallb.io/loadBalancerIPs": "203.0.113.9"}),
        service("team", "app"),
    ]
    before = {
        ("shop", "web"): ("198.51.100.0",),  # a CIDR's network address: MetalLB hands those out
        ("shop", "plain"): ("198.51.100.1",),
        ("shop", "dns-tcp"): ("198.51.100.5",),
        ("edge", "dns-udp"): ("198.51.100.5",),  # shared across namespaces, as MetalLB allows
        ("shop", "api"): ("203.0.113.9",),
        ("team", "app"): ("192.0.2.3",),
    }
    pools = dict.fromkeys(before, "public") | {("shop", "api"): "reserved", ("team", "app"): "tenant"}
    await kubectl.apply_text(manifests(*metallb, *services))
    bgp = Bird(tmp_path / "bird", router, [Neighbor(speaker, password=PASSWORD)])
    async with cluster(kubeconfig) as client, bgp:
        await left_as_it_was(client, before)
        async with ingress_log(client.kube) as log:
            report, applied = await handover(kubectl, kubeconfig, "metallb")
            assert (
                "note: BGPPeer metallb-system/tor spec.password: moved to Secret "
                "lbipam-system/tor-bgp-password" in report
            )
            assert report.endswith("lbipam migrate: 8 objects written; everything carried\n")
            assert PASSWORD not in report
            async with controller_process(
                kubeconfig, tmp_path / "controller.log", "--compat", "metallb"
            ) as ctl:
                await moved_over(client, before, pools)
                local = {"198.51.100.0/32", "198.51.100.1/32", "198.51.100.5/32", "203.0.113.9/32"}
                routes = await announced(
                    kubeconfig, tmp_path, bgp, {*local, "198.51.100.0/28", "192.0.2.3/32"}
                )
                for prefix in local:
                    assert set(routes[prefix].communities) == {"64512:7", "64512:100"}, prefix
                    assert routes[prefix].large_communities == ("64512:1:1",), prefix
                    assert routes[prefix].local_pref == 150, prefix
                assert routes["198.51.100.0/28"].communities == ()
                assert routes["192.0.2.3/32"].communities == ("64512:200",)
                ctl.alive()
            assert {key: log.seen[f"{key[0]}/{key[1]}"] for key in before} == {
                key: [ips] for key, ips in before.items()
            }
    assert PASSWORD not in applied  # in the Secret, base64-encoded


async def test_cilium_handover_keeps_every_ip_and_route(
    kubeconfig: Path, lbipam_crds: list[str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    router, _ = addresses(request.node.nodeid)
    kubectl = Kubectl(kubeconfig, tmp_path / "home")
    await install(kubectl, DATA / "cilium" / "crds")
    v2 = "cilium.io/v2"
    cilium = [
        {
            "apiVersion": v2,
            "kind": "CiliumLoadBalancerIPPool",
            "metadata": {"name": "blue"},
            "spec": {
                "blocks": [{"cidr": "198.51.100.0/28"}],
                "serviceSelector": {
                    "matchExpressions": [{"key": "color", "operator": "In", "values": ["blue"]}]
                },
            },
        },
        {
            "apiVersion": v2,
            "kind": "CiliumLoadBalancerIPPool",
            "metadata": {"name": "red"},
            "spec": {
                "blocks": [{"start": "203.0.113.1", "stop": "203.0.113.6"}],
                "allowFirstLastIPs": "No",
                "serviceSelector": {"matchLabels": {"io.kubernetes.service.namespace": "team"}},
            },
        },
        {
            "apiVersion": v2,
            "kind": "CiliumBGPClusterConfig",
            "metadata": {"name": "rack1"},
            "spec": {
                "nodeSelector": {"matchLabels": {"rack": "r1"}},
                "bgpInstances": [
                    {
                        "name": "main",
                        "localASN": 65000,
                        "peers": [
                            {
                                "name": "tor",
                                "peerASN": 65000,
                                "peerAddress": router,
                                "peerConfigRef": {"name": "tor"},
                            }
                        ],
                    }
                ],
            },
        },
        {
            "apiVersion": v2,
            "kind": "CiliumBGPPeerConfig",
            "metadata": {"name": "tor"},
            "spec": {
                "transport": {"peerPort": PORT},
                "authSecretRef": "tor-bgp",
                "gracefulRestart": {"enabled": True},
                "families": [
                    {
                        "afi": "ipv4",
                        "safi": "unicast",
                        "advertisements": {"matchLabels": {"advertise": "bgp"}},
                    }
                ],
            },
        },
        {
            "apiVersion": v2,
            "kind": "CiliumBGPAdvertisement",
            "metadata": {"name": "services", "labels": {"advertise": "bgp"}},
            "spec": {
                "advertisements": [
                    {
                        "advertisementType": "Service",
                        "service": {"addresses": ["LoadBalancerIP"]},
                        "selector": {"matchLabels": {"color": "blue"}},
                        "attributes": {
                            "communities": {
                                "standard": ["65000:100"],
                                "wellKnown": ["no-export"],
                                "large": ["65000:1:1"],
                            },
                            "localPreference": 200,
                        },
                    },
                    {
                        "advertisementType": "Service",
                        "service": {"addresses": ["LoadBalancerIP"]},
                        "selector": {"matchLabels": {"io.kubernetes.service.namespace": "team"}},
                        "attributes": {"communities": {"standard": ["65000:200"]}},
                    },
                ]
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "tor-bgp", "namespace": "kube-system"},
            "stringData": {"password": PASSWORD},
        },
    ]
    blue = {"color": "blue"}
    shared = {"lbipam.cilium.io/sharing-key": "shared", "lbipam.cilium.io/sharing-cross-namespace": "*"}
    services = [
        service("shop", "web", labels=blue, annotations={"lbipam.cilium.io/ips": "198.51.100.0"}),
        service("shop", "plain", labels=blue),
        service("shop", "dns-tcp", 53, labels=blue, annotations=shared),
        service("edge", "dns-udp", 53, "UDP", labels=blue, annotations=shared),
        service("team", "app"),
    ]
    before = {
        ("shop", "web"): ("198.51.100.0",),  # a CIDR's first address: Cilium 1.16+ hands it out
        ("shop", "plain"): ("198.51.100.3",),
        ("shop", "dns-tcp"): ("198.51.100.7",),
        ("edge", "dns-udp"): ("198.51.100.7",),
        ("team", "app"): ("203.0.113.1",),  # a range's first address is not reserved
    }
    pools = dict.fromkeys(before, "blue") | {("team", "app"): "red"}
    await kubectl.apply_text(manifests(*cilium, *services))
    # Cilium has no source address for a session: ExaBGP dials from the kernel's choice, 127.0.0.1.
    bgp = Bird(tmp_path / "bird", router, [Neighbor("127.0.0.1", password=PASSWORD)])
    async with cluster(kubeconfig) as client, bgp:
        await left_as_it_was(client, before)
        async with ingress_log(client.kube) as log:
            report, _ = await handover(kubectl, kubeconfig, "cilium")
            assert (
                "edge/dns-udp, shop/dns-tcp, shop/web carry Cilium's annotations: "
                "run lbipam controller --compat cilium" in report
            )
            assert report.endswith("lbipam migrate: 5 objects written; everything carried\n")
            async with controller_process(
                kubeconfig, tmp_path / "controller.log", "--compat", "cilium"
            ) as ctl:
                await moved_over(client, before, pools)
                blue_routes = {"198.51.100.0/32", "198.51.100.3/32", "198.51.100.7/32"}
                routes = await announced(kubeconfig, tmp_path, bgp, {*blue_routes, "203.0.113.1/32"})
                for prefix in blue_routes:
                    assert set(routes[prefix].communities) == {"65000:100", "65535:65281"}, prefix
                    assert routes[prefix].large_communities == ("65000:1:1",), prefix
                    assert routes[prefix].local_pref == 200, prefix
                assert routes["203.0.113.1/32"].communities == ("65000:200",)
                ctl.alive()
            assert {key: log.seen[f"{key[0]}/{key[1]}"] for key in before} == {
                key: [ips] for key, ips in before.items()
            }
