"""`kubectl get lbpool` and `kubectl get bgppeer` as a user reads them: the stock kubectl against
the embedded API server, with the controller writing the pool's status.

A pool shows every block it serves (from `status.blocks`: a column of a list shows only its first
item), its Ready condition, and total, used and available per family; a BGPPeer shows Ready.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import pytest

from lbipam.k8s.resources import BGPPEERS
from tests.controller_harness import until
from tests.deploy_harness import kubectl
from tests.lbipam_harness import api_for, controller, pool, service

pytestmark = pytest.mark.e2e


async def kubectl_get(kubeconfig: Path, home: Path, *args: str) -> list[dict[str, str]]:
    """`kubectl get ARGS` as printed, cut into rows of {HEADER: cell} at the headers' columns."""
    proc = await asyncio.create_subprocess_exec(
        kubectl(), f"--kubeconfig={kubeconfig}", "--request-timeout=30s", "get", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin")},
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    header, *lines = out.decode().splitlines()
    starts = [m.start() for m in re.finditer(r"(?:^|(?<=\s\s))\S", header)]
    names = [header[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
    return [
        {n: line[a:b].strip() for n, a, b in zip(names, starts, [*starts[1:], None], strict=True)}
        for line in lines
    ]


async def test_lbpool_shows_every_block_its_counts_and_ready(
    kubeconfig: Path, lbipam_crds: list[str], tmp_path: Path
) -> None:
    blocks = ("192.0.2.0/29", "198.51.100.10-198.51.100.12", "2001:db8::/125")
    async with controller(kubeconfig), api_for(kubeconfig) as api:
        await api.make(pool("web", *blocks), service("a"), service("b", policy="RequireDualStack",
                                                                     families=("IPv4", "IPv6")))  # fmt: skip

        async def written() -> dict[str, object] | None:
            status = (await api.pool("web")).get("status") or {}
            return status if status.get("blocks") and status["ipv4"]["used"] == "2" else None

        status = await until(written, timeout=20)
        rows = await kubectl_get(kubeconfig, tmp_path, "lbpool")
    assert [r["NAME"] for r in rows] == ["web"]
    row = rows[0]
    assert row["BLOCKS"] == ", ".join(blocks)  # every block, not `map[cidr:...]` of the first
    assert (row["READY"], row["DISABLED"]) == ("True", "false")
    for family in ("ipv4", "ipv6"):
        counts = status[family]
        assert isinstance(counts, dict)
        shown = [row[f"{family.upper()} {what.upper()}"] for what in ("total", "used", "available")]
        assert shown == [counts["total"], counts["used"], counts["available"]], family
    assert (row["IPV4 USED"], row["IPV6 USED"]) == ("2", "1")
    assert int(row["IPV4 TOTAL"]) == 6 + 3  # a /29 without network and broadcast, and the range


async def test_an_invalid_pool_shows_ready_false(
    kubeconfig: Path, lbipam_crds: list[str], tmp_path: Path
) -> None:
    """Two overlapping blocks: the schema lets them through, the controller says Ready=False."""
    async with controller(kubeconfig), api_for(kubeconfig) as api:
        await api.make(pool("bad", "192.0.2.0/29", "192.0.2.4-192.0.2.5"))

        async def reported() -> bool:
            conditions = ((await api.pool("bad")).get("status") or {}).get("conditions") or []
            return any(c["type"] == "Ready" for c in conditions)

        await until(reported, timeout=20)
        rows = await kubectl_get(kubeconfig, tmp_path, "lbpool")
    assert (rows[0]["NAME"], rows[0]["READY"], rows[0]["BLOCKS"]) == ("bad", "False", "")


async def test_bgppeer_shows_ready(kubeconfig: Path, lbipam_crds: list[str], tmp_path: Path) -> None:
    peer = {
        "apiVersion": "lbipam.io/v1alpha1",
        "kind": "BGPPeer",
        "metadata": {"name": "tor-a"},
        "spec": {"peerAddress": "192.0.2.1", "peerASN": 64512, "localASN": 64513},
    }
    async with api_for(kubeconfig) as api:
        await api.create(BGPPEERS, peer)
        before = await kubectl_get(kubeconfig, tmp_path, "bgppeer")
        condition = {
            "type": "Ready",
            "status": "False",
            "reason": "SecretNotFound",
            "message": "Secret lbipam-system/tor-a-bgp not found",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
        }
        await api.kube.patch(BGPPEERS, "tor-a", {"status": {"conditions": [condition]}}, subresource="status")
        after = await kubectl_get(kubeconfig, tmp_path, "bgppeer")
    # No condition yet: an empty cell.
    assert (before[0]["NAME"], before[0]["READY"], before[0]["ADDRESS"]) == ("tor-a", "", "192.0.2.1")
    assert (after[0]["READY"], after[0]["PEERASN"], after[0]["LOCALASN"]) == ("False", "64512", "64513")
