"""The allocator core as stories: each test is a sequence of steps a controller would take."""

from __future__ import annotations

import netaddr
import pytest

from lbipam.core.allocator import (
    AddressInUse,
    Allocator,
    AllocatorError,
    OutOfRange,
    PoolExhausted,
)


def nets(*texts: str) -> list[netaddr.IPNetwork]:
    return [netaddr.IPNetwork(t) for t in texts]


class TestSingleAddressesIPv4:
    def test_assign_then_another_cannot_take_it(self) -> None:
        pool = Allocator(["192.0.2.0/29"], prefixlen=32)
        assert pool.allocate("a") == netaddr.IPNetwork("192.0.2.0/32")
        with pytest.raises(AddressInUse) as err:
            pool.allocate("b", "192.0.2.0")
        assert err.value.reason == "AddressInUse"
        assert err.value.owner == "a"
        assert "192.0.2.0/32 is in use by a" in str(err.value)

    def test_same_owner_taking_its_own_address_again_is_idempotent(self) -> None:
        pool = Allocator(["192.0.2.0/29"], prefixlen=32)
        first = pool.allocate("a", "192.0.2.5")
        assert pool.allocate("a", "192.0.2.5/32") == first
        assert pool.used == 1

    def test_next_free_skips_what_was_given_explicitly(self) -> None:
        pool = Allocator(["192.0.2.0/30"], prefixlen=32)
        pool.allocate("b", "192.0.2.0")
        pool.allocate("c", "192.0.2.2")
        assert [pool.allocate(o) for o in ("d", "e")] == nets("192.0.2.1/32", "192.0.2.3/32")
        with pytest.raises(PoolExhausted) as err:
            pool.allocate("f")
        assert err.value.reason == "PoolExhausted"
        assert "192.0.2.0/30" in str(err.value)

    def test_network_and_broadcast_reserved_except_on_tiny_blocks(self) -> None:
        pool = Allocator(
            ["192.0.2.0/30", "198.51.100.8/31", "203.0.113.7/32"],
            prefixlen=32,
            reserve_network_broadcast=True,
        )
        assert pool.total == 2 + 2 + 1
        taken = [str(pool.allocate(str(i)).ip) for i in range(5)]
        assert taken == ["192.0.2.1", "192.0.2.2", "198.51.100.8", "198.51.100.9", "203.0.113.7"]
        with pytest.raises(OutOfRange, match="reserved"):
            Allocator(["192.0.2.0/30"], 32, reserve_network_broadcast=True).allocate("x", "192.0.2.3")

    def test_ranges_are_not_reserved(self) -> None:
        pool = Allocator(["192.0.2.0-192.0.2.3"], prefixlen=32, reserve_network_broadcast=True)
        assert pool.total == 4

    def test_avoid_buggy_skips_dot_zero_and_dot_255(self) -> None:
        pool = Allocator(["192.0.2.254-192.0.3.2"], prefixlen=32, avoid_buggy=True)
        assert pool.total == 3  # .254, 3.1, 3.2
        got = [str(pool.allocate(str(i)).ip) for i in range(3)]
        assert got == ["192.0.2.254", "192.0.3.1", "192.0.3.2"]
        with pytest.raises(OutOfRange, match=r"\.0 or \.255"):
            Allocator(["192.0.2.0/24"], 32, avoid_buggy=True).allocate("x", "192.0.2.255")

    def test_outside_the_pool_is_out_of_range(self) -> None:
        pool = Allocator(["192.0.2.0/24"], prefixlen=32)
        with pytest.raises(OutOfRange) as err:
            pool.allocate("a", "198.51.100.1")
        assert err.value.reason == "OutOfRange"
        with pytest.raises(OutOfRange, match="IPv6"):
            pool.allocate("a", "2001:db8::1")
        assert pool.owner("198.51.100.1") is None
        assert not pool.contains("198.51.100.1")

    def test_release_returns_owner_and_unknown_release_is_a_noop(self) -> None:
        pool = Allocator(["192.0.2.0/24"], prefixlen=32)
        pool.allocate("a", "192.0.2.9")
        assert pool.release("192.0.2.9") == "a"
        assert pool.release("192.0.2.9") is None
        assert pool.owner("192.0.2.9") is None


class TestReuseDelay:
    def test_release_a_then_the_reuse_delay_holds_it(self) -> None:
        pool = Allocator(["192.0.2.0/31"], prefixlen=32, reuse_delay=30.0)
        a = pool.allocate("a", now=0.0)
        pool.allocate("b", now=0.0)
        pool.release(a, now=100.0)
        assert (pool.used, pool.quarantined, pool.available) == (1, 1, 0)
        assert pool.next_expiry == 130.0
        with pytest.raises(PoolExhausted, match="1 held by the reuse delay"):
            pool.allocate("c", now=129.9)
        with pytest.raises(AddressInUse, match="held back until t=130"):
            pool.allocate("c", str(a.ip), now=129.9)
        assert pool.allocate("c", now=130.0) == a
        assert pool.quarantined == 0

    def test_the_same_owner_may_take_its_address_back_during_the_delay(self) -> None:
        pool = Allocator(["192.0.2.0/30"], prefixlen=32, reuse_delay=30.0)
        a = pool.allocate("a")
        pool.release(a, now=5.0)
        assert pool.allocate("a", a, now=6.0) == a
        assert (pool.used, pool.quarantined) == (1, 0)
        assert pool.next_expiry is None

    def test_the_delay_expires_without_an_allocation(self) -> None:
        pool = Allocator(["192.0.2.0/30"], prefixlen=32, reuse_delay=10.0)
        pool.release(pool.allocate("a"), now=0.0)
        pool.expire(10.0)
        assert (pool.quarantined, pool.available) == (0, 4)


class TestIPv6:
    def test_a_slash_64_of_slash_128s_is_exact_and_cheap(self) -> None:
        pool = Allocator(["2001:db8::/64"], prefixlen=128, reserve_network_broadcast=True)
        assert pool.total == 2**64 - 2
        assert pool.allocate("a") == netaddr.IPNetwork("2001:db8::1/128")
        assert pool.allocate("b", "2001:db8::ffff:ffff:ffff:fffe") == netaddr.IPNetwork(
            "2001:db8::ffff:ffff:ffff:fffe/128"
        )
        assert pool.available == 2**64 - 4
        with pytest.raises(OutOfRange, match="reserved"):
            pool.allocate("c", "2001:db8::ffff:ffff:ffff:ffff")

    def test_range_blocks_in_ipv6(self) -> None:
        pool = Allocator(["2001:db8::10-2001:db8::12"], prefixlen=128)
        assert [pool.allocate(str(i)) for i in range(3)] == nets(
            "2001:db8::10/128", "2001:db8::11/128", "2001:db8::12/128"
        )
        with pytest.raises(PoolExhausted):
            pool.allocate("x")


class TestPrefixes:
    def test_nodes_get_aligned_slash_24s_in_order(self) -> None:
        pool = Allocator(["10.0.0.0/22"], prefixlen=24)
        assert pool.total == 4
        assert [pool.allocate(n) for n in ("n1", "n2")] == nets("10.0.0.0/24", "10.0.1.0/24")
        assert pool.owner("10.0.1.77") == "n2"
        assert pool.owner(netaddr.IPNetwork("10.0.1.0/24")) == "n2"

    def test_a_given_prefix_must_be_a_whole_aligned_unit(self) -> None:
        pool = Allocator(["10.0.0.0/22"], prefixlen=24)
        with pytest.raises(ValueError, match="not a /24"):
            pool.allocate("n", "10.0.0.0/25")
        with pytest.raises(ValueError, match="host bits"):
            pool.allocate("n", "10.0.0.5/24")
        with pytest.raises(ValueError, match="single address"):
            pool.allocate("n", "10.0.0.5")
        assert pool.allocate("n", "10.0.3.0/24") == netaddr.IPNetwork("10.0.3.0/24")

    def test_ranges_contribute_only_whole_aligned_prefixes(self) -> None:
        pool = Allocator(["10.0.0.5-10.0.3.255"], prefixlen=24)
        assert pool.total == 3
        assert pool.allocate("n") == netaddr.IPNetwork("10.0.1.0/24")
        with pytest.raises(ValueError, match="no aligned /24"):
            Allocator(["10.0.0.5-10.0.0.200"], prefixlen=24)

    def test_ipv6_node_prefixes(self) -> None:
        pool = Allocator(["fd00:10:244::/56"], prefixlen=64)
        assert pool.total == 256
        assert pool.allocate("n1") == netaddr.IPNetwork("fd00:10:244::/64")
        assert pool.allocate("n2") == netaddr.IPNetwork("fd00:10:244:1::/64")

    def test_release_lets_the_lowest_prefix_be_reused(self) -> None:
        pool = Allocator(["10.0.0.0/22"], prefixlen=24)
        first = pool.allocate("n1")
        pool.allocate("n2")
        pool.release(first)
        assert pool.allocate("n3") == first


class TestGrowth:
    def test_add_blocks_grows_an_exhausted_pool_at_once(self) -> None:
        pool = Allocator(["10.0.0.0/24"], prefixlen=24)
        pool.allocate("n1")
        with pytest.raises(PoolExhausted):
            pool.allocate("n2")
        pool.add_blocks(["10.1.0.0/23"])
        assert (pool.total, pool.available) == (3, 2)
        assert pool.allocate("n2") == netaddr.IPNetwork("10.1.0.0/24")
        assert pool.owner("10.0.0.0/24") == "n1"

    @pytest.mark.parametrize(
        ("blocks", "added", "message"),
        [
            pytest.param(["10.0.0.0/16"], ["10.0.1.0/24"], "overlaps", id="overlap"),
            pytest.param(["10.0.0.0/16"], ["fd00::/64"], "IPv6", id="other-family"),
            pytest.param(["10.0.0.0/16"], ["10.1.0.0/33"], "prefix length", id="malformed"),
        ],
    )
    def test_add_blocks_refuses_bad_blocks(self, blocks: list[str], added: list[str], message: str) -> None:
        pool = Allocator(blocks, prefixlen=32)
        with pytest.raises(ValueError, match=message):
            pool.add_blocks(added)
        assert pool.total == 2**16


@pytest.mark.parametrize(
    ("blocks", "kwargs", "message"),
    [
        pytest.param([], {"prefixlen": 32}, "at least one block", id="no-blocks"),
        pytest.param(["192.0.2.0/24", "2001:db8::/64"], {"prefixlen": 32}, "IPv6", id="mixed-families"),
        pytest.param(["192.0.2.0/24", "192.0.2.128/25"], {"prefixlen": 32}, "overlaps", id="overlapping"),
        pytest.param(["192.0.2.1/24"], {"prefixlen": 32}, "host bits", id="host-bits"),
        pytest.param(["192.0.2.9-192.0.2.1"], {"prefixlen": 32}, "start is after stop", id="reversed-range"),
        pytest.param(["not-an-ip"], {"prefixlen": 32}, "not an IP address", id="garbage"),
        pytest.param(["192.0.2.0/24"], {"prefixlen": 33}, "out of range", id="prefixlen"),
        pytest.param(["192.0.2.0/24"], {"prefixlen": 24, "avoid_buggy": True}, "avoid_buggy", id="buggy-24"),
        pytest.param(["192.0.2.0/24"], {"prefixlen": 32, "reuse_delay": -1}, "negative", id="negative-delay"),
    ],
)
def test_construction_errors_say_what_is_wrong(
    blocks: list[str], kwargs: dict[str, int], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Allocator(blocks, **kwargs)  # type: ignore[arg-type]


def test_errors_share_one_base_with_stable_reasons() -> None:
    assert {cls.reason for cls in (PoolExhausted, AddressInUse, OutOfRange)} == {
        "PoolExhausted",
        "AddressInUse",
        "OutOfRange",
    }
    assert all(issubclass(cls, AllocatorError) for cls in (PoolExhausted, AddressInUse, OutOfRange))


def test_allocations_lists_everything_in_address_order() -> None:
    pool = Allocator(["192.0.2.0/24"], prefixlen=32)
    pool.allocate("b", "192.0.2.50")
    pool.allocate("a", "192.0.2.7")
    assert [(str(n), o) for n, o in pool.allocations()] == [("192.0.2.7/32", "a"), ("192.0.2.50/32", "b")]


class TestRebuildSupport:
    def test_a_rolled_back_allocation_is_free_at_once(self) -> None:
        pool = Allocator(["192.0.2.0/31"], prefixlen=32, reuse_delay=30.0)
        first = pool.allocate("a")
        pool.release(first, now=1.0, quarantine=False)
        assert (pool.quarantined, pool.allocate("b", now=1.0)) == (0, first)

    def test_holds_carry_over_to_a_rebuilt_allocator(self) -> None:
        old = Allocator(["192.0.2.0/30"], prefixlen=32, reuse_delay=30.0)
        old.release(old.allocate("a"), now=10.0)
        new = Allocator(["192.0.2.0/29"], prefixlen=32, reuse_delay=30.0)
        for net, until, owner in old.held_back():
            new.hold_back(net, until, owner)
        assert [(str(n), u, o) for n, u, o in new.held_back()] == [("192.0.2.0/32", 40.0, "a")]
        assert new.allocate("b", now=39.0) == netaddr.IPNetwork("192.0.2.1/32")
        with pytest.raises(AddressInUse, match="held back"):
            new.allocate("b", "192.0.2.0", now=39.0)
        assert new.allocate("a", "192.0.2.0", now=39.0) == netaddr.IPNetwork("192.0.2.0/32")
