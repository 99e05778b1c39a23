"""TCP MD5 from a Secret: the BGPPeer names a Secret key; the session comes up only once that key
holds BIRD's password. A missing Secret is reported (Event on the BGPPeer, BGPNodeState lastError)
and the peer is not opened; a wrong password is tried and refused by the kernel; the right one,
read again on the speaker's refresh timer, brings the session and the routes up."""

from __future__ import annotations

from pathlib import Path

import pytest

from lbipam.k8s.resources import SECRETS
from tests.bgplab import PORT, Bird, have
from tests.controller_harness import until
from tests.helpers import eventually
from tests.lbipam_harness import pool, service
from tests.speaker_harness import (
    Cluster,
    addresses,
    bgp_advertisement,
    bgp_peer,
    bird,
    endpoint_slice,
    md5_failures,
    running_speaker,
    secret,
    table,
    world,
)

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not have("bird", "birdc"), reason="needs BIRD 2")]
PASSWORD = "s3cret pass"


async def peer_state(client: Cluster) -> dict[str, object]:
    return (await client.node_state("node-a")).get("tor") or {}


async def established(router: Bird) -> bool:
    return await router.state() == "Established"


async def test_md5_session_comes_up_only_with_the_password_from_the_secret(
    kubeconfig: Path, lbipam_crds: list[str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    router, (source,) = addresses(request.node.nodeid)
    ref = {"namespace": "default", "name": "bgp-auth", "key": "md5"}
    async with bird(tmp_path / "bird", router, source, password=PASSWORD) as bgp, world(kubeconfig) as client:
        await client.node("node-a", ipv4="192.0.2.21")
        await client.apply(
            pool("v4", "198.51.100.0/28"),
            bgp_peer("tor", router, PORT, sourceAddress=source, passwordSecretRef=ref),
            bgp_advertisement("all"),
            service("web"),
            endpoint_slice("web", "web-1", ("node-a", True)),
        )
        (ip,) = await until(lambda: client.ingress("web"), timeout=20)
        async with running_speaker(kubeconfig, "node-a", tmp_path / "speaker", secret_refresh=0.2) as speaker:
            # No Secret: reported, and the session is not even tried.
            events = await until(lambda: client.speaker_events("tor"), timeout=20)
            assert events == [("SecretNotFound", "spec.passwordSecretRef: Secret default/bgp-auth not found")]
            state = await until(lambda: peer_state(client), timeout=20)
            assert state["state"] == "Idle"
            assert "Secret default/bgp-auth not found" in str(state["lastError"])
            assert "tor" not in speaker.speaker.driver.sessions()

            # The wrong password: tried (the kernel drops the signed SYNs), never established.
            failures = md5_failures()
            await client.apply(secret("bgp-auth", md5="wrong pass", password=PASSWORD))
            await eventually(lambda: md5_failures() > failures, timeout=20)
            assert not await established(bgp)
            assert await bgp.routes() == {}
            assert (await peer_state(client))["state"] != "Established"

            # The right password in the key the peer names: up, and the route goes out.
            await client.patch(SECRETS, "bgp-auth", {"stringData": {"md5": PASSWORD}}, "default")
            await table(bgp, {f"{ip}/32"})
            assert await established(bgp)

            async def up() -> bool:
                state = await peer_state(client)
                return state.get("state") == "Established" and state.get("lastError") == ""

            await until(up, timeout=20)
            assert ("SecretNotFound", "spec.passwordSecretRef: Secret default/bgp-auth not found") in (
                await client.speaker_events("tor")
            )
