"""TCP MD5 from a Secret, whole stack, against BIRD and FRR:

- the session comes up only once the Secret's key holds the router's password; a missing Secret
  is reported (Event on the BGPPeer, BGPNodeState lastError) and the peer is not opened; a wrong
  password is tried and refused by the kernel; the right one, read again on the speaker's
  refresh timer, brings the session and the routes up;
- the re-add sequence: a connection attempt pending with a wrong password, the BGPPeer deleted,
  the Secret fixed, the BGPPeer created again: the session comes up;
- a non-ASCII password works, and is nowhere to be read: not in BGPNodeState, an Event, a log
  line of the speaker, nor `lbipam status` (table or JSON); neither is one refused as too long.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import sys
from pathlib import Path

import pytest

from lbipam.k8s.resources import BGPNODESTATES, BGPPEERS, EVENTS, SECRETS
from tests.bgplab import PORT
from tests.controller_harness import until
from tests.helpers import eventually
from tests.lbipam_harness import pool, service
from tests.speaker_harness import (
    BOTH_ROUTERS,
    ROOT,
    ROUTERS,
    Cluster,
    bgp_advertisement,
    bgp_peer,
    endpoint_slice,
    md5_failures,
    router_lab,
    running_speaker,
    secret,
    session_state,
    table,
)

pytestmark = [pytest.mark.e2e, BOTH_ROUTERS]
PASSWORD = "s3cret-pass"
NON_ASCII = "pässwörd-ключ-密码"  # 30 bytes of UTF-8
REF = {"namespace": "default", "name": "bgp-auth", "key": "md5"}


async def peer_state(client: Cluster) -> dict[str, object]:
    return (await client.node_state("node-a")).get("tor") or {}


async def setup(client: Cluster, router_address: str, source: str) -> str:
    await client.node("node-a", ipv4="192.0.2.21")
    await client.apply(
        pool("v4", "198.51.100.0/28"),
        bgp_peer("tor", router_address, PORT, sourceAddress=source, passwordSecretRef=REF),
        bgp_advertisement("all"),
        service("web"),
        endpoint_slice("web", "web-1", ("node-a", True)),
    )
    (ip,) = await until(lambda: client.ingress("web"), timeout=20)
    return f"{ip}/32"


@pytest.mark.parametrize("kind", ROUTERS)
async def test_the_session_comes_up_only_with_the_password_from_the_secret(
    kind: str, kubeconfig: Path, lbipam_crds: list[str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    lab = router_lab(kind, kubeconfig, tmp_path, request.node.nodeid, password=PASSWORD)
    async with lab as (bgp, client, router_address, source):
        route = await setup(client, router_address, source)
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
            await client.apply(secret("bgp-auth", md5="wrong-pass", password=PASSWORD))
            await eventually(lambda: md5_failures() > failures, timeout=20)
            assert await session_state(bgp, source) != "Established"
            assert (await peer_state(client))["state"] != "Established"

            # The right password in the key the peer names: up, and the route goes out.
            await client.patch(SECRETS, "bgp-auth", {"stringData": {"md5": PASSWORD}}, "default")
            await table(bgp, {route})

            async def up() -> bool:
                state = await peer_state(client)
                return state.get("state") == "Established" and state.get("lastError") == ""

            await until(up, timeout=20)


@pytest.mark.parametrize("kind", ROUTERS)
async def test_a_peer_deleted_and_created_again_while_a_connection_is_pending_comes_up(
    kind: str, kubeconfig: Path, lbipam_crds: list[str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    lab = router_lab(kind, kubeconfig, tmp_path, request.node.nodeid, password=PASSWORD)
    async with lab as (bgp, client, router_address, source):
        await client.apply(secret("bgp-auth", md5=PASSWORD))
        route = await setup(client, router_address, source)
        async with running_speaker(kubeconfig, "node-a", tmp_path / "speaker", secret_refresh=0.2):
            await table(bgp, {route})
            failures = md5_failures()
            await client.patch(SECRETS, "bgp-auth", {"stringData": {"md5": "wrong-pass"}}, "default")
            await eventually(lambda: md5_failures() > failures, timeout=20)  # an attempt is pending
            peer = await client.kube.get(BGPPEERS, "tor")
            await client.delete(BGPPEERS, "tor")
            await client.patch(SECRETS, "bgp-auth", {"stringData": {"md5": PASSWORD}}, "default")
            await client.apply(bgp_peer("tor", router_address, PORT, **peer["spec"]))
            await table(bgp, {route}, timeout=30)
            await until(lambda: _is(client, "Established"), timeout=20)


@pytest.mark.parametrize("kind", ROUTERS)
async def test_a_non_ascii_password_works_and_is_printed_nowhere(
    kind: str,
    kubeconfig: Path,
    lbipam_crds: list[str],
    tmp_path: Path,
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    too_long = "ä" * 41  # 82 bytes: refused, and the refusal must not quote it either
    lab = router_lab(kind, kubeconfig, tmp_path, request.node.nodeid, password=NON_ASCII)
    async with lab as (bgp, client, router_address, source):
        await client.apply(secret("bgp-auth", md5=too_long))
        route = await setup(client, router_address, source)
        async with running_speaker(kubeconfig, "node-a", tmp_path / "speaker", secret_refresh=0.2):
            await until(lambda: _has_error(client, "must be 1 to 80 bytes, is 82"), timeout=20)
            await client.patch(SECRETS, "bgp-auth", {"stringData": {"md5": NON_ASCII}}, "default")
            await table(bgp, {route}, timeout=30)
            await until(lambda: _is(client, "Established"), timeout=20)
            printed = await everything_printed(client, kubeconfig)
        printed += caplog.text + "\n".join(r.getMessage() for r in caplog.records)
        for secret_text in (NON_ASCII, too_long):
            for form in (secret_text, base64.b64encode(secret_text.encode()).decode(), secret_text[:6]):
                assert form not in printed, form


async def everything_printed(client: Cluster, kubeconfig: Path) -> str:
    """BGPNodeState, every Event, and `lbipam status` as a table and as JSON."""
    parts = [json.dumps(await client.kube.get(BGPNODESTATES, "node-a"), ensure_ascii=False)]
    parts.append(json.dumps((await client.kube.list_all(EVENTS)).items, ensure_ascii=False))
    for output in ("table", "json"):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "lbipam", "status", "--kubeconfig", str(kubeconfig), "-o", output,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=ROOT,
        )  # fmt: skip
        out, _ = await proc.communicate()
        assert proc.returncode == 0, out
        parts.append(out.decode())
    assert "tor" in parts[-2]  # the sessions are in the status table
    return "\n".join(parts)


async def _is(client: Cluster, state: str) -> bool:
    return (await peer_state(client)).get("state") == state


async def _has_error(client: Cluster, text: str) -> bool:
    return text in str((await peer_state(client)).get("lastError", ""))
