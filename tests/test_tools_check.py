"""`lbipam check`: the pure rules (lbipam.core.audit), then the command against the embedded API.

A hand-made state holds one of each problem and `check` must name exactly those; a state the real
controller made (LB IPs and node pod CIDRs) must come out clean. The command runs through its own
`add_parser`/`run` in a worker thread (its `asyncio.run` beside the test's loop, which serves the
API), and once as `python -m lbipam check`, a real process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from lbipam.controllers.app import ControllerApp, LeaderOptions, PodCIDRSettings
from lbipam.controllers.lbipam.controller import LBOptions
from lbipam.core.addresses import cidr_block
from lbipam.core.audit import NamedRange, Ref, ServiceFacts, audit, duplicate_ips, overlapping_pairs
from lbipam.core.lbviews import ServiceView
from lbipam.k8s.client import Kube, connect
from lbipam.k8s.resources import LBPOOLS, NODES, PODCIDRPOOLS, SERVICES, Resource
from lbipam.tools import check
from tests import lbipam_harness as harness
from tests.helpers import eventually
from tests.lbipam_harness import pool
from tests.podcidr_harness import pcpool

ROOT = Path(__file__).resolve().parent.parent
Obj = dict[str, Any]


# ---- the rules, pure -------------------------------------------------------------------------------
def view(name: str, ip: str, namespace: str = "default", **fields: Any) -> ServiceFacts:
    return ServiceFacts(ServiceView(namespace, name, ingress=(ip,), **fields))


@pytest.mark.parametrize(
    ("a", "b", "reason"),
    [
        ({}, {}, "AlreadyAllocated"),
        ({"sharing_key": "k"}, {"sharing_key": "other"}, "AlreadyAllocated"),
        (
            {"sharing_key": "k", "ports": frozenset({("TCP", 80)})},
            {"sharing_key": "k", "ports": frozenset({("TCP", 80)})},
            "IncompatibleSharing",
        ),
        ({"sharing_key": "k", "traffic_policy": "Local"}, {"sharing_key": "k"}, "IncompatibleSharing"),
        ({"sharing_key": "k"}, {"sharing_key": "k", "namespace": "other"}, "IncompatibleSharing"),
        (
            {"sharing_key": "k", "sharing_namespaces": frozenset({"other"})},
            {"sharing_key": "k", "namespace": "other", "sharing_namespaces": frozenset({"*"})},
            None,
        ),
        (
            {"sharing_key": "k", "ports": frozenset({("TCP", 80)})},
            {"sharing_key": "k", "ports": frozenset({("UDP", 80)})},
            None,
        ),
    ],
    ids=["no-key", "other-key", "same-port", "traffic-policy", "other-namespace", "cross-namespace", "legal"],
)
def test_duplicates_follow_the_sharing_rules(
    a: dict[str, Any], b: dict[str, Any], reason: str | None
) -> None:
    found = duplicate_ips([view("a", "192.0.2.1", **a), view("b", "192.0.2.1", **b)])
    assert [f.message.split(": ")[1] for f in found] == ([reason] if reason else [])
    if reason:
        assert [str(r) for r in found[0].refs] == [
            "Service default/a status.loadBalancer.ingress[0].ip",
            f"Service {b.get('namespace', 'default')}/b status.loadBalancer.ingress[0].ip",
        ]


V4_NOTE, CN = "io.cilium.network.ipv4-pod-cidr", "spec.ipam.podCIDRs"
CN_CIDRS = {"spec": {"ipam": {"podCIDRs": ["203.0.113.0/28", "2001:db8::/124"]}}}
NODE = {
    "metadata": {"name": "n1", "annotations": {"io.cilium.network.ipv4-pod-cidr": "203.0.113.16/28"}},
    "spec": {"podCIDR": "203.0.113.32/28", "podCIDRs": ["203.0.113.32/28"]},
}


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("node", [("Node", "spec.podCIDRs[0]", "203.0.113.32/28")]),
        ("node-annotations", [("Node", f"metadata.annotations[{V4_NOTE}]", "203.0.113.16/28")]),
        (
            "ciliumnode",
            [("CiliumNode", f"{CN}[0]", "203.0.113.0/28"), ("CiliumNode", f"{CN}[1]", "2001:db8::/124")],
        ),
        ("none", []),
    ],
    ids=str,
)
def test_node_cidrs_are_read_where_the_target_keeps_them(
    target: str, expected: list[tuple[str, ...]]
) -> None:
    cn = {"metadata": {"name": "n1"}, **CN_CIDRS}
    facts = check.node_facts([NODE], [cn], target)
    assert [(f.kind, field, cidr) for f in facts for field, cidr in f.cidrs] == expected


def test_invalid_pools_and_node_cidrs_are_findings_naming_the_field() -> None:
    bad_pool = pool("broken", "192.0.2.1/24")
    bad_node = {"metadata": {"name": "n9", "annotations": {"io.cilium.network.ipv4-pod-cidr": "banana"}}}
    facts = check.gather_facts({"LoadBalancerIPPool": [bad_pool], "Node": [bad_node]}, "node-annotations")
    found = [(f.code, f.message) for f in audit(*facts)]
    assert found == [
        (
            "InvalidPool",
            "LoadBalancerIPPool broken: spec.blocks[0].cidr: '192.0.2.1/24' has host bits set; did "
            "you mean 192.0.2.0/24?",
        ),
        (
            "InvalidNodeCIDR",
            f"Node n9 metadata.annotations[{V4_NOTE}]: 'banana' is not a CIDR (expected ADDRESS/PREFIXLEN)",
        ),
    ]


def test_an_invalid_pool_still_covers_the_blocks_its_status_accepted_records() -> None:
    broken = pool("broken", "192.0.2.1/24")
    broken["status"] = {"accepted": {"blocks": [{"cidr": "192.0.2.0/24"}]}}
    svc = harness.service("s", annotations={"lbipam.io/allocated-from": "broken"})
    svc["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.7"}]}}
    facts = check.gather_facts({"LoadBalancerIPPool": [broken], "Service": [svc]}, "none")
    assert [f.code for f in audit(*facts)] == ["InvalidPool"]  # not IPOutsidePools, not a mismatch
    del broken["status"]
    facts = check.gather_facts({"LoadBalancerIPPool": [broken], "Service": [svc]}, "none")
    assert sorted(f.code for f in audit(*facts)) == ["AllocatedFromMismatch", "IPOutsidePools", "InvalidPool"]


def test_overlapping_pairs_is_a_sweep_over_owners() -> None:
    ranges = [
        NamedRange(Ref("X", name), cidr_block(cidr), owner)
        for name, cidr, owner in [
            ("a", "192.0.2.0/24", "p"),
            ("b", "192.0.2.0/25", "p"),  # same owner: never compared
            ("c", "192.0.2.128/26", "q"),
            ("d", "2001:db8::/64", "q"),
            ("e", "2001:db8:0:0:8000::/65", "r"),
            ("f", "198.51.100.0/24", "s"),
        ]
    ]
    pairs = [(x.ref.name, y.ref.name) for x, y in overlapping_pairs(ranges)]
    assert pairs == [("a", "c"), ("d", "e")]


# ---- against the embedded API -----------------------------------------------------------------------
def service(name: str, port: int = 80, **notes: str) -> Obj:
    annotations = {f"lbipam.io/{k.replace('_', '-')}": v for k, v in notes.items()}
    return harness.service(name, annotations=annotations, ports=(("TCP", port),))


def node(name: str, *cidrs: str) -> Obj:
    spec = {"podCIDR": cidrs[0], "podCIDRs": list(cidrs)} if cidrs else {}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": spec}


async def status(kube: Kube, res: Resource, name: str, body: Obj, namespace: str | None = None) -> None:
    await kube.patch(res, name, {"status": body}, namespace=namespace, subresource="status")


def counts(v4_used: int) -> Obj:
    return {"ipv4": {"total": "254", "used": str(v4_used), "available": str(254 - v4_used)}}


async def make_dirty(kube: Kube) -> None:
    """One of each problem `check` knows, and a legal share that is not one."""
    for obj in (
        pool("blue", "192.0.2.0/24"),
        pool("green", "198.51.100.0/25"),
        pool("red", "203.0.113.240/28"),
    ):
        await kube.create(LBPOOLS, obj)
    await kube.create(PODCIDRPOOLS, pcpool("pods", (["203.0.113.0/24"], 28)))
    await status(kube, LBPOOLS, "blue", counts(6))  # Services hold 4 addresses of blue: 2 leaked
    await status(kube, LBPOOLS, "green", counts(0))
    ingress = {
        "a": ("192.0.2.10", service("a", allocated_from="blue")),
        "b": ("192.0.2.10", service("b", 443)),  # a has no sharing key: a duplicate
        "c": ("192.0.2.11", service("c", sharing_key="k")),
        "d": ("192.0.2.11", service("d", 443, sharing_key="k")),  # shares legally with c
        "e": ("198.51.100.200", service("e")),  # in no pool
        "f": ("192.0.2.12", service("f", allocated_from="green")),  # green does not hold it
        "g": ("192.0.2.13", service("g", allocated_from="gone")),  # no such pool
    }
    for name, (ip, obj) in ingress.items():
        await kube.create(SERVICES, obj)
        await status(kube, SERVICES, name, {"loadBalancer": {"ingress": [{"ip": ip}]}}, "default")
    for obj in (node("n1", "203.0.113.0/28"), node("n2", "203.0.113.8/29"), node("n3", "192.0.2.128/28")):
        await kube.create(NODES, obj)
    await status(kube, PODCIDRPOOLS, "pods", counts(2))


DIRTY_FLAGS = ["--service-cidr", "198.51.100.0/26,2001:db8:96::/112", "--pod-cidr", "203.0.113.0/24"]
EXPECTED = {
    (
        "DuplicateIP",
        (
            "Service default/a status.loadBalancer.ingress[0].ip",
            "Service default/b status.loadBalancer.ingress[0].ip",
        ),
    ),
    ("LeakedAllocations", ("LoadBalancerIPPool blue status.ipv4.used",)),
    ("IPOutsidePools", ("Service default/e status.loadBalancer.ingress[0].ip",)),
    (
        "AllocatedFromMismatch",
        (
            "Service default/f metadata.annotations[lbipam.io/allocated-from]",
            "Service default/f status.loadBalancer.ingress[0].ip",
        ),
    ),
    ("AllocatedFromMismatch", ("Service default/g metadata.annotations[lbipam.io/allocated-from]",)),
    ("NodeCIDROverlap", ("Node n1 spec.podCIDRs[0]", "Node n2 spec.podCIDRs[0]")),
    ("NodeCIDROutsidePools", ("Node n3 spec.podCIDRs[0]",)),
    ("PoolOverlap", ("PodCIDRPool pods spec.ipv4.cidrs[0]", "LoadBalancerIPPool red spec.blocks[0]")),
    ("ClusterCIDROverlap", ("--service-cidr", "LoadBalancerIPPool green spec.blocks[0]")),
    ("ClusterCIDROverlap", ("--pod-cidr", "LoadBalancerIPPool red spec.blocks[0]")),
}


def args_for(kubeconfig: Path, *argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="lbipam")
    check.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["check", "--kubeconfig", str(kubeconfig), *argv])


async def run_check(capsys: pytest.CaptureFixture[str], kubeconfig: Path, *argv: str) -> tuple[int, str, str]:
    args = args_for(kubeconfig, *argv)
    code = await asyncio.to_thread(args.run, args)
    out, err = capsys.readouterr()
    return code, out, err


def as_set(report: Obj) -> set[tuple[str, tuple[str, ...]]]:
    def ref(o: Obj) -> str:
        where = f"{o['namespace']}/{o['name']}" if o.get("namespace") else o["name"]
        text = o["name"] if o["kind"] == "flag" else f"{o['kind']} {where}"
        return f"{text} {o['field']}" if o.get("field") else text

    return {(f["code"], tuple(ref(o) for o in f["objects"])) for f in report["findings"]}


async def test_check_names_every_problem_of_a_dirty_state(
    capsys: pytest.CaptureFixture[str], kubeconfig: Path, lbipam_crds: list[str]
) -> None:
    async with await connect(str(kubeconfig)) as kube:
        await make_dirty(kube)
    code, out, _ = await run_check(capsys, kubeconfig, *DIRTY_FLAGS, "-o", "json")
    assert code == 1
    report = json.loads(out)
    assert as_set(report) == EXPECTED
    assert len(report["findings"]) == len(EXPECTED)
    assert report["checked"] == {"Service": 7, "LoadBalancerIPPool": 3, "PodCIDRPool": 1, "Node": 3}
    messages = {f["code"]: f["message"] for f in report["findings"]}
    assert "192.0.2.10 is on Service default/a" in messages["DuplicateIP"]
    assert "lbipam.io/sharing-key: (none) vs (none)" in messages["DuplicateIP"]
    assert (
        "is 6, but Services hold only 4 IPv4 addresses of its ranges: 2 leaked"
        in messages["LeakedAllocations"]
    )

    code, table, _ = await run_check(capsys, kubeconfig, *DIRTY_FLAGS)
    assert code == 1
    assert table.splitlines()[0].split() == ["FINDING", "DETAIL"]
    assert "10 findings (2 AllocatedFromMismatch, 2 ClusterCIDROverlap, 1 DuplicateIP" in table


@contextlib.asynccontextmanager
async def controller(kubeconfig: Path) -> AsyncIterator[None]:
    """The real controller (LB-IPAM and PodCIDRs to Node spec.podCIDRs) as a task."""
    kube = await connect(str(kubeconfig))
    settings = PodCIDRSettings("node")
    app = ControllerApp(kube, LBOptions(reuse_delay=0.0), LeaderOptions(enabled=False), settings)
    task = asyncio.create_task(app.run(), name="controller")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await kube.close()


def ingress(svc: Obj) -> list[str]:
    return [i["ip"] for i in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []]


def used(obj: Obj, family: int = 4) -> str:
    return str(((obj.get("status") or {}).get(f"ipv{family}") or {}).get("used"))


async def test_a_state_the_controller_made_is_clean(
    capsys: pytest.CaptureFixture[str], kubeconfig: Path, lbipam_crds: list[str]
) -> None:
    async with await connect(str(kubeconfig)) as kube:
        await kube.create(LBPOOLS, pool("blue", "192.0.2.0/28"))
        await kube.create(PODCIDRPOOLS, pcpool("pods", (["203.0.113.0/24"], 28), (["2001:db8:2::/112"], 124)))
        for obj in (service("a"), service("b", sharing_key="k"), service("c", 443, sharing_key="k")):
            await kube.create(SERVICES, obj)
        for name in ("n1", "n2"):
            await kube.create(NODES, node(name))
        async with controller(kubeconfig):

            async def settled() -> bool:
                svcs = (await kube.list_all(SERVICES, namespace="default")).items
                nodes = (await kube.list_all(NODES)).items
                blue, pods = await kube.get(LBPOOLS, "blue"), await kube.get(PODCIDRPOOLS, "pods")
                held = [ingress(s) for s in svcs]
                return (
                    all(held)
                    and len({ip for ips in held for ip in ips}) == 2
                    and used(blue) == "2"  # b and c share one IP under key k
                    and all(len(n["spec"].get("podCIDRs") or []) == 2 for n in nodes)
                    and used(pods) == used(pods, 6) == "2"
                )

            await eventually(settled, timeout=20)
        code, out, err = await run_check(
            capsys,
            kubeconfig,
            "--service-cidr",
            "10.96.0.0/16",
            "--pod-cidr",
            "203.0.113.0/24,2001:db8:2::/112",
        )
    assert (code, err) == (0, "")
    assert out == "no findings in 3 Services, 1 LoadBalancerIPPool, 1 PodCIDRPool, 2 Nodes\n"


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--service-cidr", "10.96.0.1/16"], ["--service-cidr", "host bits set"]),
        (["--pod-cidr", "nonsense"], ["--pod-cidr", "'nonsense' is not a CIDR"]),
    ],
    ids=["host-bits", "garbage"],
)
async def test_bad_flags_are_refused_naming_the_flag(
    capsys: pytest.CaptureFixture[str], kubeconfig: Path, argv: list[str], words: list[str]
) -> None:
    code, out, err = await run_check(capsys, kubeconfig, *argv)
    assert (code, out) == (2, "")
    for word in words:
        assert word in err


async def test_an_unreachable_api_is_an_error_not_a_finding(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\nusers: [{name: u, user: {}}]\n"
    )
    code, out, err = await run_check(capsys, config)
    assert (code, out) == (2, "")
    assert err.startswith("lbipam check: ")
    assert "ConnectionError" in err


async def test_lbipam_check_runs_as_a_command(kubeconfig: Path, lbipam_crds: list[str]) -> None:
    """Needs `lbipam check` wired into lbipam.cli."""
    async with await connect(str(kubeconfig)) as kube:
        await make_dirty(kube)
    argv = ["-m", "lbipam", "check", "--kubeconfig", str(kubeconfig), *DIRTY_FLAGS, "-o", "json"]
    pipe = asyncio.subprocess.PIPE
    proc = await asyncio.create_subprocess_exec(sys.executable, *argv, stdout=pipe, stderr=pipe, cwd=ROOT)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1, err.decode()
    assert as_set(json.loads(out)) == EXPECTED
