"""What ExaBGP says of its neighbors (`show neighbor json`), read for the driver: which sessions
are up and negotiated graceful restart, how many UPDATEs went out, whether a neighbor removed
from the configuration is really gone.

Functions over a running `bgp.exabgp.ExaBGP`; called by `bgp.driver` and `bgp.sender`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Collection, Mapping
from typing import Any

from bgp.exabgp import ExaBGP


async def neighbors(exabgp: ExaBGP) -> dict[str, dict[str, Any]]:
    """Peer address -> ExaBGP's description of the neighbor, for every neighbor it holds (a
    neighbor removed by a reload is listed until ExaBGP has dropped it)."""
    found: dict[str, dict[str, Any]] = {}
    for line in await exabgp.send("show neighbor json", alone=True):
        if line.startswith("["):
            for item in json.loads(line):
                found[str(item["peer"]["address"])] = item
    return found


def established(item: Mapping[str, Any]) -> bool:
    return item.get("fsm") == "ESTABLISHED"


def graceful_restart(item: Mapping[str, Any]) -> bool:
    """Both sides announced graceful restart in the session that is up: the router keeps our
    routes (stale) when the session closes without a NOTIFICATION."""
    peer = (item.get("peer") or {}).get("capabilities") or {}
    local = (item.get("local") or {}).get("capabilities") or {}
    return established(item) and bool(peer.get("graceful-restart")) and bool(local.get("graceful-restart"))


async def restarting_gracefully(exabgp: ExaBGP, peers: Mapping[str, str]) -> set[str]:
    """The names of `peers` (name -> address) whose router keeps our routes when ExaBGP stops:
    the session is up with graceful restart negotiated."""
    if not peers:
        return set()
    held = await neighbors(exabgp)
    return {name for name, address in peers.items() if address in held and graceful_restart(held[address])}


async def updates_sent(exabgp: ExaBGP) -> dict[str, int]:
    """UPDATE messages sent so far, per established peer."""
    return {
        address: int(item["messages"]["sent"].get("update", 0))
        for address, item in (await neighbors(exabgp)).items()
        if established(item)
    }


async def flushed(exabgp: ExaBGP, before: Mapping[str, int], peers: set[str], timeout: float) -> bool:  # noqa: ASYNC109
    """Wait until ExaBGP has sent what it acknowledged -- an answer only means "queued", and
    an ExaBGP stopped with graceful restart leaves its routes standing at the routers: every
    established peer of `peers` got an UPDATE since `before` and the counts stay put."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: dict[str, int] | None = None
    while loop.time() < deadline:
        counts = await updates_sent(exabgp)
        moved = all(counts[peer] > before.get(peer, 0) for peer in peers if peer in counts)
        if moved and counts == last:
            return True
        last = counts
        await asyncio.sleep(0.15)  # ExaBGP's reactor turns every 0.1 s
    return False


async def gone(exabgp: ExaBGP, addresses: Collection[str], timeout: float) -> bool:  # noqa: ASYNC109
    """Wait until ExaBGP no longer holds a neighbor for any of `addresses` (removed by a reload:
    its connection, and any connection attempt still pending, is closed). Whether it is so."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        if not set(addresses) & set(await neighbors(exabgp)):
            return True
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.1)  # ExaBGP drops a removed peer on its next reactor turn
