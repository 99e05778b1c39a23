"""The pure rules about sessions: the reconnect back-off, what a router's NOTIFICATION says, the
refusal as one problem, `since` that moves only with `state`, and the text kept out of logs."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bgp import routes
from bgp.exabgp import _blocks, redact
from bgp.nodestate import keep_since, session_problems
from bgp.session import PeerSession, Reconnect, check_peers, describe_notification
from bgp.views import PeerView, RouteAttributes


def test_back_off_is_nothing_once_then_doubles_with_jitter_up_to_the_ceiling() -> None:
    reconnect = Reconnect(base=1.0, cap=60.0, stable=30.0, jitter=0.25)
    rng = random.Random(7)
    delays = [reconnect.down(at=float(i), rng=rng) for i in range(9)]
    assert delays[0] == 0.0  # a router restart: back at once
    for failures, delay in enumerate(delays[1:], start=2):
        ceiling = min(60.0, 2.0 ** (failures - 2))
        assert 0.75 * ceiling <= delay <= ceiling
    assert delays[-1] <= 60.0


def test_a_session_that_stays_up_forgets_its_failures() -> None:
    reconnect = Reconnect(base=1.0, stable=30.0)
    for at in range(4):
        reconnect.down(float(at))
    reconnect.up(10.0)
    assert not reconnect.settled(20.0)  # up for 10 s: still flapping
    assert reconnect.down(21.0) > 0
    reconnect.up(30.0)
    assert reconnect.settled(61.0)
    assert reconnect.down(62.0) == 0.0


@given(st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), max_size=40), st.integers(0, 2**32))
def test_back_off_never_exceeds_the_ceiling(times: list[float], seed: int) -> None:
    reconnect, rng = Reconnect(base=0.5, cap=20.0), random.Random(seed)
    for at in sorted(times):
        assert 0.0 <= reconnect.down(at, rng) <= 20.0


@pytest.mark.parametrize(
    ("code", "subcode", "data", "said"),
    [
        pytest.param(
            3,
            8,
            "0x4003047F4D0102",
            "NOTIFICATION 3/8 (UPDATE Message Error / Invalid NEXT_HOP Attribute), data 0x4003047F4D0102",
            id="invalid-next-hop",
        ),
        pytest.param(
            6, 1, "", "NOTIFICATION 6/1 (Cease / Maximum Number of Prefixes Reached)", id="max-prefixes"
        ),
        pytest.param(
            6,
            2,
            "0x" + (bytes([11]) + b"maintenance").hex(),
            'NOTIFICATION 6/2 (Cease / Administrative Shutdown): "maintenance"',
            id="shutdown-message",
        ),
        pytest.param(
            6,
            4,
            "0x" + (bytes([2]) + b"\x1b[").hex(),
            'NOTIFICATION 6/4 (Cease / Administrative Reset): "?["',
            id="control-characters-replaced",
        ),
        pytest.param(
            6,
            2,
            "0x00FF",
            "NOTIFICATION 6/2 (Cease / Administrative Shutdown), data 0x00FF",
            id="not-a-shutdown-message",
        ),
        pytest.param(9, 9, "zz", "NOTIFICATION 9/9 (unknown error)", id="unknown-and-bad-hex"),
        pytest.param(
            4,
            0,
            "0x" + "AB" * 40,
            "NOTIFICATION 4/0 (Hold Timer Expired), data 0x" + "AB" * 32 + "...",
            id="long-data-cut",
        ),
    ],
)
def test_a_notification_is_described_for_people(code: int, subcode: int, data: str, said: str) -> None:
    assert describe_notification(code, subcode, data) == said


@dataclass(frozen=True)
class FakeSession:
    address: str = "192.0.2.1"
    state: str = "Established"
    since: None = None
    advertised: int = 0
    last_error: str = ""
    refusal: str = ""


def test_a_refusal_is_one_problem_of_the_peer() -> None:
    sessions = {"tor": FakeSession(refusal="NOTIFICATION 3/8 (x)"), "calm": FakeSession()}
    (problem,) = session_problems(sessions)
    assert (problem.kind, problem.name, problem.reason) == ("BGPPeer", "tor", "NotificationReceived")
    assert problem.message == "the router at 192.0.2.1 ended the session: NOTIFICATION 3/8 (x)"


@pytest.mark.parametrize(
    ("written", "new", "since"),
    [
        pytest.param(
            {"state": "Active", "since": "t1"}, {"state": "Active", "since": "t3"}, "t1", id="same-state"
        ),
        pytest.param(
            {"state": "Active", "since": "t1"}, {"state": "Established", "since": "t3"}, "t3", id="new-state"
        ),
        pytest.param(None, {"state": "Active", "since": "t3"}, "t3", id="first-write"),
    ],
)
def test_since_moves_only_with_state(written: dict[str, str] | None, new: dict[str, str], since: str) -> None:
    before = {"tor": {"name": "tor", **written}} if written else {}
    (entry,) = keep_since([{"name": "tor", **new}], before)
    assert entry["since"] == since


def test_a_peer_session_says_everything_that_is_wrong() -> None:
    peer = PeerSession(PeerView("tor", "192.0.2.1", 1, 1), "192.0.2.1", refusal="NOTIFICATION 3/8 (x)")
    peer.holds["hold"] = "BFD Down"
    info = peer.info()
    assert info.last_error == "the router refused the session: NOTIFICATION 3/8 (x); held down: BFD Down"
    assert peer.set_state("Active")
    assert not peer.set_state("Active")


def test_two_peers_with_one_address_open_once() -> None:
    first, second = PeerView("a", "192.0.2.1", 1, 2), PeerView("b", "192.0.2.1", 1, 2)
    wanted, refused = check_peers([first, second], "192.0.2.9", {})
    assert list(wanted) == ["a"]
    assert refused["b"].last_error == "peerAddress: already used by BGPPeer a"


def test_next_hop_self_on_a_session_of_the_other_family_is_refused() -> None:
    plan = {"198.51.100.1/32": RouteAttributes("self"), "2001:db8::1/128": RouteAttributes("self")}
    wanted, errors = routes.desired(
        plan, ("ipv4-unicast", "ipv6-unicast"), routes.Checked(), session="2001:db8::fe"
    )
    assert set(wanted) == {"2001:db8::1/128"}
    assert errors == ["route 198.51.100.1/32: no next hop of its family on this session (not the router ID)"]


def test_passwords_are_kept_out_of_exabgps_output() -> None:
    config = 'neighbor 192.0.2.1 {\n    md5-password "cMOkc3M=";\n}\n'
    said = 'error line 2: md5-password "cMOkc3M=" is not valid (cMOkc3M=)'
    assert "cMOkc3M=" not in redact(said, config)
    assert redact("md5-password other;", "") == "md5-password <redacted>;"


def test_a_configuration_splits_into_its_blocks() -> None:
    config = "process p {\n    run x;\n}\nneighbor 192.0.2.1 {\n    a;\n}\nneighbor 192.0.2.2 {\n    b;\n}\n"
    assert _blocks(config) == [
        "process p {\n    run x;\n}",
        "neighbor 192.0.2.1 {\n    a;\n}",
        "neighbor 192.0.2.2 {\n    b;\n}",
    ]
    assert _blocks("process p {\n    run x;\n}\n") == ["process p {\n    run x;\n}"]
