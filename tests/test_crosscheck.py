"""`lbipam check --context A --context B`: two clusters (two embedded API servers, each with its
own kubeconfig, also merged into one kubeconfig with two contexts), read through the real CLI;
clean, then with overlaps planted between their LB pools, a node's pod CIDR and the other's
PodCIDRPool, and a pool and the other's Service range (inferred from cluster IPs, or read from
ServiceCIDR objects)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from lbipam.apiserver.server import EmbeddedAPIServer
from lbipam.core.addresses import cidr_block
from lbipam.core.audit import Ref
from lbipam.core.crosscheck import ClusterRange, covering_cidrs, overlaps
from lbipam.k8s.resources import PODCIDRPOOLS
from lbipam.tools.crosscheck import Target, targets
from tests.conftest import CRD_PATH, crd_documents
from tests.helpers import eventually
from tests.lbipam_harness import pool, service
from tests.podcidr_harness import pcpool
from tests.speaker_harness import Cluster, cluster

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.e2e


# ---- pure parts -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["east", "west"], [Target("k", "east", "east"), Target("k", "west", "west")]),
        (
            ["a.yaml=ctx", "b.yaml=ctx"],
            [Target("a.yaml", "ctx", "a.yaml=ctx"), Target("b.yaml", "ctx", "b.yaml=ctx")],
        ),
        (
            ["a.yaml=", "arn:aws:eks:eu-west-1:1:cluster/x"],
            [
                Target("a.yaml", None, "a.yaml=(current)"),
                Target("k", "arn:aws:eks:eu-west-1:1:cluster/x", "arn:aws:eks:eu-west-1:1:cluster/x"),
            ],
        ),
    ],
    ids=["contexts of one kubeconfig", "one name in two files", "current context and a name with colons"],
)
def test_context_flags(values: list[str], expected: list[Target]) -> None:
    assert targets(values, "k") == expected


@pytest.mark.parametrize(("values", "message"), [(["=ctx"], "empty"), ([""], "empty"), (["a", "a"], "twice")])
def test_context_flags_refused(values: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        targets(values, None)


def test_service_range_inferred_from_cluster_ips() -> None:
    found = covering_cidrs(["10.96.0.10", "10.96.200.3", "None", "fd00:10:96::a", "bogus"])
    assert [str(b) for b in found] == ["10.96.0.0/16", "fd00:10:96::a/128"]
    assert covering_cidrs([]) == []


def _range(cluster: str, kind: str, text: str) -> ClusterRange:
    return ClusterRange(cluster, Ref(kind, f"{kind.lower()}-{cluster}"), cidr_block(text))


def test_overlaps_are_between_clusters_only_and_node_cidrs_in_their_own_pool_stay_quiet() -> None:
    ranges = [
        _range("a", "LoadBalancerIPPool", "192.0.2.0/24"),
        _range("a", "PodCIDRPool", "10.244.0.0/16"),
        _range("a", "Node", "10.244.1.0/24"),  # in a's own pool: the pool speaks for it
        _range("a", "LoadBalancerIPPool", "192.0.2.128/25"),  # same cluster: not compared here
        _range("b", "PodCIDRPool", "10.244.1.0/24"),
        _range("b", "Node", "192.0.2.64/26"),  # in no pool of b: compared
        _range("b", "LoadBalancerIPPool", "203.0.113.0/24"),
    ]
    found = [(o.a.ref.name, o.b.ref.name) for o in overlaps(ranges)]
    assert found == [("podcidrpool-a", "podcidrpool-b"), ("loadbalancerippool-a", "node-b")]


# ---- two clusters -----------------------------------------------------------------------------
@pytest.fixture
async def servers() -> AsyncIterator[tuple[EmbeddedAPIServer, EmbeddedAPIServer]]:
    east = EmbeddedAPIServer(service_cidr="10.96.0.0/16,fd00:10:96::/112")
    west = EmbeddedAPIServer(service_cidr="10.97.0.0/16,fd00:10:97::/112")
    await east.start()
    await west.start()
    try:
        for server in (east, west):
            await install(server, crd_documents())
        yield east, west
    finally:
        await east.stop()
        await west.stop()


async def install(server: EmbeddedAPIServer, crds: list[dict[str, object]]) -> None:
    async with server.session() as session:
        for doc in crds:
            async with session.post(CRD_PATH, json=doc) as r:
                assert r.status == 201, await r.text()

        async def served() -> bool:
            async with session.get("/apis/lbipam.io/v1alpha1/podcidrpools") as r:
                return r.status == 200

        await eventually(served, timeout=10)


def merged_kubeconfig(path: Path, east: Path, west: Path) -> Path:
    """One kubeconfig holding both clusters, as contexts `east` and `west`."""
    config: dict[str, object] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [],
        "users": [],
        "contexts": [],
    }
    for name, source in (("east", east), ("west", west)):
        loaded = yaml.safe_load(source.read_text())
        config["clusters"].append({"name": name, "cluster": loaded["clusters"][0]["cluster"]})  # type: ignore[attr-defined]
        config["users"].append({"name": name, "user": loaded["users"][0]["user"]})  # type: ignore[attr-defined]
        config["contexts"].append({"name": name, "context": {"cluster": name, "user": name}})  # type: ignore[attr-defined]
    config["current-context"] = "east"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


async def populate(client: Cluster, lb: str, pods: str, node_cidr: str, cluster_ip: str) -> None:
    await client.apply(
        pool("lb", lb),
        service("web", lb_ip=None) | {"spec": {**service("web")["spec"], "clusterIP": cluster_ip}},
    )
    await client.create(PODCIDRPOOLS, pcpool("pods", ((pods,), 24)))
    await client.node("node-1", ipv4="192.0.2.21", pod_cidrs=[node_cidr])


async def check(*argv: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "lbipam", "check", *argv]
    return await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, check=False, cwd=ROOT
    )


async def test_clean_clusters_and_planted_overlaps(
    servers: tuple[EmbeddedAPIServer, EmbeddedAPIServer], tmp_path: Path
) -> None:
    east, west = (
        s.write_kubeconfig(tmp_path / f"{n}.kubeconfig")
        for s, n in zip(servers, ("east", "west"), strict=True)
    )
    merged = merged_kubeconfig(tmp_path / "both.kubeconfig", east, west)
    async with cluster(east) as a, cluster(west) as b:
        await populate(a, "198.51.100.0/28", "10.244.0.0/16", "10.244.1.0/24", "10.96.0.10")
        await populate(b, "198.51.100.16/28", "10.245.0.0/16", "10.245.1.0/24", "10.97.0.10")

        clean = await check("--kubeconfig", str(merged), "--context", "east", "--context", "west")
        assert clean.returncode == 0, clean.stdout + clean.stderr
        assert clean.stdout == (
            "0 overlaps between clusters, 0 findings within them; service ranges: "
            "east (10.96.0.10/32: inferred from Service cluster IPs), "
            "west (10.97.0.10/32: inferred from Service cluster IPs)\n"
        )

        await b.apply(pool("stolen", "198.51.100.8/29"), pool("in-east-services", "10.96.0.0/28"))
        await b.node(
            "node-2", ipv4="192.0.2.22", pod_cidrs=["10.244.9.0/24"]
        )  # outside west's pool, in east's
        result = await check("--context", f"{east}=", "--context", f"{west}=", "-o", "json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)

    def side(o: dict[str, str]) -> tuple[str, str, str]:
        return (o["cluster"].split("=")[0], o["kind"], o["range"])

    pairs = {frozenset({side(o["a"]), side(o["b"])}) for o in report["overlaps"]}
    east_side, west_side = str(east), str(west)
    assert pairs == {
        frozenset(
            {(east_side, "Services", "10.96.0.10/32"), (west_side, "LoadBalancerIPPool", "10.96.0.0/28")}
        ),
        frozenset({(east_side, "PodCIDRPool", "10.244.0.0/16"), (west_side, "Node", "10.244.9.0/24")}),
        frozenset(
            {
                (east_side, "LoadBalancerIPPool", "198.51.100.0/28"),
                (west_side, "LoadBalancerIPPool", "198.51.100.8/29"),
            }
        ),
    }
    west_report = next(c for c in report["clusters"] if c["name"].startswith(str(west)))
    assert west_report["serviceCIDRs"] == {"source": "inferred", "cidrs": ["10.97.0.10/32"]}
    # west's own check: the node's CIDR lies in none of its PodCIDRPools
    assert [f["code"] for f in west_report["findings"]] == ["NodeCIDROutsidePools"]


SERVICE_CIDR_CRD = {  # a stand-in for Kubernetes' built-in networking.k8s.io ServiceCIDR API
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {
        "name": "servicecidrs.networking.k8s.io",
        "annotations": {"api-approved.kubernetes.io": "stand-in"},
    },
    "spec": {
        "group": "networking.k8s.io",
        "scope": "Cluster",
        "names": {
            "kind": "ServiceCIDR",
            "plural": "servicecidrs",
            "singular": "servicecidr",
            "listKind": "ServiceCIDRList",
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                },
            }
        ],
    },
}


async def test_service_cidrs_read_when_served_and_a_missing_context_exits_2(
    servers: tuple[EmbeddedAPIServer, EmbeddedAPIServer], tmp_path: Path
) -> None:
    east_server, _ = servers
    east, west = (
        s.write_kubeconfig(tmp_path / f"{n}.kubeconfig")
        for s, n in zip(servers, ("east", "west"), strict=True)
    )
    await install(east_server, [SERVICE_CIDR_CRD])
    async with east_server.session() as session:
        body = {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "ServiceCIDR",
            "metadata": {"name": "kubernetes"},
            "spec": {"cidrs": ["10.96.0.0/16", "fd00:10:96::/112"]},
        }

        async def created() -> bool:
            async with session.post("/apis/networking.k8s.io/v1/servicecidrs", json=body) as r:
                return r.status == 201

        await eventually(created, timeout=10)
    async with cluster(west) as b:
        await b.apply(pool("lb", "10.96.128.0/28"))  # in east's service range, which no cluster IP shows
    result = await check("--context", f"{east}=", "--context", f"{west}=")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["CLUSTER", "RANGE", "CLUSTER", "OVERLAPS", "RANGE"]
    assert "ServiceCIDR * spec.cidrs 10.96.0.0/16" in lines[1]
    assert "LoadBalancerIPPool lb spec.blocks[0] 10.96.128.0/28" in lines[1]
    assert f"{east}=(current) (10.96.0.0/16, fd00:10:96::/112: ServiceCIDRs)" in lines[-1]

    missing = await check("--context", f"{east}=nowhere", "--context", f"{west}=")
    assert missing.returncode == 2
    assert missing.stderr.startswith("lbipam check: ")
    assert "nowhere" in missing.stderr
    assert missing.stdout == ""
