"""What a LoadBalancerIPPool's status records for the next controller, and reading it back.

- `status.accepted`: the address spec the pool serves from (blocks, allowFirstLastIPs,
  avoidBuggyIPs, and the generation it was accepted at). While the spec is invalid, a restarted
  controller, a new leader and the speakers serve from it, so an invalid edit changes nothing.
- `status.blocks` (`served_text`): the blocks for `kubectl get lbpool`, at most
  MAX_BLOCKS_LISTED of them; `WireBlocks` makes it and the accepted blocks once per spec.
- `status.heldBack`: released addresses the reuse delay still holds back (`lbipam.core.lbreuse`
  decides what each pool lists), with wall-clock end times: a restarted controller or a new leader
  holds them back too. The planner runs on a monotonic clock; `Clocks` converts with one offset
  taken when leading began, so the times written do not jitter from one write to the next. Across
  a failover the two leaders' wall clocks must agree (NTP), as Leases already require.

Used by the LB-IPAM controller (writing, and reading at start-up) and its converter (`recorded`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import netaddr
import pydantic

from lbipam.api.lbpool import AcceptedAddresses, HeldBack
from lbipam.core.addresses import Block, ip_version
from lbipam.core.lbpools import PoolState
from lbipam.core.lbreuse import Held, Listing
from lbipam.core.lbviews import Addresses
from lbipam.k8s.times import now as wall_clock
from lbipam.k8s.times import parse_time, rfc3339

Obj = Mapping[str, Any]


@dataclass(frozen=True)
class Clocks:
    """The planner's monotonic clock and the wall clock, tied by one offset."""

    monotonic: Callable[[], float] = time.monotonic
    offset: float = field(default=0.0)

    @classmethod
    def now(cls, monotonic: Callable[[], float] = time.monotonic) -> Clocks:
        return cls(monotonic, wall_clock().timestamp() - monotonic())

    def wall(self, at: float) -> str:
        """A planner time as RFC 3339, rounded up to the second (a delay is never shortened)."""
        return rfc3339(datetime.fromtimestamp(math.ceil(at + self.offset), UTC))

    def planner_time(self, text: str) -> float:
        """An RFC 3339 time as a planner time; ValueError when malformed."""
        return parse_time(text).timestamp() - self.offset


# ---- status.accepted --------------------------------------------------------------------------
MAX_BLOCKS_LISTED = 1000  # blocks `status.blocks` names before "and N more blocks"


def _wire_block(block: Block) -> dict[str, str]:
    if block.prefixlen is not None:
        return {"cidr": str(block)}
    version = ip_version(block.version)
    start, stop = netaddr.IPAddress(block.first, version), netaddr.IPAddress(block.last, version)
    return {"start": str(start), "stop": str(stop)}


def served_text(blocks: Sequence[Block]) -> str:
    """`status.blocks`: the blocks for `kubectl get lbpool`, comma-separated; past
    MAX_BLOCKS_LISTED, the first ones and a count (the status of a pool of 100,000 blocks would
    not fit in a request otherwise)."""
    shown = ", ".join(str(b) for b in blocks[:MAX_BLOCKS_LISTED])
    more = len(blocks) - MAX_BLOCKS_LISTED
    return f"{shown} and {more} more blocks" if more > 0 else shown


class WireBlocks:
    """Each pool's `status.blocks` text and `status.accepted.blocks` list, made once per accepted
    spec: for a pool of 100,000 blocks that takes a second, so the controller makes them in the
    worker thread when it sets the pools (`prepare`), and every status write reuses them."""

    def __init__(self) -> None:
        self._made: dict[str, tuple[tuple[Block, ...], str, list[dict[str, str]]]] = {}

    def prepare(self, pools: Mapping[str, PoolState]) -> None:
        for name in self._made.keys() - pools.keys():
            del self._made[name]
        for name, state in pools.items():
            if state.accepted is not None:
                self.get(name, state.accepted.blocks)

    def get(self, name: str, blocks: tuple[Block, ...]) -> tuple[str, list[dict[str, str]]]:
        """(status.blocks, status.accepted.blocks) of the pool `name` serving from `blocks`."""
        made = self._made.get(name)
        if made is None or made[0] is not blocks:
            made = (blocks, served_text(blocks), [_wire_block(b) for b in blocks])
            self._made[name] = made
        return made[1], made[2]


def accepted_status(state: PoolState, wire: list[dict[str, str]] | None = None) -> dict[str, Any] | None:
    """`status.accepted` of a pool (None: it serves from nothing); `wire`: its blocks written
    out already (`WireBlocks`)."""
    accepted = state.accepted
    if accepted is None:
        return None
    out: dict[str, Any] = {
        "blocks": wire if wire is not None else [_wire_block(b) for b in accepted.blocks],
        "allowFirstLastIPs": accepted.allow_first_last,
        "avoidBuggyIPs": accepted.avoid_buggy,
    }
    if accepted.generation:
        out["generation"] = accepted.generation
    return out


def recorded(obj: Obj) -> Addresses | None:
    """The address spec `status.accepted` records, or None (absent, or not readable)."""
    accepted = (obj.get("status") or {}).get("accepted")
    if not isinstance(accepted, Mapping):
        return None
    try:
        spec = AcceptedAddresses.model_validate(accepted)
    except pydantic.ValidationError:
        return None
    return Addresses(
        tuple(b.block() for b in spec.blocks),
        spec.allow_first_last_ips,
        spec.avoid_buggy_ips,
        spec.generation or 0,
    )


# ---- status.heldBack --------------------------------------------------------------------------
def held_status(listing: Listing, clocks: Clocks) -> dict[str, Any] | None:
    """`status.heldBack` for what a pool lists (None: nothing held back)."""
    if not listing.held and not listing.omitted:
        return None
    addresses = []
    for held in listing.held:
        entry = {"ip": held.ip, "until": clocks.wall(held.until)}
        if held.owner:
            entry["service"] = held.owner
        addresses.append(entry)
    out: dict[str, Any] = {"addresses": addresses}
    if listing.omitted:
        out["omitted"] = listing.omitted
        if listing.omitted_until is not None:
            out["omittedUntil"] = clocks.wall(listing.omitted_until)
    return out


def read_held(pools: Iterable[Obj], clocks: Clocks) -> tuple[list[Held], dict[str, tuple[float, int]]]:
    """What the pools' status holds back: the addresses, and per pool the ones left unlisted
    (until, count). What cannot be read is skipped: the status is ours, but anyone may edit it."""
    held: list[Held] = []
    pauses: dict[str, tuple[float, int]] = {}
    for obj in pools:
        name = str((obj.get("metadata") or {}).get("name", ""))
        raw = (obj.get("status") or {}).get("heldBack")
        try:
            record = HeldBack.model_validate(raw)
        except pydantic.ValidationError:
            continue
        for entry in record.addresses:
            try:
                until = clocks.planner_time(entry.until)
            except ValueError:
                continue
            address = netaddr.IPAddress(entry.ip)
            held.append(Held(str(address), address.version, until, entry.service or "", name))
        if record.omitted and record.omitted_until:
            try:
                pauses[name] = (clocks.planner_time(record.omitted_until), record.omitted)
            except ValueError:
                continue
    return held, pauses
