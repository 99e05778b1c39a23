"""`lbipam speaker` as its own process: it serves its metrics and readiness; a relative
`--runtime-dir` is taken from where it was started, one it cannot use is refused in one line;
on SIGTERM with its Node cordoned (a drain) it withdraws every route before it exits 0.
Graceful restart is on at both ends, so had the speaker merely stopped ExaBGP, BIRD would keep the
routes as stale for the restart time (60 s): an empty table the moment the process is gone means
the withdraws went out first."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import aiohttp
import pytest

from lbipam.k8s.resources import NODES
from tests.bgplab import PORT, Bird, have
from tests.controller_harness import until
from tests.daemon import free_port
from tests.lbipam_harness import pool, service
from tests.process_harness import ROOT, SpeakerProcess
from tests.speaker_harness import (
    addresses,
    bgp_advertisement,
    bgp_peer,
    bird,
    endpoint_slice,
    table,
    world,
)

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not have("bird", "birdc"), reason="needs BIRD 2")]


async def scrape(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


def sample(metrics: str, name: str, peer: str) -> float | None:
    found = re.search(rf'^{name}{{peer="{peer}"}} (\S+)$', metrics, re.MULTILINE)
    return float(found.group(1)) if found else None


async def test_sigterm_on_a_cordoned_node_withdraws_every_route_before_the_process_exits(
    kubeconfig: Path, lbipam_crds: list[str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    router, (source,) = addresses(request.node.nodeid)
    restart = {"enabled": True, "restartTime": 60}
    async with bird(tmp_path / "bird", router, source) as bgp, world(kubeconfig) as client:
        await client.node("node-a", ipv4="192.0.2.21")
        await client.apply(
            pool("v4", "198.51.100.0/28"),
            bgp_peer("tor", router, PORT, sourceAddress=source, gracefulRestart=restart),
            bgp_advertisement("all"),
            service("web"),
            service("api"),
            endpoint_slice("web", "web-1", ("node-a", True)),
            endpoint_slice("api", "api-1", ("node-a", True)),
        )
        ips = [*await until(lambda: client.ingress("web")), *await until(lambda: client.ingress("api"))]
        port = free_port()
        speaker = await SpeakerProcess.start(
            kubeconfig, "node-a", Path("run/speaker"), tmp_path / "speaker.log", "--metrics-port", str(port),
            cwd=tmp_path,
        )  # fmt: skip
        try:
            await table(bgp, {f"{ip}/32" for ip in ips})
            protocol = await bgp.birdc("show", "protocols", "all", "speaker")
            # The speaker's restart time (60 s) among the capabilities BIRD received.
            assert re.search(r"Neighbor cap(?s:.*)Graceful restart\s+Restart time: 60\n", protocol), protocol

            base = f"http://127.0.0.1:{port}"
            assert await scrape(f"{base}/readyz") == (200, "ok\n")

            async def metrics() -> str | None:
                status, text = await scrape(f"{base}/metrics")
                up = sample(text, "lbipam_bgp_session_up", "tor")
                routes = sample(text, "lbipam_bgp_routes_announced", "tor")
                return text if status == 200 and (up, routes) == (1.0, 2.0) else None

            await until(metrics, timeout=20)
            assert (tmp_path / "run" / "speaker" / "exabgp.conf").exists()  # relative to where it ran

            await client.patch(NODES, "node-a", {"spec": {"unschedulable": True}})  # cordoned
            await until(lambda: _carry_graceful_shutdown(bgp), timeout=20)
            assert await speaker.terminate() == 0, speaker.output()
            assert await bgp.routes() == {}, speaker.output()
            assert "routes withdrawn, ExaBGP stopped" in speaker.output()
        finally:
            await speaker.kill()


async def _carry_graceful_shutdown(bgp: Bird) -> bool:
    found = await bgp.routes()
    return bool(found) and all("65535:0" in route.communities for route in found.values())


@pytest.mark.parametrize(
    "where", [pytest.param("file", id="a-file"), pytest.param("file/below", id="below-a-file")]
)
async def test_an_unusable_runtime_dir_is_refused_in_one_line(where: str, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    target = tmp_path / where
    argv = ["-m", "lbipam", "speaker", "--node", "n", "--kubeconfig", str(tmp_path / "none"), "--runtime-dir"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *argv, str(target), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )  # fmt: skip
    _, err = await proc.communicate()
    lines = err.decode().splitlines()
    assert proc.returncode == 2
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"lbipam speaker: --runtime-dir {target}: cannot be created: ")
