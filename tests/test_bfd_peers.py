"""Which BGP sessions BFD holds down, and which BFD sessions the speaker asks for."""

from __future__ import annotations

import itertools

import pytest

from bgp.bfd.client import BfdClient, BfdState
from bgp.bfdpeers import BfdPeers, bfd_sessions
from bgp.nodestate import peer_entries
from bgp.views import BfdView, NodeInfo, PeerView


def peer(name: str, **changes: object) -> PeerView:
    fields: dict[str, object] = {"name": name, "address": "192.0.2.1", "asn": 65000, "local_asn": 65001}
    fields.update(changes)
    return PeerView(**fields)  # type: ignore[arg-type]


def test_sessions_only_for_peers_with_bfd_single_or_multihop() -> None:
    peers = [
        peer("plain"),
        peer("tor", bfd=BfdView(100, 200, 5), source="192.0.2.11"),
        peer("far", address="198.51.100.1", multihop=4, bfd=BfdView()),
    ]
    assert bfd_sessions(peers) == [
        {"name": "far", "peer": "198.51.100.1", "local": None, "multihop": True,
         "minTxMs": 300, "minRxMs": 300, "multiplier": 3},
        {"name": "tor", "peer": "192.0.2.1", "local": "192.0.2.11", "multihop": False,
         "minTxMs": 200, "minRxMs": 100, "multiplier": 5},
    ]  # fmt: skip


# (state, remote state) reported in turn -> held after the last one
SEQUENCES = [
    pytest.param([("Down", "Down"), ("Init", "Down")], False, id="never-up-not-held"),
    pytest.param([("Up", "Up")], False, id="up"),
    pytest.param([("Up", "Up"), ("Down", "Up")], True, id="up-then-silent-held"),
    pytest.param([("Up", "Up"), ("Down", "Down")], True, id="router-said-down-held"),
    pytest.param([("Up", "Up"), ("Down", "AdminDown")], False, id="router-admin-down-not-a-failure"),
    pytest.param([("Up", "Up"), ("Down", "Up"), ("Init", "Down")], True, id="held-until-up"),
    pytest.param([("Up", "Up"), ("Down", "Up"), ("Up", "Up")], False, id="released-when-up"),
]


@pytest.mark.parametrize(("reports", "held"), SEQUENCES)
def test_hold_down_follows_bfd(reports: list[tuple[str, str]], held: bool) -> None:
    client = BfdClient()
    bfd = BfdPeers(client)
    holds: list[frozenset[str]] = []
    bfd.on_hold = lambda: holds.append(bfd.held())
    bfd.configure([peer("tor", bfd=BfdView())])
    for state, remote in reports:
        client.states["tor"] = BfdState("tor", "192.0.2.1", "192.0.2.11", state, remote_state=remote)
        client.on_change("tor")  # type: ignore[misc]
    assert ("tor" in bfd.held()) is held
    assert bfd.changes["tor"][reports[-1][0]] >= 1
    assert all(a != b for a, b in itertools.pairwise(holds))  # told only of changes


def test_a_peer_that_drops_bfd_is_released() -> None:
    client = BfdClient()
    bfd = BfdPeers(client)
    bfd.configure([peer("tor", bfd=BfdView())])
    for state in ("Up", "Down"):
        client.states["tor"] = BfdState("tor", "192.0.2.1", "192.0.2.11", state, remote_state="Up")
        client.on_change("tor")  # type: ignore[misc]
    assert bfd.held() == {"tor"}
    bfd.configure([peer("tor")])  # spec.bfd.enabled: false
    assert bfd.held() == frozenset()
    assert bfd.states() == {}


def test_nodestate_shows_bfd_only_for_peers_with_bfd_enabled() -> None:
    node = NodeInfo(name="n1")
    peers = [peer("plain"), peer("tor", bfd=BfdView()), peer("new", bfd=BfdView())]
    entries = peer_entries(node, peers, {}, bfd={"tor": "Up", "plain": "Up"})
    by_name = {e["name"]: e for e in entries}
    assert "bfd" not in by_name["plain"]
    assert by_name["tor"]["bfd"] == "Up"
    assert by_name["new"]["bfd"] == "Down"  # no BFD report yet
