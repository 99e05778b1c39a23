"""`lbipam status` against the embedded API: pools as the real controller left them (usage per
family, a Conflict), and BGP sessions from BGPNodeState objects written as a speaker writes them.

The command runs through its own `add_parser`/`run` in a worker thread (its `asyncio.run` beside
the test's loop, which serves the API), and once as `python -m lbipam status`, a real process.
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
from lbipam.k8s.client import Kube, connect
from lbipam.k8s.resources import BGPNODESTATES, LBPOOLS, NODES, PODCIDRPOOLS, SERVICES
from lbipam.tools import status
from tests.helpers import eventually
from tests.lbipam_harness import pool, service
from tests.podcidr_harness import node, pcpool

ROOT = Path(__file__).resolve().parent.parent
Obj = dict[str, Any]
SINCE = "2024-05-01T10:00:00Z"
PEERS = [
    {
        "name": "tor-b",
        "peerAddress": "192.0.2.254",
        "state": "Active",
        "since": SINCE,
        "advertised": 0,
        "lastError": "connection refused",
    },
    {
        "name": "tor-a",
        "peerAddress": "192.0.2.253",
        "state": "Established",
        "since": SINCE,
        "advertised": 3,
        "lastError": "",
    },
]


async def run_status(
    capsys: pytest.CaptureFixture[str], kubeconfig: Path, *argv: str
) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="lbipam")
    status.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["status", "--kubeconfig", str(kubeconfig), *argv])
    code = await asyncio.to_thread(args.run, args)
    out, err = capsys.readouterr()
    return code, out, err


@contextlib.asynccontextmanager
async def controller(kubeconfig: Path) -> AsyncIterator[None]:
    """The real controller (LB-IPAM and PodCIDRs to Node spec.podCIDRs) as a task."""
    kube = await connect(str(kubeconfig))
    app = ControllerApp(
        kube, LBOptions(reuse_delay=0.0), LeaderOptions(enabled=False), PodCIDRSettings("node")
    )
    task = asyncio.create_task(app.run(), name="controller")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await kube.close()


def used(obj: Obj, family: str) -> str | None:
    return ((obj.get("status") or {}).get(family) or {}).get("used")


def condition(obj: Obj, type_: str) -> str | None:
    found = [c["status"] for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_]
    return found[0] if found else None


async def prepare(kube: Kube, kubeconfig: Path) -> None:
    """Pools, Services and Nodes, settled by the real controller; BGPNodeStates as speakers write."""
    await kube.create(LBPOOLS, pool("blue", "192.0.2.0/28", "2001:db8:1::/124"))
    await kube.create(PODCIDRPOOLS, pcpool("pods", (["203.0.113.0/24"], 28), (["2001:db8:2::/112"], 124)))
    for name in ("a", "b"):
        await kube.create(SERVICES, service(name))
    for name in ("n1", "n2"):
        await kube.create(NODES, node(name))
    async with controller(kubeconfig):

        async def settled() -> bool:
            blue, pods = await kube.get(LBPOOLS, "blue"), await kube.get(PODCIDRPOOLS, "pods")
            return used(blue, "ipv4") == used(pods, "ipv4") == used(pods, "ipv6") == "2"

        await eventually(settled, timeout=20)
        # A newer pool on blue's addresses loses the Conflict.
        await kube.create(LBPOOLS, pool("late", "192.0.2.8/29"))
        await eventually(lambda: _conflicted(kube), timeout=20)
    for name in ("n1", "n2"):
        await kube.create(
            BGPNODESTATES,
            {"apiVersion": "lbipam.io/v1alpha1", "kind": "BGPNodeState", "metadata": {"name": name}},
        )
    await kube.patch(BGPNODESTATES, "n1", {"status": {"peers": PEERS}}, subresource="status")


async def _conflicted(kube: Kube) -> bool:
    return condition(await kube.get(LBPOOLS, "late"), "Conflict") == "True"


async def test_status_reports_pools_and_sessions(
    capsys: pytest.CaptureFixture[str], kubeconfig: Path, lbipam_crds: list[str]
) -> None:
    async with await connect(str(kubeconfig)) as kube:
        await prepare(kube, kubeconfig)
    code, out, err = await run_status(capsys, kubeconfig, "-o", "json")
    assert (code, err) == (0, "")
    report = json.loads(out)
    blue, late = report["loadBalancerIPPools"]
    assert blue["name"] == "blue"
    assert blue["blocks"] == ["192.0.2.0/28", "2001:db8:1::/124"]
    assert blue["ipv4"] == {"total": "14", "used": "2", "available": "12"}
    assert blue["ipv6"] == {"total": "14", "used": "0", "available": "14"}
    assert {t: c["status"] for t, c in blue["conditions"].items()} == {
        "Ready": "True",
        "Conflict": "False",
        "Exhausted": "False",
    }
    assert late["conditions"]["Conflict"]["reason"] == "Overlap"
    assert "pool blue" in late["conditions"]["Conflict"]["message"]
    (pods,) = report["podCIDRPools"]
    assert pods["ipv4"] == {"total": "16", "used": "2", "available": "14"}
    assert pods["ipv6"] == {"total": "4096", "used": "2", "available": "4094"}
    assert pods["conditions"]["InvalidChange"]["status"] == "False"
    assert pods["cidrs"] == {
        "ipv4": {"cidrs": ["203.0.113.0/24"], "maskSize": 28},
        "ipv6": {"cidrs": ["2001:db8:2::/112"], "maskSize": 124},
    }
    assert report["bgpNodes"] == [
        {"node": "n1", "peers": sorted(PEERS, key=lambda p: p["name"])},
        {"node": "n2", "peers": []},
    ]

    code, table, _ = await run_status(capsys, kubeconfig)
    assert code == 0
    rows = [line.split() for line in table.splitlines()]
    assert [
        "blue",
        "192.0.2.0/28,2001:db8:1::/124",
        "no",
        "2/14",
        "(14%)",
        "0/14",
        "(0%)",
        "True",
        "False",
        "False",
    ] in rows, table
    assert ["late", "192.0.2.8/29", "no", "-", "-", "True", "True", "False"] in rows
    assert ["n1", "tor-a", "192.0.2.253", "Established", SINCE, "3"] in rows
    assert ["n1", "tor-b", "192.0.2.254", "Active", SINCE, "0", "connection", "refused"] in rows
    assert ["n2", "-", "-", "(no", "sessions)", "-", "-"] in rows
    attention = table.split("Conditions that need attention\n")[1]
    assert attention.startswith(
        "  LoadBalancerIPPool late: Conflict=True Overlap: block 192.0.2.8/29 overlaps"
    )


async def test_status_without_the_crds_says_so_and_shows_what_there_is(
    capsys: pytest.CaptureFixture[str], kubeconfig: Path
) -> None:
    code, out, err = await run_status(capsys, kubeconfig, "-o", "json")
    assert code == 0
    assert json.loads(out) == {"loadBalancerIPPools": [], "podCIDRPools": [], "bgpNodes": []}
    assert "lbipam status: loadbalancerippools.lbipam.io is not served (are lbipam's CRDs installed?)" in err


async def test_status_of_a_missing_kubeconfig_is_an_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = await run_status(capsys, tmp_path / "nope")
    assert (code, out) == (2, "")
    assert err.startswith("lbipam status: ")
    assert "nope: no such file" in err


async def test_lbipam_status_runs_as_a_command(kubeconfig: Path, lbipam_crds: list[str]) -> None:
    """Needs `lbipam status` wired into lbipam.cli."""
    async with await connect(str(kubeconfig)) as kube:
        await kube.create(LBPOOLS, pool("blue", "192.0.2.0/28"))
    argv = ["-m", "lbipam", "status", "--kubeconfig", str(kubeconfig), "-o", "json"]
    pipe = asyncio.subprocess.PIPE
    proc = await asyncio.create_subprocess_exec(sys.executable, *argv, stdout=pipe, stderr=pipe, cwd=ROOT)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert [p["name"] for p in json.loads(out)["loadBalancerIPPools"]] == ["blue"]
