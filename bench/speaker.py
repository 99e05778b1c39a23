"""The speaker, measured: (1) the ExaBGP half (bench/speaker_raw.py: raw ExaBGP bulk vs
Driver.apply at 10k and 50k routes, and the full resync after ExaBGP is killed with 10k routes);
(2) end to end through every real part: the embedded API server, `lbipam controller` and
`lbipam speaker` as child processes, and a BIRD 2 on loopback:
  - latency: Services created one at a time (paced), each -> its /32 imported by BIRD, p50/p99/max
    (BIRD's own import timestamps against the wall clock just before the create request);
  - throughput: N Services created as fast as the API takes them -> all N routes in BIRD,
    routes/s, against raw ExaBGP bulk measured in the same run.
Routes are /32s of 198.18.0.0/15 (RFC 2544, set aside for benchmarks); nothing reaches the kernel.

    python bench/speaker.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    CHILD_ENV,
    MERGE,
    ROOT,
    Controller,
    Server,
    in_parallel,
    install_crd,
    percentile,
    request,
    row,
)
from speaker_raw import driver_apply, raw_bulk, resync_after_kill

from tests.bgplab import PORT, Bird, Neighbor, loopback_pair

NODE = "bench-node"
LBIPAM = "/apis/lbipam.io/v1alpha1"


def _service(index: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": f"s{index}", "namespace": "default"},
        # No node ports: 10k of them would not fit the 30000-32767 range, as in Kubernetes.
        "spec": {
            "type": "LoadBalancer",
            "allocateLoadBalancerNodePorts": False,
            "selector": {"app": f"s{index}"},
            "ports": [{"port": 80}],
        },
    }


def _slice(index: int) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"s{index}-1",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": f"s{index}"},
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.244.0.10"], "conditions": {"ready": True}, "nodeName": NODE}],
        "ports": [{"port": 8080, "protocol": "TCP"}],
    }


class Setup:
    """API server, CRDs, pool, advertisement, peer, Node; BIRD; controller and speaker."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.server = Server(directory / "db.sqlite", directory / "kubeconfig")
        router, self.speaker_address = loopback_pair("bench-speaker")
        self.bird = Bird(directory / "bird", router, [Neighbor(self.speaker_address)])
        self.controller = Controller(directory / "kubeconfig", ("--concurrency", "8"))
        self.speaker: asyncio.subprocess.Process | None = None

    async def start(self, http: aiohttp.ClientSession) -> None:
        for path in sorted((ROOT / "crds").glob("*.yaml")):
            await install_crd(http, path)
        pool = {"blocks": [{"cidr": "198.18.0.0/15"}]}
        await request(
            http, "POST", f"{LBIPAM}/loadbalancerippools", _obj("LoadBalancerIPPool", "bench", pool)
        )
        advert = {"communities": ["64512:100"], "largeCommunities": ["64512:1:1"], "localPreference": 200}
        await request(http, "POST", f"{LBIPAM}/bgpadvertisements", _obj("BGPAdvertisement", "bench", advert))
        peer = {
            "peerAddress": self.bird.address, "peerPort": PORT, "peerASN": 65000, "localASN": 65000,
            "sourceAddress": self.speaker_address, "gracefulRestart": {"enabled": True},
        }  # fmt: skip
        await request(http, "POST", f"{LBIPAM}/bgppeers", _obj("BGPPeer", "bench", peer))
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE}}
        await request(http, "POST", "/api/v1/nodes", node)
        addresses = {"status": {"addresses": [{"type": "InternalIP", "address": self.speaker_address}]}}
        await request(http, "PATCH", f"/api/v1/nodes/{NODE}/status", addresses, MERGE)
        await self.bird.start()
        await self.controller.start()
        self.speaker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "lbipam", "speaker", "--node", NODE,
            "--kubeconfig", str(self.directory / "kubeconfig"), "--log-level", "warning",
            cwd=ROOT, env=CHILD_ENV,
        )  # fmt: skip
        await _until(self._established, 60, "the BGP session")

    async def _established(self) -> bool:
        return await self.bird.state() == "Established"

    async def stop(self) -> None:
        if self.speaker is not None and self.speaker.returncode is None:
            self.speaker.send_signal(signal.SIGTERM)
            await self.speaker.wait()
        await self.controller.stop()
        await self.bird.stop()
        await self.server.stop()


def _obj(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "lbipam.io/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec}


async def _until(check: Any, seconds: float, what: str) -> None:
    deadline = time.perf_counter() + seconds
    while not await check():
        if time.perf_counter() > deadline:
            raise SystemExit(f"timed out after {seconds:.0f}s waiting for {what}")
        await asyncio.sleep(0.05)


async def _ips(http: aiohttp.ClientSession, names: set[str]) -> dict[str, str]:
    listed = await request(http, "GET", "/api/v1/namespaces/default/services", None)
    found = {}
    for svc in listed["items"]:
        ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        if svc["metadata"]["name"] in names and ingress:
            found[svc["metadata"]["name"]] = ingress[0]["ip"]
    return found


async def latency(setup: Setup, http: aiohttp.ClientSession, count: int, rate: float) -> list[float]:
    """Services created at `rate`/s; seconds from each create to its route's import in BIRD."""
    created: dict[str, float] = {}
    for index in range(count):
        await request(
            http, "POST", "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices", _slice(index)
        )
        created[f"s{index}"] = time.time()
        await request(http, "POST", "/api/v1/namespaces/default/services", _service(index))
        await asyncio.sleep(1 / rate)  # pacing the load, not waiting for a result
    return await _imported(setup, http, created)


async def _imported(
    setup: Setup, http: aiohttp.ClientSession, created: dict[str, float], before: int = 0
) -> list[float]:
    """Once BIRD holds `before` + len(created) routes: seconds from each create to its import."""

    async def all_in() -> bool:
        return await setup.bird.count() >= before + len(created)

    await _until(all_in, 300, f"{len(created)} routes in BIRD")
    ips = await _ips(http, set(created))
    routes = await setup.bird.routes()
    return [routes[f"{ips[name]}/32"].imported - at for name, at in created.items()]


async def throughput(setup: Setup, http: aiohttp.ClientSession, first: int, count: int) -> float:
    """`count` Services (with EndpointSlices first) created 8 in flight; routes/s into BIRD."""
    for index in range(first, first + count):
        await request(
            http, "POST", "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices", _slice(index)
        )
    before = await setup.bird.count()
    began = time.time()

    async def one(i: int) -> None:
        await request(http, "POST", "/api/v1/namespaces/default/services", _service(first + i))

    await in_parallel(count, one)
    created = dict.fromkeys((f"s{first + i}" for i in range(count)), began)
    seconds = max(await _imported(setup, http, created, before))
    row(f"{count:,} Services: first create -> all routes in BIRD", f"{seconds:8.2f} s")
    return count / seconds


async def end_to_end(quick: bool) -> tuple[float, float]:
    count, rate, bulk = (30, 20.0, 500) if quick else (300, 20.0, 10_000)
    with tempfile.TemporaryDirectory(prefix="lbipam-bench-speaker-") as tmp:
        setup = Setup(Path(tmp))
        await setup.server.start()
        async with setup.server.session() as http:
            try:
                await setup.start(http)
                print(
                    f"end to end: API server + controller + speaker + BIRD, {count} Services at {rate:.0f}/s"
                )
                ms = [seconds * 1000 for seconds in await latency(setup, http, count, rate)]
                row("Service create -> route in BIRD, p50", f"{percentile(ms, 50):8.1f} ms")
                row("Service create -> route in BIRD, p99", f"{percentile(ms, 99):8.1f} ms")
                row("Service create -> route in BIRD, max", f"{max(ms):8.1f} ms")
                print(f"end to end: {bulk:,} Services created 8 in flight")
                e2e = await throughput(setup, http, count, bulk)
                row(f"{bulk:,} Services -> routes in BIRD", f"{e2e:8.0f} routes/s")
            finally:
                await setup.stop()
    return e2e, float(bulk)


async def main(quick: bool, e2e_only: bool = False) -> None:
    logging.basicConfig(level=logging.ERROR)
    if e2e_only:
        await end_to_end(quick)
        return
    sizes = (2000,) if quick else (10_000, 50_000)
    runs = 1 if quick else 3
    raw_rates: dict[int, float] = {}
    print(f"ExaBGP -> BIRD, loopback iBGP, median of {runs}")
    for n in sizes:
        raw_rates[n] = statistics.median([await raw_bulk(n) for _ in range(runs)])
        driver = statistics.median([(await driver_apply(n))[0] for _ in range(runs)])
        row(f"{n:,} routes: raw ExaBGP bulk", f"{raw_rates[n]:8.0f} routes/s")
        row(f"{n:,} routes: through the speaker's driver", f"{driver:8.0f} routes/s")
        row(f"{n:,} routes: driver / raw", f"{driver / raw_rates[n]:8.2f}")
    n = 2000 if quick else 10_000
    resync = [await resync_after_kill(n) for _ in range(runs)]
    row(
        f"{n:,} routes: ExaBGP killed -> all re-sent + EOR",
        f"{statistics.median(r[1] for r in resync):8.2f} s",
    )
    row(f"{n:,} routes: routes BIRD lost meanwhile (max)", f"{max(r[2] for r in resync):8d}")
    e2e, bulk = await end_to_end(quick)
    raw = raw_rates[min(raw_rates)]
    row(f"{bulk:,.0f} Services end to end / raw ExaBGP bulk", f"{e2e:8.0f} / {raw:.0f} = {e2e / raw:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one run: a smoke test")
    parser.add_argument("--e2e-only", action="store_true", help="only the end-to-end part")
    options = parser.parse_args()
    asyncio.run(main(options.quick, options.e2e_only))
