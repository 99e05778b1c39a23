"""Sends one peer's routes through ExaBGP's API window: the difference between the plan and what
ExaBGP acknowledged, End-of-RIB after a full set, and the withdraws before the speaker exits.

Owned by `bgp.driver`, which calls `sync` for every opened peer on each pass and `withdraw` on
shutdown, under its lock. Per peer the acknowledged state lives in `bgp.session.PeerSession`
(`sent`, `unsure`); the commands come from `bgp.routes`. Commands whose answer is lost leave their
prefixes `unsure`: the next pass withdraws or re-announces them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence

from bgp import render, routes
from bgp.exabgp import ExaBGP
from bgp.exabgp_channel import ChannelDown, CommandFailed, CommandTimeout
from bgp.neighbors import flushed, updates_sent
from bgp.routes import Command
from bgp.session import PeerSession
from bgp.views import RouteAttributes
from lbipam.k8s.logs import KVLog

_log = KVLog("lbipam.driver")
Unsendable = (ChannelDown, CommandTimeout)


class Sender:
    def __init__(self, exabgp: ExaBGP, *, bulk_min: int, bulk_size: int) -> None:
        self.exabgp = exabgp
        self.bulk_min, self.bulk_size = bulk_min, bulk_size
        self.checked = routes.Checked()

    def desired(self, peer: PeerSession, plan: Mapping[str, RouteAttributes]) -> dict[str, RouteAttributes]:
        """The plan's routes for the peer that can be sent; the others named in route_error."""
        desired, errors = routes.desired(plan, peer.view.families, self.checked, session=peer.address)
        peer.route_error = routes.summary(errors)
        return desired

    async def sync(self, peer: PeerSession, plan: Mapping[str, RouteAttributes]) -> None:
        """Bring the peer in line with `plan`: withdraws first, then announces; after a session
        came up, everything and then End-of-RIB per family."""
        desired = self.desired(peer, plan)
        if peer.held or (not peer.synced and not peer.up):
            return  # not in ExaBGP / after an ExaBGP start: everything goes out when it is up
        # Taken now: a session that comes up again meanwhile asks for another full pass.
        full, peer.resync = peer.resync, False
        try:
            stale, changed = routes.difference(peer.sent, peer.unsure, desired, full=full)
            batch = itertools.chain(self._withdraws(peer, stale), self._announces(peer, changed))
            await self.send(peer, batch)
            if full and peer.up:
                await self.end_of_rib(peer)
                peer.synced = True
                _log.info("peer re-sent, End-of-RIB sent", peer=peer.view.name, routes=len(peer.sent))
        except BaseException as err:
            # Not done (the session went down, ExaBGP went away, cancelled): again next time.
            peer.resync = peer.resync or full
            if not isinstance(err, CommandFailed):
                raise

    async def end_of_rib(self, peer: PeerSession) -> None:
        for family in peer.view.families:
            await self.exabgp.send(render.eor(peer.address, family), alone=True)

    def _withdraws(self, peer: PeerSession, prefixes: Iterable[str]) -> Iterator[Command]:
        return routes.withdrawals(peer.address, prefixes, self.bulk_min, self.bulk_size)

    def _announces(self, peer: PeerSession, changed: Mapping[str, RouteAttributes]) -> Iterator[Command]:
        return routes.announcements(peer.address, changed, self.bulk_min, self.bulk_size)

    async def send(self, peer: PeerSession, batch: Iterable[Command]) -> None:
        """Send a batch through the window; record each answer as it comes."""
        futures = []
        errors: list[str] = []
        for command, prefixes, attrs in batch:
            peer.unsure.update(prefixes)
            future = await self.exabgp.submit(command)
            future.add_done_callback(routes.recorder(peer.sent, peer.unsure, prefixes, attrs, errors))
            futures.append(future)
        results = await asyncio.gather(*futures, return_exceptions=True)
        if errors:
            peer.route_error = routes.summary(errors)
            _log.warning("ExaBGP refused commands", peer=peer.view.name, count=len(errors), first=errors[0])
        for result in results:
            if isinstance(result, Unsendable):
                raise result

    async def forget(self, peer: PeerSession) -> None:
        """Withdraw what the peer holds (it is leaving ExaBGP's configuration), best effort."""
        if self.exabgp.ready and not peer.held and (peer.sent or peer.unsure):
            with contextlib.suppress(*Unsendable):
                await self.send(peer, self._withdraws(peer, [*peer.sent, *peer.unsure]))

    async def withdraw(self, peers: Sequence[PeerSession], timeout: float) -> None:  # noqa: ASYNC109
        """Withdraw every route of `peers` and wait (up to `timeout`) until ExaBGP has sent the
        withdraws: an acknowledgement only means "queued"."""
        before = await updates_sent(self.exabgp)
        announced = {p.address for p in peers if p.up and (p.sent or p.unsure)}
        for peer in peers:
            if peer.held:
                continue
            await self.send(peer, self._withdraws(peer, [*dict.fromkeys([*peer.sent, *peer.unsure])]))
            if peer.up and not peer.synced:
                # A new ExaBGP holds nothing, but the router still keeps the old one's routes
                # (graceful restart): End-of-RIB makes it drop them.
                announced.add(peer.address)
                with contextlib.suppress(CommandFailed):
                    await self.end_of_rib(peer)
        if not await flushed(self.exabgp, before, announced, timeout):
            _log.warning("ExaBGP did not confirm sending the withdraws in time", timeout=timeout)
