"""Failover in the routed lab (tests/lab.py): how long a dead node keeps getting traffic.

Runs as root (network namespaces). For each variant, a lab with a BIRD router and two nodes;
a node dies (its link is cut, then every process in it is SIGKILLed) while four client loops
keep opening connections to the Service; the node is then revived for the next run. Printed
side by side, each the median of `--runs` runs:
- router withdraws: seconds from the death until the router's kernel table no longer sends
  the Service IP to the dead node;
- client recovered: seconds from the death until the first request of the streak of successes
  that follows the last failed one;
- failed requests meanwhile.
Variants: BFD 300 ms x 3; hold time 3 s without BFD; hold time 90 s without BFD (one run by
default, `--runs-90`, since each takes 90 s: say so when quoting it). Then failed requests
during a speaker rollout (graceful restart), without and with BFD. Then the BFD timing under
load: the worst lateness of a 300 ms BFD transmission while this process plans 50,000 routes,
for the engine in the planning process and for the BFD process the speaker uses.

    sudo python bench/failover.py [--runs 5] [--runs-90 1] [--skip-90]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bgp.bfd.client import BfdClient  # noqa: E402
from bgp.bfd.engine import Engine, SessionSpec  # noqa: E402
from bgp.bfd.session import Timers  # noqa: E402
from bgp.planner import plan_routes  # noqa: E402
from bgp.views import AdvertisementView, AnnouncedService, NodeInfo, PeerView, PoolInfo  # noqa: E402
from lbipam.apiserver.server import EmbeddedAPIServer  # noqa: E402
from lbipam.core.addresses import Block, parse_cidr  # noqa: E402
from tests.conftest import CRD_PATH, crd_documents  # noqa: E402
from tests.lab import Lab, lab  # noqa: E402
from tests.netns import Namespaces, addr, in_ns  # noqa: E402

WORKERS = 4
TIMEOUT = 0.25  # seconds a request may take before it counts as failed
STREAK = 20  # successes in a row that count as recovered


class Traffic:
    """WORKERS loops of requests; each recorded as (start, ok)."""

    def __init__(self, the_lab: Lab, address: str) -> None:
        self.lab, self.address = the_lab, address
        self.log: list[tuple[float, bool]] = []
        self.tasks: list[asyncio.Task[None]] = []

    async def _loop(self) -> None:
        while True:
            began = time.monotonic()
            ok = await self.lab.request(self.address, timeout=TIMEOUT) is not None
            self.log.append((began, ok))
            await asyncio.sleep(0.005)

    def start(self) -> None:
        self.tasks = [asyncio.create_task(self._loop()) for _ in range(WORKERS)]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def recovered(self, since: float) -> tuple[float, int]:
        """(seconds from `since` to the first request of the final streak, failed requests)."""
        after = sorted(entry for entry in self.log if entry[0] >= since)
        failed = [start for start, ok in after if not ok]
        if not failed:
            return 0.0, 0
        streak_start = next((start for start, ok in after if start > failed[-1] and ok), after[-1][0])
        return streak_start - since, len(failed)


async def _deadline(check: Callable[[], Awaitable[bool]], timeout: float) -> float:  # noqa: ASYNC109
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if await check():
            return time.monotonic()
        await asyncio.sleep(0.02)
    raise TimeoutError("condition not met")


async def _ready(the_lab: Lab, address: str, bfd: bool) -> None:
    for node in the_lab.nodes:
        await _deadline(lambda n=node: the_lab.router.established(n.name.replace("-", "")), 90)
        if bfd:
            await _deadline(lambda n=node: the_lab.router.bfd_up(n.address), 30)
    await _deadline(lambda: _hops(the_lab, address, len(the_lab.nodes)), 30)


async def _hops(the_lab: Lab, address: str, count: int) -> bool:
    return len(await the_lab.router.next_hops(f"{address}/32")) == count


async def _traffic(the_lab: Lab, address: str, bfd: bool, warm_up: float) -> Traffic:
    """Once the lab is ready, requests to `address` running for `warm_up` seconds."""
    await _ready(the_lab, address, bfd)
    traffic = Traffic(the_lab, address)
    traffic.start()
    await asyncio.sleep(warm_up)
    return traffic


async def node_death(the_lab: Lab, address: str, bfd: bool, runs: int) -> list[tuple[float, float, int]]:
    """(router withdrew, client recovered, failed requests) per run."""
    results = []
    for _ in range(runs):
        traffic = await _traffic(the_lab, address, bfd, 1.0)
        victim = the_lab.nodes[-1]
        died = time.monotonic()
        await the_lab.kill_node(victim)

        async def withdrawn(v: str = victim.address) -> bool:
            hops = await the_lab.router.next_hops(f"{address}/32")
            return bool(hops) and v not in hops

        gone = await _deadline(withdrawn, 200)
        await asyncio.sleep(1.5)
        await traffic.stop()
        recovered, failed = traffic.recovered(died)
        results.append((gone - died, recovered, failed))
        await the_lab.revive(victim)
    return results


async def rollout(the_lab: Lab, address: str, bfd: bool, runs: int) -> list[int]:
    failures = []
    for _ in range(runs):
        traffic = await _traffic(the_lab, address, bfd, 0.5)
        began = time.monotonic()
        await the_lab.rollout(the_lab.nodes[0])
        await _ready(the_lab, address, bfd)
        await asyncio.sleep(1.0)
        await traffic.stop()
        failures.append(sum(1 for start, ok in traffic.log if start >= began and not ok))
    return failures


async def _server() -> tuple[EmbeddedAPIServer, Path, Path]:
    server = EmbeddedAPIServer(db=":memory:", port=0, bookmark_interval=0.5)
    await server.start()
    directory = Path(tempfile.mkdtemp(prefix="lbipam-failover-"))
    kubeconfig = server.write_kubeconfig(directory / "kubeconfig")
    async with server.session() as session:
        for doc in crd_documents():
            async with session.post(
                CRD_PATH, data=json.dumps(doc), headers={"Content-Type": "application/json"}
            ):
                pass
    await asyncio.sleep(1.0)  # Established (the embedded server serves a CRD at once)
    return server, kubeconfig, directory


async def variant(name: str, *, bfd: bool, hold: int, runs: int, rollouts: int = 0) -> dict[str, Any]:
    server, kubeconfig, directory = await _server()
    try:
        async with lab(
            kubeconfig, directory / name, nodes=2, router="bird", bfd=bfd, hold_time=hold
        ) as the_lab:
            address = await the_lab.service("web")
            result: dict[str, Any] = {}
            if rollouts:
                result["rollout"] = await rollout(the_lab, address, bfd, rollouts)
            if runs:
                result["death"] = await node_death(the_lab, address, bfd, runs)
            return result
    finally:
        await server.stop()


# ---- BFD timing while the speaker plans 50,000 routes ------------------------------------------
def _plan_50k() -> float:
    node = NodeInfo(name="n1", ipv4="192.0.2.11", ipv6="2001:db8:ffff::11")
    peer = PeerView(
        name="tor", address="2001:db8:ffff::1", asn=65000, local_asn=65001, router_id="192.0.2.11"
    )
    net = parse_cidr("2001:db8::/112")
    pool = PoolInfo(name="big", blocks=(Block(int(net.first), int(net.last), 6, 112),))
    services = [
        AnnouncedService(f"default/s{i}", {}, (f"2001:db8::{i:x}",), ready_anywhere=True)
        for i in range(1, 50_001)
    ]
    began = time.perf_counter()
    plan_routes(node, [peer], [AdvertisementView("all")], services, [pool])
    return time.perf_counter() - began


async def bfd_under_load() -> dict[str, float]:
    """Worst TX lateness of a 300 ms x 3 session while this process plans 50,000 routes: the
    engine in this event loop vs the BFD process (`python -m bgp.bfd`) beside it."""
    with Namespaces() as spaces:
        a, b = spaces.add("a"), spaces.add("b")
        left, right = spaces.veth(a, b, "s")
        addr(a, left, "192.0.2.1/24")
        addr(b, right, "192.0.2.2/24")
        fast = {"minTxMs": 300, "minRxMs": 300, "multiplier": 3}
        peer = BfdClient(command=in_ns(b, sys.executable, "-m", "bgp.bfd"))
        mine = BfdClient(command=in_ns(a, sys.executable, "-m", "bgp.bfd"))
        tasks = [asyncio.create_task(peer.run()), asyncio.create_task(mine.run())]
        peer.configure([{"name": "a", "peer": "192.0.2.1", **fast}])
        mine.configure([{"name": "b", "peer": "192.0.2.2", **fast}])
        await _deadline(lambda: _up(mine, "b"), 20)
        await asyncio.sleep(1)
        took = _plan_50k()  # blocks this loop, as a planning round does
        await asyncio.sleep(1)
        process_gap = float((await mine.stats())["max_tx_gap"])
        survived = mine.states["b"].state == "Up"
        await mine.stop(admin_down=False)
        await peer.stop(admin_down=False)
        for task in tasks:
            task.cancel()
    in_loop = await _in_loop_gap()
    return {
        "plan_s": took,
        "process_gap_s": process_gap,
        "process_stayed_up": float(survived),
        "in_loop_gap_s": in_loop,
    }


async def _up(client: BfdClient, name: str) -> bool:
    state = client.states.get(name)
    return state is not None and state.state == "Up"


async def _in_loop_gap() -> float:
    """The same planning with an engine in this very loop (loopback, a free port): its worst gap."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    engine = Engine(lambda _: None, single_hop_port=port)
    other = Engine(lambda _: None, single_hop_port=port)
    timers = Timers(300_000, 300_000, 3)
    engine.configure([SessionSpec("x", "127.77.0.2", "127.77.0.1", timers=timers)])
    other.configure([SessionSpec("y", "127.77.0.1", "127.77.0.2", timers=timers)])
    await asyncio.sleep(4)
    engine.stats.max_tx_gap = 0.0
    _plan_50k()
    await asyncio.sleep(0.5)
    gap = engine.stats.max_tx_gap
    engine.close(admin_down=False)
    other.close(admin_down=False)
    return gap


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--runs-90", type=int, default=1)
    parser.add_argument("--skip-90", action="store_true")
    args = parser.parse_args()
    rows: dict[str, list[tuple[float, float, int]]] = {}
    rollouts: dict[str, list[int]] = {}
    out = await variant("bfd", bfd=True, hold=90, runs=args.runs, rollouts=args.runs)
    rows["BFD 300ms x3 (hold 90s)"], rollouts["graceful restart + BFD"] = out["death"], out["rollout"]
    out = await variant("hold3", bfd=False, hold=3, runs=args.runs, rollouts=args.runs)
    rows["no BFD, hold 3s"], rollouts["graceful restart, no BFD"] = out["death"], out["rollout"]
    if not args.skip_90:
        rows[f"no BFD, hold 90s ({args.runs_90} run)"] = (
            await variant("hold90", bfd=False, hold=90, runs=args.runs_90)
        )["death"]
    print(f"\nnode death (median of runs; BIRD router, 2 nodes, {WORKERS} client loops, {TIMEOUT}s timeout)")
    print(f"{'variant':34} {'router withdraws':>17} {'client recovered':>17} {'failed requests':>16}")
    for name, runs in rows.items():
        print(f"{name:34} {_median([r[0] for r in runs]):16.2f}s {_median([r[1] for r in runs]):16.2f}s "
              f"{_median([float(r[2]) for r in runs]):16.0f}")  # fmt: skip
    base = _median([r[1] for r in rows["no BFD, hold 3s"]])
    bfd = _median([r[1] for r in rows["BFD 300ms x3 (hold 90s)"]])
    verdict = "met" if bfd <= 1.5 else "NOT met"
    print(f"client recovery, BFD vs hold 3s: {bfd / base:.2f}x (goal, BFD <= 1.5 s: {verdict})")
    print("\nfailed requests during a speaker rollout (per run; median)")
    for name, counts in rollouts.items():
        print(f"{name:34} {counts} median {_median([float(c) for c in counts]):.0f}")
    load = await bfd_under_load()
    print("\nBFD 300 ms x 3 while the speaker's process plans 50,000 routes "
          f"(planning held the loop {load['plan_s']:.2f}s)")  # fmt: skip
    print(f"worst TX lateness, engine in the planning loop:  {load['in_loop_gap_s'] * 1000:8.0f} ms")
    print(f"worst TX lateness, BFD process (what the speaker runs): {load['process_gap_s'] * 1000:8.1f} ms, "
          f"session stayed Up: {bool(load['process_stayed_up'])}")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
