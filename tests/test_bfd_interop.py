"""BFD with real routers: BIRD 2 (`protocol bfd`, `bfd on`) and FRR 8 (`bfdd`).

One node and its router in network namespaces (tests/lab.py: a real `lbipam speaker` with
its ExaBGP and BFD process). The session comes Up; then the router's BFD stops answering
(its process is stopped, SIGSTOP: the link stays, BGP's hold timer is far off) and the
speaker must see BFD Down and tear its BGP session down itself; when the router answers
again, BFD comes back Up and so does BGP.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.helpers import eventually
from tests.lab import Lab, lab
from tests.netns import can_run

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not can_run(), reason="needs root and ip netns"),
    pytest.mark.timeout(180),
]


async def _peer(the_lab: Lab) -> dict[str, object]:
    state: dict[str, object] = await the_lab.cluster.peer_state("node-1")
    return state


async def _shows(the_lab: Lab, *, bfd: str, established: bool) -> bool:
    peer = await _peer(the_lab)
    return peer.get("bfd") == bfd and (peer.get("state") == "Established") is established


@pytest.mark.parametrize("router", ["bird", "frr"])
async def test_bfd_down_tears_the_bgp_session_down_and_up_brings_it_back(
    kubeconfig: Path, lbipam_crds: list[str], tmp_path: Path, router: str
) -> None:
    async with lab(kubeconfig, tmp_path, nodes=1, router=router, bfd=True) as the_lab:
        node = the_lab.node("node-1")
        await eventually(lambda: the_lab.router.bfd_up(node.address), timeout=30)
        await eventually(lambda: _shows(the_lab, bfd="Up", established=True), timeout=30)

        bfd = the_lab.router.bfd_daemon()
        os.kill(bfd.pid, signal.SIGSTOP)  # the router's BFD goes silent
        try:
            await eventually(lambda: _shows(the_lab, bfd="Down", established=False), timeout=15)
            assert "BFD" in str((await _peer(the_lab)).get("lastError"))
            if router == "frr":  # bgpd still runs: the session went down because we closed it
                await eventually(lambda: _not(the_lab.router.established("node1")), timeout=10)
        finally:
            os.kill(bfd.pid, signal.SIGCONT)
        await eventually(lambda: _shows(the_lab, bfd="Up", established=True), timeout=60)
        await eventually(lambda: the_lab.router.established("node1"), timeout=30)


async def _not(check: object) -> bool:
    return not await check  # type: ignore[misc]
