"""A pool's `status.blocks` (the `kubectl get lbpool` column) and `status.accepted.blocks`: every
block up to 1000, then the first 1000 and a count in the column, every block in `accepted` (what
the next leader serves from). `WireBlocks` writes them out once per accepted spec, and a status
write leaves out what the status carries already. Unit tests of
the pure helpers, then one pool of 1500 blocks end to end on the embedded API server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lbipam.controllers.lanes import pool_fragment
from lbipam.controllers.lbipam.poolrecord import MAX_BLOCKS_LISTED, WireBlocks, served_text
from lbipam.core.addresses import Block, parse_block
from lbipam.core.lbpools import PoolState
from lbipam.core.lbviews import PoolView
from lbipam.core.poolstatus import PoolStatusPlan
from tests.lbipam_harness import Api, Running, api_for, controller, ingress, pool, service


def singles(count: int) -> tuple[Block, ...]:
    """`count` single-address /32 blocks two apart from 10.0.0.0."""
    return tuple(parse_block(f"10.0.{2 * i >> 8}.{2 * i & 255}/32") for i in range(count))


def test_served_text_names_every_block_up_to_the_limit() -> None:
    blocks = (parse_block("192.0.2.0/24"), parse_block("198.51.100.10-198.51.100.20"))
    assert served_text(blocks) == "192.0.2.0/24, 198.51.100.10-198.51.100.20"
    exact = singles(MAX_BLOCKS_LISTED)
    assert served_text(exact).count(", ") == MAX_BLOCKS_LISTED - 1
    assert "more" not in served_text(exact)


def test_served_text_past_the_limit_names_the_first_and_counts_the_rest() -> None:
    text = served_text(singles(MAX_BLOCKS_LISTED + 7))
    assert text.startswith("10.0.0.0/32, 10.0.0.2/32, ")
    assert text.endswith(" and 7 more blocks")
    assert text.count("/32") == MAX_BLOCKS_LISTED


def test_wire_blocks_are_made_once_per_accepted_spec_and_dropped_with_the_pool() -> None:
    first = singles(3)
    view = PoolView("p", generation=1, blocks=first)
    wire = WireBlocks()
    wire.prepare({"p": PoolState(view, view)})
    served, listed = wire.get("p", first)
    assert served == "10.0.0.0/32, 10.0.0.2/32, 10.0.0.4/32"
    assert listed == [{"cidr": "10.0.0.0/32"}, {"cidr": "10.0.0.2/32"}, {"cidr": "10.0.0.4/32"}]
    assert wire.get("p", first)[1] is listed  # the same spec: written out once
    edited = (*first, parse_block("192.0.2.8-192.0.2.9"))
    assert wire.get("p", edited)[1][-1] == {"start": "192.0.2.8", "stop": "192.0.2.9"}
    wire.prepare({})
    assert wire.get("p", first)[1] is not listed  # the pool went: made anew when it comes back


def test_a_status_write_leaves_out_the_extra_fields_the_status_carries_already() -> None:
    accepted = {"blocks": [{"cidr": "10.0.0.0/32"}], "allowFirstLastIPs": False, "avoidBuggyIPs": False}
    counts = {"ipv4": {"total": "1", "used": "1", "available": "0"}}
    plan = PoolStatusPlan(
        "p", 1, (), counts, {"blocks": "10.0.0.0/32", "accepted": accepted, "heldBack": None}
    )
    status = {"blocks": "10.0.0.0/32", "accepted": dict(accepted), "heldBack": {"addresses": []}}
    fragment = pool_fragment(plan, {"status": status}, datetime.now(UTC))
    assert "blocks" not in fragment
    assert "accepted" not in fragment
    assert fragment["heldBack"] is None  # a change (here: cleared) is written
    assert fragment["ipv4"] == counts["ipv4"]
    assert pool_fragment(plan, {}, datetime.now(UTC))["accepted"] == accepted  # a first write: all of it


@pytest.fixture
async def api(kubeconfig: Path, lbipam_crds: list[str]) -> AsyncIterator[Api]:
    async with api_for(kubeconfig) as client:
        yield client


@pytest.fixture
async def ctl(kubeconfig: Path, api: Api) -> AsyncIterator[Running]:
    async with controller(kubeconfig) as running:
        yield running


async def test_a_pool_of_1500_blocks_lists_1000_in_its_column_and_accepts_all(ctl: Running, api: Api) -> None:
    blocks = [str(b) for b in singles(1500)]
    await api.make(pool("many", *blocks), service("s"))
    await ctl.settle(api)
    assert ingress(await api.svc("s")) == ["10.0.0.0"]
    status = (await api.pool("many"))["status"]
    assert status["blocks"].startswith("10.0.0.0/32, 10.0.0.2/32, ")
    assert status["blocks"].endswith(" and 500 more blocks")
    assert [b["cidr"] for b in status["accepted"]["blocks"]] == blocks
    assert status["ipv4"] == {"total": "1500", "used": "1", "available": "1499"}
