"""Makes ExaBGP announce a `RoutePlan`: declarative, against what ExaBGP acknowledged.

Called by `bgp.speaker`: `apply(plan, peers)` on every new plan, `sessions()` (and the `on_change`
callback / `changed` event) for BGPNodeState and metrics, `stop()` on SIGTERM. Owns per peer what
ExaBGP holds (`sent`: acknowledged routes; `unsure`: routes a lost command may or may not have
changed) and sends only the difference: withdraws first, then announces, routes of one family with
equal attributes in bulk commands. A peer is re-sent its full set, then End-of-RIB per family, when
its session comes up (after ExaBGP (re)started, a peer change, a flap, the router's restart); until
the first session after an ExaBGP start nothing is queued for it, so that work is done once. With
graceful restart the router keeps the previous routes meanwhile and flushes, at End-of-RIB, those
not re-sent.

`apply` may be cancelled at any point: commands in flight stay `unsure` and are withdrawn or
re-sent by the next `apply` or `stop`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bgp import render, routes
from bgp.exabgp import ConfigInvalid, ExaBGP
from bgp.exabgp_channel import ChannelDown, CommandFailed, CommandTimeout, Event, Lost, Ready, SessionEvent
from bgp.render import RenderError
from bgp.routes import Command
from bgp.views import PeerView, RouteAttributes, RoutePlan
from lbipam.k8s.logs import KVLog

_log = KVLog("lbipam.driver")

#: ExaBGP's session events and FSM names -> BGPNodeState states (lbipam.api.bgpnodestate).
EVENT_STATES = {"connected": "OpenSent", "up": "Established", "down": "Active"}
FSM_STATES = {
    "IDLE": "Idle",
    "ACTIVE": "Active",
    "CONNECT": "Connect",
    "OPENSENT": "OpenSent",
    "OPENCONFIRM": "OpenConfirm",
    "ESTABLISHED": "Established",
}
Unsendable = (ChannelDown, CommandTimeout)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """One peer's session as BGPNodeState shows it."""

    address: str
    state: str  # one of lbipam.api.bgpnodestate.SESSION_STATES
    since: datetime
    advertised: int  # routes ExaBGP acknowledged for the peer while its session is up
    last_error: str


@dataclass(slots=True)
class _Peer:
    view: PeerView
    address: str
    state: str = "Idle"
    since: datetime = field(default_factory=_now)
    session_error: str = ""
    route_error: str = ""
    sent: dict[str, RouteAttributes] = field(default_factory=dict)
    unsure: set[str] = field(default_factory=set)
    up: bool = False
    synced: bool = False  # `sent` mirrors ExaBGP since it last started
    resync: bool = False  # send everything, then End-of-RIB

    def info(self) -> SessionInfo:
        error = self.route_error or self.session_error
        return SessionInfo(self.address, self.state, self.since, len(self.sent) if self.up else 0, error)


class Driver:
    """ExaBGP, kept announcing the latest plan to the latest peers."""

    def __init__(
        self,
        runtime_dir: Path,
        *,
        router_id: str | None = None,  # the node's IPv4 InternalIP: for peers without routerID
        exabgp: ExaBGP | None = None,
        command: Sequence[str] | None = None,  # how to run ExaBGP (default: this python -m exabgp)
        bulk_min: int = 8,  # routes with equal attributes that go out as one bulk command
        bulk_size: int = 1000,  # prefixes per bulk command
        flush_timeout: float = 5.0,  # stop(): how long to wait for ExaBGP to send the withdraws
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.exabgp = exabgp or ExaBGP(runtime_dir, command=command)
        self.router_id = router_id
        self.bulk_min, self.bulk_size, self.flush_timeout = bulk_min, bulk_size, flush_timeout
        self.on_change = on_change
        self.changed = asyncio.Event()  # set whenever sessions() changed; the reader clears it
        self._peers: dict[str, _Peer] = {}  # opened peers by name
        self._refused: dict[str, SessionInfo] = {}  # peers not opened, and why
        self._plan = RoutePlan()
        self._checked = routes.Checked()
        self._config: str | None = None
        self._lock = asyncio.Lock()  # one pass over the peers at a time
        self._kick = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = False

    # ------------------------------------------------------------------ public

    async def apply(self, plan: RoutePlan, peers: Sequence[PeerView]) -> None:
        """Make ExaBGP announce `plan` to `peers` (the ones without problems this node opens);
        returns once the difference is acknowledged, or could not be sent (ExaBGP restarting:
        then it is sent when ExaBGP is back)."""
        if self._stopped:
            raise RuntimeError("the driver is stopped")
        async with self._lock:
            self._plan = plan
            await self._set_peers(peers)
            await self._pass()

    def sessions(self) -> dict[str, SessionInfo]:
        """Per BGPPeer name: address, state, since, advertised routes, last error."""
        opened = {name: peer.info() for name, peer in self._peers.items()}
        return {**self._refused, **opened}

    async def run(self) -> None:
        """For a task group: wait until cancelled, then `stop()` (withdraw everything first)."""
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    async def stop(self) -> None:
        """Withdraw every route, wait for the acks and for ExaBGP to send them, stop ExaBGP."""
        if self._stopped:
            return
        self._stopped = True
        for task in self._tasks:
            task.cancel()
        async with self._lock:
            # ExaBGP restarting: give it a moment, or the routers keep our routes until their
            # graceful-restart timers run out.
            if await self.exabgp.wait_ready(self.flush_timeout):
                with contextlib.suppress(*Unsendable):
                    await self._withdraw_everything()
            elif any(peer.up or peer.sent or peer.unsure for peer in self._peers.values()):
                _log.warning("ExaBGP not answering: routes left to the routers' timers")
            else:  # no session ever carried a route: no router holds one of ours
                _log.debug("ExaBGP not answering; it announced nothing")
            await self.exabgp.stop()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._notify()

    async def __aenter__(self) -> Driver:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ peers

    async def _set_peers(self, views: Sequence[PeerView]) -> None:
        wanted, refused = self._check_peers(views)
        for name, peer in list(self._peers.items()):
            view = wanted.get(name)
            if view is None or render.address(view.address, "peerAddress") != peer.address:
                await self._forget(peer)
                del self._peers[name]
            elif view != peer.view:
                peer.view = view  # ExaBGP re-opens the session and keeps its routes
        for name, view in wanted.items():
            if name not in self._peers:
                self._peers[name] = _Peer(view, render.address(view.address, "peerAddress"))
        if refused != self._refused:
            self._refused = refused
            self._notify()
        await self._configure()

    def _check_peers(self, views: Sequence[PeerView]) -> tuple[dict[str, PeerView], dict[str, SessionInfo]]:
        wanted: dict[str, PeerView] = {}
        refused: dict[str, SessionInfo] = {}
        owners: dict[str, str] = {}
        for view in views:
            problem = "; ".join(view.problems)
            if not problem:
                try:
                    address = render.neighbor_block(view, self.router_id)[0]
                    if address in owners:
                        problem = f"peerAddress: already used by BGPPeer {owners[address]}"
                    owners.setdefault(address, view.name)
                except RenderError as err:
                    problem = str(err)
            if problem:
                old = self._refused.get(view.name)
                since = old.since if old is not None and old.last_error == problem else _now()
                refused[view.name] = SessionInfo(view.address, "Idle", since, 0, problem)
            else:
                wanted[view.name] = view
        return wanted, refused

    async def _configure(self) -> None:
        views = [peer.view for peer in self._peers.values()]
        config = render.render_config(
            views,
            python=sys.executable,
            relay_socket=str(self.exabgp.socket_path),
            default_router_id=self.router_id,
        )
        if config == self._config or (not views and not self.exabgp.running):
            return
        try:
            if self.exabgp.running:
                await self.exabgp.reconfigure(config)
            else:
                await self.exabgp.start(config)
                self._start_tasks()
        except ConfigInvalid as err:
            _log.error("ExaBGP refused the configuration", error=str(err))
            for peer in self._peers.values():
                peer.session_error = str(err)
            self._notify()
            return
        self._config = config

    async def _forget(self, peer: _Peer) -> None:
        """A peer leaves: withdraw its routes (ExaBGP then closes the session on reload)."""
        if self.exabgp.ready and (peer.sent or peer.unsure):
            with contextlib.suppress(*Unsendable):
                await self._send(peer, self._withdraws(peer, [*peer.sent, *peer.unsure]))
        self._notify()

    # ------------------------------------------------------------------ events

    def _start_tasks(self) -> None:
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._follow_events(), name="bgp-driver-events"),
                asyncio.create_task(self._background_passes(), name="bgp-driver-resync"),
            ]

    async def _follow_events(self) -> None:
        async for event in self.exabgp.events():
            self._on_event(event)
            self._kick.set()

    async def _background_passes(self) -> None:
        while True:
            await self._kick.wait()
            self._kick.clear()
            async with self._lock:
                await self._pass()

    def _on_event(self, event: Event) -> None:
        if isinstance(event, SessionEvent):
            for peer in self._peers.values():
                if peer.address == event.peer:
                    self._session(peer, event.state, event.reason)
        elif isinstance(event, Ready):
            for peer in self._peers.values():
                if event.fresh:  # a new ExaBGP holds no routes
                    peer.sent.clear()
                    peer.unsure.clear()
                    peer.synced = peer.up = False
                fsm = event.neighbors.get(peer.address, "")
                change = "up" if fsm == "ESTABLISHED" else "down"
                self._session(peer, change, state=FSM_STATES.get(fsm, "Connect"))
        elif isinstance(event, Lost):
            _log.warning("ExaBGP API channel lost", reason=event.reason)
            if event.exited:  # ExaBGP itself is gone: so are the sessions
                for peer in self._peers.values():
                    self._session(peer, "down", event.reason, "Idle")

    def _session(self, peer: _Peer, change: str, reason: str = "", state: str = "") -> None:
        """Record a session change: "up", "down" or "connected", and the state to show."""
        state = state or EVENT_STATES.get(change, peer.state)
        if change == "up":
            peer.up, peer.resync, peer.session_error = True, True, ""
        elif change == "down":
            peer.up = False
            peer.session_error = reason or peer.session_error
        if state != peer.state:
            peer.state, peer.since = state, _now()
            _log.info(
                "session", peer=peer.view.name, address=peer.address, state=state, reason=reason or None
            )
        self._notify()

    def _notify(self) -> None:
        self.changed.set()
        if self.on_change is not None:
            self.on_change()

    # ------------------------------------------------------------------ routes

    async def _pass(self) -> None:
        """Bring every peer in line with the plan, as far as the channel allows."""
        if not self.exabgp.ready:
            return
        try:
            for peer in list(self._peers.values()):
                await self._sync_peer(peer)
        except Unsendable as err:
            _log.warning("routes not sent, retried when ExaBGP is back", error=str(err))
        self._checked.trim()
        self._notify()

    def _desired(self, peer: _Peer) -> dict[str, RouteAttributes]:
        """The plan's routes for the peer that can be sent; the others named in route_error."""
        plan = self._plan.routes.get(peer.view.name, {})
        desired, errors = routes.desired(plan, peer.view.families, self._checked)
        peer.route_error = routes.summary(errors)
        return desired

    async def _sync_peer(self, peer: _Peer) -> None:
        desired = self._desired(peer)
        if not peer.synced and not peer.up:
            return  # after an ExaBGP start: everything goes out when the session is up
        # Taken now: a session that comes up again meanwhile asks for another full pass.
        full, peer.resync = peer.resync, False
        try:
            stale, changed = routes.difference(peer.sent, peer.unsure, desired, full=full)
            await self._send(
                peer, itertools.chain(self._withdraws(peer, stale), self._announces(peer, changed))
            )
            if full and peer.up:
                for family in peer.view.families:
                    await self.exabgp.send(render.eor(peer.address, family), alone=True)
                peer.synced = True
                _log.info("peer re-sent, End-of-RIB sent", peer=peer.view.name, routes=len(peer.sent))
        except BaseException as err:
            # Not done (the session went down, ExaBGP went away, cancelled): again next time.
            peer.resync = peer.resync or full
            if not isinstance(err, CommandFailed):
                raise

    def _withdraws(self, peer: _Peer, prefixes: Iterable[str]) -> Iterator[Command]:
        return routes.withdrawals(peer.address, prefixes, self.bulk_min, self.bulk_size)

    def _announces(self, peer: _Peer, changed: Mapping[str, RouteAttributes]) -> Iterator[Command]:
        return routes.announcements(peer.address, changed, self.bulk_min, self.bulk_size)

    async def _send(self, peer: _Peer, batch: Iterable[Command]) -> None:
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

    async def _withdraw_everything(self) -> None:
        before = await self.exabgp.updates_sent()
        announced = {peer.address for peer in self._peers.values() if peer.up and (peer.sent or peer.unsure)}
        for peer in self._peers.values():
            await self._send(peer, self._withdraws(peer, [*dict.fromkeys([*peer.sent, *peer.unsure])]))
            if peer.up and not peer.synced:
                # A new ExaBGP holds nothing, but the router still keeps the old one's routes
                # (graceful restart): End-of-RIB makes it drop them.
                announced.add(peer.address)
                for family in peer.view.families:
                    with contextlib.suppress(CommandFailed):
                        await self.exabgp.send(render.eor(peer.address, family), alone=True)
        if not await self.exabgp.flushed(before, announced, self.flush_timeout):
            _log.warning("ExaBGP did not confirm sending the withdraws in time", timeout=self.flush_timeout)
