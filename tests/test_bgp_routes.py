"""bgp.routes, the driver's pure half: which routes to send, the difference with what ExaBGP
acknowledged, the commands (bulk when worth it), and how answers update the acknowledged state."""

from __future__ import annotations

import asyncio

import pytest

from bgp import routes
from bgp.exabgp_channel import ChannelDown, CommandFailed
from bgp.views import RouteAttributes

A = RouteAttributes("self", ("64512:100",))
B = RouteAttributes("self", ("64512:200",), med=5)
V6 = RouteAttributes("2001:db8::1")
BOTH = ("ipv4-unicast", "ipv6-unicast")


def test_desired_keeps_valid_routes_of_the_peers_families_by_canonical_prefix() -> None:
    plan = {
        "192.0.2.1/32": A,
        "2001:DB8::1/128": V6,
        "192.0.2.2/32": RouteAttributes("self", ("64512:1\nshutdown",)),
        "192.0.2.300/32": A,
    }
    wanted, errors = routes.desired(plan, BOTH, routes.Checked())
    assert wanted == {"192.0.2.1/32": A, "2001:db8::1/128": V6}
    assert len(errors) == 2
    assert "route 192.0.2.2/32: community" in errors[0]
    assert routes.summary(errors).endswith("(and 1 more)")
    v4_only, _ = routes.desired(plan, ("ipv4-unicast",), routes.Checked())
    assert set(v4_only) == {"192.0.2.1/32"}


def test_checked_names_each_route_in_a_shared_attribute_error() -> None:
    bad = RouteAttributes("self", ("nonsense",))
    _, errors = routes.desired({"192.0.2.1/32": bad, "192.0.2.2/32": bad}, BOTH, routes.Checked())
    assert errors[0].startswith("route 192.0.2.1/32")
    assert errors[1].startswith("route 192.0.2.2/32")


@pytest.mark.parametrize(
    ("sent", "unsure", "wanted", "full", "stale", "changed"),
    [
        pytest.param({}, set(), {"p1": A}, False, [], {"p1": A}, id="new-route"),
        pytest.param({"p1": A}, set(), {"p1": A}, False, [], {}, id="unchanged"),
        pytest.param({"p1": A}, set(), {"p1": B}, False, [], {"p1": B}, id="new-attributes"),
        pytest.param({"p1": A}, set(), {}, False, ["p1"], {}, id="removed"),
        pytest.param({"p1": A}, {"p1"}, {"p1": A}, False, [], {"p1": A}, id="unsure-resent"),
        pytest.param({}, {"p2"}, {}, False, ["p2"], {}, id="unsure-withdrawn"),
        pytest.param({"p1": A}, set(), {"p1": A}, True, [], {"p1": A}, id="full-resends-all"),
    ],
)
def test_difference(
    sent: dict[str, RouteAttributes],
    unsure: set[str],
    wanted: dict[str, RouteAttributes],
    full: bool,
    stale: list[str],
    changed: dict[str, RouteAttributes],
) -> None:
    assert routes.difference(sent, unsure, wanted, full=full) == (stale, changed)


def test_announcements_go_in_bulk_per_family_and_attributes() -> None:
    wanted = {f"192.0.2.{i}/32": A for i in range(10)} | {"192.0.2.100/32": B} | {"2001:db8::1/128": V6}
    commands = list(routes.announcements("192.0.2.254", wanted, bulk_min=8, bulk_size=4))
    bulk = [c for c in commands if " announce attributes " in c[0]]
    single = [c for c in commands if " announce route " in c[0]]
    assert [len(prefixes) for _, prefixes, _ in bulk] == [4, 4, 2]
    assert sorted(p for _, prefixes, _ in single for p in prefixes) == ["192.0.2.100/32", "2001:db8::1/128"]
    assert all(attrs == A for _, _, attrs in bulk)


def test_withdrawals_split_families() -> None:
    commands = list(routes.withdrawals("192.0.2.254", ["192.0.2.1/32", "2001:db8::1/128"], 1, 100))
    assert [c[0].split(" nlri ")[1] for c in commands] == ["192.0.2.1/32", "2001:db8::1/128"]
    assert all(attrs is None for _, _, attrs in commands)


async def test_recorder_updates_the_acknowledged_state() -> None:
    loop = asyncio.get_running_loop()
    sent: dict[str, RouteAttributes] = {"old": A}
    unsure = {"a", "b", "old", "c", "d"}
    errors: list[str] = []
    answers = [loop.create_future() for _ in range(4)]
    answers[0].add_done_callback(routes.recorder(sent, unsure, ["a", "b"], B, errors))
    answers[1].add_done_callback(routes.recorder(sent, unsure, ["old"], None, errors))
    answers[2].add_done_callback(routes.recorder(sent, unsure, ["c"], A, errors))
    answers[3].add_done_callback(routes.recorder(sent, unsure, ["d"], A, errors))
    answers[0].set_result([])
    answers[1].set_result([])
    answers[2].set_exception(CommandFailed("refused"))
    answers[3].set_exception(ChannelDown("gone"))
    await asyncio.gather(*answers, return_exceptions=True)
    assert sent == {"a": B, "b": B}  # announced, withdrawn; the refused one changed nothing
    assert unsure == {"d"}  # its answer was lost: it may or may not have been announced
    assert errors == ["refused"]
