"""PodCIDR end to end, for every `--podcidr-target`: PodCIDRPools over time. Exhaustion (the pool,
the Node, the CiliumNode all say so) and growth by appending, which serves a waiting Node at once;
the growth rule's refusals (maskSize, a CIDR or a family in use) with InvalidChange and the old
spec still serving; removal of an unused CIDR accepted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lbipam.k8s.resources import PODCIDRPOOLS
from tests.podcidr_harness import (
    CILIUM,
    PCApi,
    controller,
    counts,
    message,
    operator_error,
    pcpool,
    reason,
    rv,
)

ALLOCATED = ("True", "Allocated")
REFUSED = ("True", "Refused")
ACCEPTED = ("False", "Accepted")


async def test_exhaustion_is_reported_and_appending_serves_the_waiting_node(
    kubeconfig: Path, api: PCApi, target: str
) -> None:
    await api.create(PODCIDRPOOLS, pcpool("p", (["192.0.2.0/28"], 28)))
    await api.join(target, "a")
    await api.join(target, "b")
    async with controller(kubeconfig, target) as ctl:
        snap = await ctl.settle(api)
        assert (snap.cidrs("a"), snap.cidrs("b")) == (("192.0.2.0/28",), ())
        full = "no free IPv4 node CIDR in PodCIDRPool(s) p"
        assert (reason(snap.node("b")), message(snap.node("b"))) == (("False", "CIDRNotAvailable"), full)
        assert await api.node_reasons("b") == [("Warning", "CIDRNotAvailable")]
        pool = snap.pool("p")
        assert reason(pool, "Exhausted") == ("True", "NoAddressesFree")
        assert message(pool, "Exhausted") == "no free address: IPv4 0 of 1 available"
        assert counts(pool) == ("1", "1", "0")
        if target in CILIUM:
            assert operator_error(snap.cn("b")) == full
        a_before = rv(snap.node("a"))

        await api.spec("p", {"ipv4": {"cidrs": ["192.0.2.0/28", "198.51.100.0/27"]}})
        snap = await ctl.settle(api)
    assert snap.cidrs("b") == ("198.51.100.0/28",)
    assert (reason(snap.node("b")), message(snap.node("b"))) == (ALLOCATED, "198.51.100.0/28 (pool p)")
    assert await api.node_reasons("b") == [("Warning", "CIDRNotAvailable"), ("Normal", "CIDRAssigned")]
    pool = snap.pool("p")
    assert (reason(pool, "Exhausted"), reason(pool, "InvalidChange")) == (
        ("False", "AddressesFree"),
        ACCEPTED,
    )
    assert counts(pool) == ("3", "2", "1")
    assert pool["status"]["observedGeneration"] == 2
    assert rv(snap.node("a")) == a_before  # the growth touched no other Node
    if target in CILIUM:
        assert operator_error(snap.cn("b")) == ""


async def test_a_mask_change_is_refused_while_in_use_and_the_old_spec_serves(
    kubeconfig: Path, api: PCApi, target: str
) -> None:
    await api.create(PODCIDRPOOLS, pcpool("p", (["192.0.2.0/26"], 28)))
    await api.join(target, "a")
    async with controller(kubeconfig, target) as ctl:
        assert (await ctl.settle(api)).cidrs("a") == ("192.0.2.0/28",)
        await api.spec("p", {"ipv4": {"maskSize": 27}})
        await api.join(target, "b")
        snap = await ctl.settle(api)
        pool = snap.pool("p")
        assert reason(pool, "InvalidChange") == REFUSED
        assert message(pool, "InvalidChange") == (
            "spec.ipv4.maskSize cannot change from 28 to 27 while 2 node(s) hold /28s from this pool; "
            "keep maskSize 28 and append a new CIDR to spec.ipv4.cidrs to grow it, or create another "
            "PodCIDRPool; still serving from the last accepted spec"
        )
        assert reason(pool, "Ready") == ("True", "Valid")  # the spec is fine; the change is not
        assert pool["status"]["observedGeneration"] == 2
        assert snap.cidrs("b") == ("192.0.2.16/28",)  # a /28: the last accepted spec serves
        assert counts(pool) == ("4", "2", "2")

        await api.spec("p", {"ipv4": {"maskSize": 28}})
        snap = await ctl.settle(api)
    assert reason(snap.pool("p"), "InvalidChange") == ACCEPTED
    assert (snap.cidrs("a"), snap.cidrs("b")) == (("192.0.2.0/28",), ("192.0.2.16/28",))


@pytest.mark.parametrize(
    ("change", "words"),
    [
        pytest.param(
            {"ipv4": {"cidrs": ["192.0.2.16/28", "192.0.2.32/28"], "maskSize": 28}},
            "spec.ipv4.cidrs: 192.0.2.0/28 cannot be removed or altered while nodes hold CIDRs from it (a); "
            "keep it and append new CIDRs to spec.ipv4.cidrs instead",
            id="remove-a-cidr-in-use",
        ),
        pytest.param(
            {"ipv4": {"cidrs": ["192.0.2.0/27", "192.0.2.32/28"], "maskSize": 28}},
            "spec.ipv4.cidrs: 192.0.2.0/28 cannot be removed or altered",
            id="alter-a-cidr-in-use",
        ),
        pytest.param(
            {"ipv4": None, "ipv6": {"cidrs": ["2001:db8::/112"], "maskSize": 120}},
            "spec.ipv4 cannot be removed while 2 node(s) hold CIDRs from it",  # a, and b joined since
            id="remove-a-family-in-use",
        ),
    ],
)
async def test_removing_what_is_in_use_is_refused(
    kubeconfig: Path, api: PCApi, target: str, change: dict[str, Any], words: str
) -> None:
    await api.create(PODCIDRPOOLS, pcpool("p", (["192.0.2.0/28", "192.0.2.16/28", "192.0.2.32/28"], 28)))
    await api.join(target, "a")
    async with controller(kubeconfig, target) as ctl:
        assert (await ctl.settle(api)).cidrs("a") == ("192.0.2.0/28",)
        await api.spec("p", change)
        await api.join(target, "b")
        snap = await ctl.settle(api)
    pool = snap.pool("p")
    assert reason(pool, "InvalidChange") == REFUSED
    assert words in message(pool, "InvalidChange")
    assert message(pool, "InvalidChange").endswith("; still serving from the last accepted spec")
    assert (snap.cidrs("a"), snap.cidrs("b")) == (("192.0.2.0/28",), ("192.0.2.16/28",))
    assert (counts(pool, 4), counts(pool, 6)) == (("3", "2", "1"), ("0", "0", "0"))


async def test_removing_an_unused_cidr_is_accepted(kubeconfig: Path, api: PCApi, target: str) -> None:
    await api.create(PODCIDRPOOLS, pcpool("p", (["192.0.2.0/28", "192.0.2.16/28", "192.0.2.32/28"], 28)))
    await api.join(target, "a")
    async with controller(kubeconfig, target) as ctl:
        snap = await ctl.settle(api)
        a_before = snap.cidrs("a")
        await api.spec("p", {"ipv4": {"cidrs": ["192.0.2.0/28", "192.0.2.32/28"]}})
        await api.join(target, "b")
        snap = await ctl.settle(api)
    pool = snap.pool("p")
    assert reason(pool, "InvalidChange") == ACCEPTED
    assert (snap.cidrs("a"), snap.cidrs("b")) == (a_before, ("192.0.2.32/28",))
    assert counts(pool) == ("2", "2", "0")
    assert reason(pool, "Exhausted") == ("True", "NoAddressesFree")
    assert reason(snap.node("a")) == ALLOCATED


async def test_a_refused_change_stays_refused_across_a_restart(
    kubeconfig: Path, api: PCApi, target: str
) -> None:
    """The accepted families live in the pool's status, so a restarted controller does not take
    the refused spec as its starting point (which would turn every Node's CIDR into a stray)."""
    await api.create(PODCIDRPOOLS, pcpool("p", (["192.0.2.0/26"], 28)))
    await api.join(target, "a")
    async with controller(kubeconfig, target) as ctl:
        assert (await ctl.settle(api)).cidrs("a") == ("192.0.2.0/28",)
        await api.spec("p", {"ipv4": {"maskSize": 29}})
        before = await ctl.settle(api)
    assert reason(before.pool("p"), "InvalidChange") == REFUSED
    assert before.pool("p")["status"]["accepted"] == {"ipv4": {"cidrs": ["192.0.2.0/26"], "maskSize": 28}}
    async with controller(kubeconfig, target, name="restarted") as ctl:
        await api.join(target, "b")
        after = await ctl.settle(api)
    assert reason(after.pool("p"), "InvalidChange") == REFUSED
    assert message(after.pool("p"), "InvalidChange").startswith(
        "spec.ipv4.maskSize cannot change from 28 to 29 while 2 node(s) hold /28s"  # a and b
    )
    assert (reason(after.node("a")), after.cidrs("a")) == (ALLOCATED, ("192.0.2.0/28",))
    assert after.cidrs("b") == ("192.0.2.16/28",)  # still a /28
    assert rv(after.node("a")) == rv(before.node("a"))


async def test_a_refused_change_is_accepted_once_the_last_holder_leaves(
    kubeconfig: Path, api: PCApi, target: str
) -> None:
    await api.create(PODCIDRPOOLS, pcpool("p", (["192.0.2.0/26"], 28)))
    await api.join(target, "a")
    async with controller(kubeconfig, target) as ctl:
        await ctl.settle(api)
        await api.spec("p", {"ipv4": {"maskSize": 29}})
        assert reason((await ctl.settle(api)).pool("p"), "InvalidChange") == REFUSED
        await api.leave("a")
        await ctl.settle(api)
        await api.join(target, "b")
        snap = await ctl.settle(api)
    pool = snap.pool("p")
    assert reason(pool, "InvalidChange") == ACCEPTED
    assert pool["status"]["accepted"] == {"ipv4": {"cidrs": ["192.0.2.0/26"], "maskSize": 29}}
    assert snap.cidrs("b") == ("192.0.2.0/29",)
    assert counts(pool) == ("8", "1", "7")


async def test_disabling_takes_effect_while_a_change_of_families_is_refused(
    kubeconfig: Path, api: PCApi, target: str
) -> None:
    await api.create(PODCIDRPOOLS, pcpool("p", (["192.0.2.0/26"], 28)))
    await api.join(target, "a")
    async with controller(kubeconfig, target) as ctl:
        await ctl.settle(api)
        await api.spec("p", {"ipv4": {"maskSize": 29}, "disabled": True})
        await api.join(target, "b")
        snap = await ctl.settle(api)
    assert reason(snap.pool("p"), "InvalidChange") == REFUSED
    assert snap.cidrs("a") == ("192.0.2.0/28",)
    assert (snap.cidrs("b"), reason(snap.node("b"))[1]) == ((), "NoPool")  # type: ignore[index]
