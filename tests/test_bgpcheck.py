"""lbipam.core.bgpcheck: the Ready condition of BGPPeers and BGPAdvertisements, and which of two
BGPPeers toward one address a node opens (pure functions; the speaker and the controller share
them)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from lbipam.core.bgpcheck import (
    SecretRead,
    address_losses,
    contender,
    judge_advertisements,
    judge_peers,
)

Obj = dict[str, Any]
REF = {"namespace": "lbipam-system", "name": "tor-bgp"}
NODES = [("n1", {"rack": "r1"}), ("n2", {"rack": "r2"})]


def peer(name: str, created: str = "2026-01-01T00:00:00Z", address: str = "192.0.2.1", **spec: Any) -> Obj:
    body = {"peerAddress": address, "peerASN": 64512, "localASN": 64513, **spec}
    return {"metadata": {"name": name, "creationTimestamp": created}, "spec": body}


def rack(value: str) -> dict[str, Any]:
    return {"matchLabels": {"rack": value}}


def read(**values: str) -> SecretRead:
    return SecretRead(data={k: base64.b64encode(v.encode()).decode() for k, v in values.items()})


def verdicts(peers: list[Obj], secrets: dict[tuple[str, str], SecretRead] | None = None) -> dict[str, Any]:
    return {n: (v.status, v.reason, v.message) for n, v in judge_peers(peers, NODES, secrets or {}).items()}


def test_a_valid_peer_is_ready() -> None:
    assert verdicts([peer("tor")]) == {"tor": ("True", "Valid", "BGPPeer tor is valid")}


def test_a_source_address_of_the_other_family_is_invalid_spec_naming_the_field() -> None:
    status, reason, message = verdicts([peer("tor", sourceAddress="2001:db8::2")])["tor"]
    assert (status, reason) == ("False", "InvalidSpec")
    assert message.startswith("BGPPeer tor: spec.sourceAddress:"), message
    assert "IPv6" in message, message


@pytest.mark.parametrize(
    ("secret", "reason", "field"),
    [
        pytest.param(None, "SecretNotRead", "spec.passwordSecretRef:", id="not-read"),
        pytest.param(SecretRead(missing=True), "SecretNotFound", "spec.passwordSecretRef:", id="missing"),
        pytest.param(
            SecretRead(error="403 Forbidden"), "SecretUnreadable", "spec.passwordSecretRef:", id="denied"
        ),
        pytest.param(read(other="hunter2"), "SecretKeyMissing", "spec.passwordSecretRef.key:", id="no-key"),
        pytest.param(read(password="x" * 81), "InvalidPassword", "spec.passwordSecretRef:", id="too-long"),
        pytest.param(
            read(password="hunter2\nneighbor"), "InvalidPassword", "spec.passwordSecretRef:", id="newline"
        ),
    ],
)
def test_secret_problems_name_the_field_and_never_the_password(
    secret: SecretRead | None, reason: str, field: str
) -> None:
    secrets = {} if secret is None else {("lbipam-system", "tor-bgp"): secret}
    status, got, message = verdicts([peer("tor", passwordSecretRef=REF)], secrets)["tor"]
    assert (status, got) == ("False", reason)
    assert f"BGPPeer tor: {field}" in message, message
    assert "lbipam-system/tor-bgp" in message, message
    assert "hunter2" not in message, message
    assert "xxxx" not in message, message


def test_a_password_problem_gives_its_length() -> None:
    message = verdicts(
        [peer("tor", passwordSecretRef=REF)], {("lbipam-system", "tor-bgp"): read(password="y" * 81)}
    )
    assert "is 81" in message["tor"][2]


def test_a_good_password_is_ready() -> None:
    secrets = {("lbipam-system", "tor-bgp"): read(password="s3cret")}
    assert verdicts([peer("tor", passwordSecretRef=REF)], secrets)["tor"][:2] == ("True", "Valid")


def test_of_two_peers_toward_one_address_the_older_keeps_it() -> None:
    got = verdicts([peer("b", "2026-01-02T00:00:00Z"), peer("a", "2026-01-03T00:00:00Z")])
    assert got["b"][:2] == ("True", "Valid")
    status, reason, message = got["a"]
    assert (status, reason) == ("False", "AddressInUse")
    assert message == (
        "BGPPeer a: spec.peerAddress: 192.0.2.1 is kept by the older BGPPeer b on nodes n1, n2, "
        "where this session is not opened"
    )


def test_at_one_creation_time_the_name_decides() -> None:
    got = verdicts([peer("b"), peer("a")])
    assert (got["a"][1], got["b"][1]) == ("Valid", "AddressInUse")


def test_one_address_in_two_spellings_is_one_address() -> None:
    got = verdicts([peer("a", address="2001:db8::1"), peer("b", address="2001:DB8:0::1")])
    assert got["b"][1] == "AddressInUse"


def test_disjoint_node_selectors_toward_one_router_are_no_conflict() -> None:
    """One peer per node, as MetalLB users write them."""
    got = verdicts([peer("a", nodeSelector=rack("r1")), peer("b", nodeSelector=rack("r2"))])
    assert {n: v[1] for n, v in got.items()} == {"a": "Valid", "b": "Valid"}


def test_two_sessions_from_different_local_addresses_are_no_conflict() -> None:
    """The router sees two neighbours; without a sourceAddress the kernel picks one: a clash."""
    a, b = (
        peer("a", sourceAddress="192.0.2.21"),
        peer("b", "2026-01-02T00:00:00Z", sourceAddress="192.0.2.22"),
    )
    assert {n: v[1] for n, v in verdicts([a, b]).items()} == {"a": "Valid", "b": "Valid"}
    c = peer("c", "2026-01-03T00:00:00Z")
    assert {n: v[1] for n, v in verdicts([a, b, c]).items()} == {
        "a": "Valid",
        "b": "Valid",
        "c": "AddressInUse",
    }
    same = peer("d", "2026-01-04T00:00:00Z", sourceAddress="192.0.2.21")
    assert "older BGPPeer a on" in verdicts([a, b, same])["d"][2]


def test_an_older_peer_without_a_source_address_clashes_with_every_newer_one() -> None:
    """Oldest without a sourceAddress keeps it; the two with different sources both lose to it."""
    a = peer("a")
    b, c = (
        peer(n, f"2026-01-0{i}T00:00:00Z", sourceAddress=f"192.0.2.2{i}") for i, n in ((2, "b"), (3, "c"))
    )
    got = verdicts([a, b, c])
    assert {n: v[1] for n, v in got.items()} == {"a": "Valid", "b": "AddressInUse", "c": "AddressInUse"}
    assert "older BGPPeer a on" in got["c"][2]


def test_selectors_that_overlap_on_no_existing_node_are_no_conflict() -> None:
    got = judge_peers([peer("a", nodeSelector=rack("r3")), peer("b")], NODES, {})
    assert all(v.ready for v in got.values())


def test_a_peer_losing_on_one_node_only_says_which() -> None:
    got = verdicts([peer("a", nodeSelector=rack("r1")), peer("b", "2026-01-02T00:00:00Z")])
    assert got["a"][1] == "Valid"
    assert got["b"][1] == "AddressInUse"
    assert "on node n1," in got["b"][2], got["b"]


def test_an_invalid_older_peer_keeps_nothing() -> None:
    """A spec that does not validate opens nothing: the newer valid peer is not kept out."""
    got = verdicts([peer("a", sourceAddress="2001:db8::2"), peer("b", "2026-01-02T00:00:00Z")])
    assert (got["a"][1], got["b"][1]) == ("InvalidSpec", "Valid")


def test_an_older_peer_with_a_secret_problem_still_keeps_the_address() -> None:
    """Decided from the objects, not from Secrets: the session does not move when a Secret does."""
    got = verdicts([peer("a", passwordSecretRef=REF), peer("b", "2026-01-02T00:00:00Z")], {})
    assert (got["a"][1], got["b"][1]) == ("SecretNotRead", "AddressInUse")


def test_the_contest_does_not_depend_on_the_order_of_the_objects() -> None:
    peers = [peer(n, f"2026-01-0{i + 1}T00:00:00Z") for i, n in enumerate("cab")]
    assert verdicts(peers) == verdicts(list(reversed(peers)))
    assert [n for n, v in sorted(verdicts(peers).items()) if v[0] == "True"] == ["c"]


def test_the_speaker_judges_its_own_node_alone() -> None:
    contenders = [
        c
        for p in (peer("a", nodeSelector=rack("r1")), peer("b", "2026-01-02T00:00:00Z"))
        if (c := contender(p))
    ]
    assert address_losses(contenders, [("n2", {"rack": "r2"})]) == {}
    (loss,) = address_losses(contenders, [("n1", {"rack": "r1"})]).items()
    assert (loss[0], loss[1].keepers, loss[1].nodes) == ("b", ("a",), ("n1",))


def test_many_nodes_are_counted_not_listed() -> None:
    nodes: list[tuple[str, dict[str, str]]] = [(f"n{i:02}", {}) for i in range(10)]
    got = judge_peers([peer("a"), peer("b", "2026-01-02T00:00:00Z")], nodes, {})
    assert "nodes n00, n01, n02 and 7 more" in got["b"].message


def test_an_advertisement_naming_an_unknown_peer_is_peer_not_found() -> None:
    ads: list[Obj] = [
        {"metadata": {"name": "ok"}, "spec": {"peers": ["tor"]}},
        {"metadata": {"name": "typo"}, "spec": {"peers": ["tor", "tro"]}},
        {"metadata": {"name": "all"}, "spec": {}},
    ]
    got = {n: (v.status, v.reason, v.message) for n, v in judge_advertisements(ads, ["tor"]).items()}
    assert got["ok"][:2] == got["all"][:2] == ("True", "Valid")
    assert got["typo"] == (
        "False",
        "PeerNotFound",
        "BGPAdvertisement typo: spec.peers[1]: no BGPPeer is named 'tro'",
    )


def test_an_invalid_advertisement_is_invalid_spec() -> None:
    ads = [{"metadata": {"name": "bad"}, "spec": {"communities": ["graceful-shutdown"]}}]
    verdict = judge_advertisements(ads, [])["bad"]
    assert (verdict.status, verdict.reason) == ("False", "InvalidSpec")
    assert "spec.communities[0]" in verdict.message, verdict.message
    assert "65535:0" in verdict.message, verdict.message
