"""The speaker's metrics over real HTTP, end to end: with the controller giving a Service its IP
and the speaker announcing it to a real BIRD, /metrics says the session is up and how many routes
go to the peer; /readyz is 200 once the first plan is applied; withdrawing moves the count."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from lbipam.k8s.resources import ENDPOINTSLICES
from lbipam.observe.metrics import speaker_registry
from lbipam.observe.server import ObserveServer
from tests.bgplab import PORT, have
from tests.controller_harness import until
from tests.lbipam_harness import pool, service
from tests.speaker_harness import (
    addresses,
    bgp_advertisement,
    bgp_peer,
    bird,
    endpoint_slice,
    running_speaker,
    table,
    world,
)

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not have("bird", "birdc"), reason="needs BIRD 2")]


async def scrape(url: str) -> dict[tuple[str, str], float]:
    """(metric name, peer label) -> value."""
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as response:
        assert response.status == 200
        text = await response.text()
    return {
        (sample.name, sample.labels.get("peer", "")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("lbipam_bgp_")
    }


async def test_session_and_route_counts_are_exported(
    kubeconfig: Path, lbipam_crds: list[str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    router, (source,) = addresses(request.node.nodeid)
    async with bird(tmp_path / "bird", router, source) as bgp, world(kubeconfig) as client:
        await client.node("node-a", ipv4="192.0.2.31")
        await client.apply(
            pool("v4", "198.51.100.0/28"),
            bgp_peer("tor", router, PORT, sourceAddress=source),
            bgp_advertisement("all"),
            service("web"),
            service("db"),
            endpoint_slice("web", "web-1", ("node-a", True)),
            endpoint_slice("db", "db-1", ("node-a", True)),
        )
        async with running_speaker(kubeconfig, "node-a", tmp_path / "speaker") as running:
            server = ObserveServer(speaker_registry(running.speaker.peer_metrics), running.speaker.is_ready)
            await server.start()
            try:
                await table(bgp, {f"{ip}/32" for name in ("web", "db") for ip in await client.ingress(name)})

                async def exported(routes: float) -> dict[tuple[str, str], float] | None:
                    values = await scrape(server.url)
                    up = values.get(("lbipam_bgp_session_up", "tor"))
                    announced = values.get(("lbipam_bgp_routes_announced", "tor"))
                    return values if (up, announced) == (1.0, routes) else None

                await until(lambda: exported(2.0), timeout=20)
                async with aiohttp.ClientSession() as http, http.get(f"{server.url}/readyz") as ready:
                    assert ready.status == 200
                await client.delete(ENDPOINTSLICES, "db-1", "default")
                await until(lambda: exported(1.0), timeout=20)
            finally:
                await server.stop()
