"""Makes ExaBGP announce a `RoutePlan`: declarative, against what ExaBGP acknowledged.

Called by `bgp.speaker`: `apply(plan, peers)` on every new plan, `sessions()` (and the `on_change`
callback / `changed` event) for BGPNodeState and metrics, `stop(keep)` on SIGTERM. `hold_down(peer,
reason)` / `release(peer)` keep one peer's session down and let it up again (for BFD: a Down tears
the session down at once, and it stays down until released).

Per peer (`bgp.session.PeerSession`) the driver keeps what ExaBGP holds and sends only the
difference (`bgp.sender`). A peer is re-sent its full set, then End-of-RIB per family, when its
session comes up (after ExaBGP (re)started, a peer change, a flap, the router's restart); until
the first session after an ExaBGP start nothing is queued for it. With graceful restart the
router keeps the previous routes meanwhile and flushes, at End-of-RIB, those not re-sent.

A peer is kept down by leaving it out of ExaBGP's configuration (a `reload`; ExaBGP has no
"disable neighbor"): for `hold_down`, for the reconnect back-off after its session failed
(`bgp.session.Reconnect`), and for a moment when its TCP MD5 password changes. A neighbor that
leaves the configuration is waited for until ExaBGP has really dropped it (its connection and any
pending connection attempt closed) before it may come back, else ExaBGP is restarted: a neighbor
re-added while ExaBGP still held the old one could stay down for good.

`apply` may be cancelled at any point: commands in flight stay `unsure` and are withdrawn or
re-sent by the next `apply` or `stop`.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

from bgp import render
from bgp.exabgp import ConfigInvalid, ExaBGP
from bgp.exabgp_channel import Event, Lost, NotificationEvent, Ready, SessionEvent
from bgp.neighbors import gone, restarting_gracefully
from bgp.sender import Sender, Unsendable
from bgp.session import (
    EVENT_STATES,
    FSM_STATES,
    HELD,
    PeerSession,
    Reconnect,
    SessionInfo,
    check_peers,
    describe_notification,
)
from bgp.views import PeerView, RoutePlan
from lbipam.k8s.logs import KVLog

_log = KVLog("lbipam.driver")
BACKOFF, EXTERNAL, PASSWORD = "backoff", "hold", "password"  # who keeps a peer down


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
        forget_timeout: float = 5.0,  # how long ExaBGP may take to drop a removed neighbor
        reconnect: Callable[[], Reconnect] = Reconnect,  # each peer's back-off policy
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.exabgp = exabgp or ExaBGP(runtime_dir, command=command)
        self.router_id = router_id
        self.flush_timeout, self.forget_timeout = flush_timeout, forget_timeout
        self.reconnect = reconnect
        self.on_change = on_change
        self.changed = asyncio.Event()  # set whenever sessions() changed; the reader clears it
        self._sender = Sender(self.exabgp, bulk_min=bulk_min, bulk_size=bulk_size)
        self._peers: dict[str, PeerSession] = {}  # opened peers by name
        self._refused: dict[str, SessionInfo] = {}  # peers not opened, and why
        self._external: dict[str, str] = {}  # hold_down() reasons, by peer name
        self._plan = RoutePlan()
        self._config: str | None = None
        self._in_exabgp: set[str] = set()  # neighbor addresses of the configuration in use
        self._lock = asyncio.Lock()  # one pass over the peers at a time
        self._config_lock = asyncio.Lock()  # one configuration change at a time (hold_down: at once)
        self._kick = asyncio.Event()
        self._timers: dict[tuple[str, str], asyncio.TimerHandle] = {}
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

    async def hold_down(self, peer: str, reason: str) -> None:
        """Take BGPPeer `peer`'s session down now and keep it down, whatever `apply` says, until
        `release(peer)`. ExaBGP forgets the neighbor (the TCP connection is closed; the router
        keeps or drops the routes by its own graceful-restart and BFD settings); BGPNodeState
        shows the session Idle with `held down: <reason>`. Calling it again updates the reason.
        A peer not opened yet is held from the moment it is."""
        self._external[peer] = reason
        await self._set_hold(peer, EXTERNAL, reason)

    async def release(self, peer: str) -> None:
        """Let BGPPeer `peer`'s session up again (no-op when it is not held by `hold_down`)."""
        if self._external.pop(peer, None) is not None:
            await self._set_hold(peer, EXTERNAL, None)

    async def run(self) -> None:
        """For a task group: wait until cancelled, then `stop()` (withdraw everything first)."""
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    async def stop(self, keep: Collection[str] = ()) -> None:
        """Withdraw every route, wait for the acks and for ExaBGP to send them, stop ExaBGP.

        The routes of the peers named in `keep` (a rollout: `bgp.rules.on_sigterm`) are left
        standing instead: ExaBGP closes a graceful-restart session without a NOTIFICATION, so the
        router keeps them (stale) until the next speaker has re-announced them and sent End-of-RIB.
        A kept peer whose session is not up with graceful restart negotiated is withdrawn too."""
        if self._stopped:
            return
        self._stopped = True
        for task in self._tasks:
            task.cancel()
        for timer in self._timers.values():
            timer.cancel()
        async with self._lock:
            # ExaBGP restarting: give it a moment, or the routers keep our routes until their
            # graceful-restart timers run out.
            if await self.exabgp.wait_ready(self.flush_timeout):
                with contextlib.suppress(*Unsendable):
                    wanted = {name: p.address for name, p in self._peers.items() if name in keep}
                    kept = await restarting_gracefully(self.exabgp, wanted)
                    withdrawn = [p for name, p in self._peers.items() if name not in kept]
                    _log.info("stopping", kept=sorted(kept) or None, withdrawn=len(withdrawn))
                    await self._sender.withdraw(withdrawn, self.flush_timeout)
            elif any(peer.up or peer.sent or peer.unsure for peer in self._peers.values()):
                _log.warning("ExaBGP not answering: routes left to the routers' timers")
            else:  # no session ever carried a route: no router holds one of ours
                _log.debug("ExaBGP not answering; it announced nothing")
            await self.exabgp.stop()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for peer in self._peers.values():  # what BGPNodeState shows once the speaker is gone
            peer.up = False
            peer.set_state("Idle")
            peer.session_error = "the speaker stopped"
        self._notify()

    async def __aenter__(self) -> Driver:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ peers

    async def _set_peers(self, views: Sequence[PeerView]) -> None:
        wanted, refused = check_peers(views, self.router_id, self._refused)
        for name, peer in list(self._peers.items()):
            view = wanted.get(name)
            if view is None or render.address(view.address, "peerAddress") != peer.address:
                await self._sender.forget(peer)
                del self._peers[name]
                self._cancel_timers(name)
                self._notify()
            elif view != peer.view:
                if view.password != peer.view.password:
                    await self._renew(peer)  # a new key needs a new socket: out, then back in
                peer.view = view  # else ExaBGP re-opens the session and keeps its routes
        for name, view in wanted.items():
            if name not in self._peers:
                self._peers[name] = peer = PeerSession(view, render.address(view.address, "peerAddress"))
                peer.reconnect = self.reconnect()
                if name in self._external:
                    peer.holds[EXTERNAL] = self._external[name]
                    peer.state = HELD
        if refused != self._refused:
            self._refused = refused
            self._notify()
        await self._configure()

    async def _renew(self, peer: PeerSession) -> None:
        """Take the peer out of ExaBGP and wait until it is gone; the caller puts it back."""
        peer.holds[PASSWORD] = "TCP MD5 password changed"
        try:
            await self._configure()
        finally:
            del peer.holds[PASSWORD]

    async def _configure(self) -> None:
        """Give ExaBGP the configuration of the opened peers that are not held down."""
        async with self._config_lock:
            await self._reconfigure()

    async def _reconfigure(self) -> None:
        views = [peer.view for peer in self._peers.values() if not peer.held]
        config = render.render_config(
            views,
            python=sys.executable,
            relay_socket=str(self.exabgp.socket_path),
            default_router_id=self.router_id,
        )
        if config == self._config or (not views and not self.exabgp.running):
            return
        addresses = {peer.address for peer in self._peers.values() if not peer.held}
        removed = self._in_exabgp - addresses
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
        self._config, self._in_exabgp = config, addresses
        for peer in self._peers.values():
            if peer.held and (peer.sent or peer.up or peer.synced):
                peer.forget_routes()  # ExaBGP dropped the neighbor and its routes
        if removed:
            await self._await_gone(removed)

    async def _await_gone(self, addresses: set[str]) -> None:
        if not self.exabgp.ready:
            return  # a new ExaBGP is starting: it never held them
        with contextlib.suppress(*Unsendable):
            if await gone(self.exabgp, addresses, self.forget_timeout):
                return
        _log.warning("ExaBGP kept removed neighbors: restarting it", peers=sorted(addresses))
        self.exabgp.restart()

    async def _set_hold(self, name: str, who: str, reason: str | None) -> None:
        """Not behind a pass that may be sending 50k routes: the configuration changes at once
        (a pass still sending to the peer gets ExaBGP's refusals; its session starts afresh)."""
        peer = self._peers.get(name)
        if peer is None or self._stopped:
            return
        if reason is None:
            peer.holds.pop(who, None)
        else:
            peer.holds[who] = reason
            if peer.set_state(HELD):
                _log.info("session held down", peer=name, reason=reason)
        await self._configure()
        self._notify()
        self._kick.set()  # the background pass brings the peers in line

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
                await self._configure()  # holds that began or ended
                await self._pass()

    def _on_event(self, event: Event) -> None:
        if isinstance(event, SessionEvent | NotificationEvent):
            for peer in self._peers.values():
                if peer.address == event.peer and not peer.held:
                    if isinstance(event, NotificationEvent):
                        peer.refusal = describe_notification(event.code, event.subcode, event.data)
                    else:
                        self._session(peer, event.state, event.reason)
        elif isinstance(event, Ready):
            for peer in self._peers.values():
                if event.fresh:  # a new ExaBGP holds no routes
                    peer.forget_routes()
                if not peer.held:
                    fsm = event.neighbors.get(peer.address, "")
                    change = "up" if fsm == "ESTABLISHED" else "down"
                    self._session(peer, change, state=FSM_STATES.get(fsm, "Connect"), count=False)
        elif isinstance(event, Lost):
            _log.warning("ExaBGP API channel lost", reason=event.reason)
            if event.exited:  # ExaBGP itself is gone: so are the sessions
                for peer in self._peers.values():
                    if not peer.held:
                        self._session(peer, "down", event.reason, "Idle", count=False)

    def _session(
        self, peer: PeerSession, change: str, reason: str = "", state: str = "", count: bool = True
    ) -> None:
        """Record a session change: "up", "down" or "connected", and the state to show. A `down`
        that ends a session (`count`) feeds the back-off."""
        state = state or EVENT_STATES.get(change, peer.state)
        loop = asyncio.get_running_loop()
        if change == "up":
            peer.up, peer.resync, peer.session_error = True, True, ""
            peer.reconnect.up(loop.time())
            self._timer(peer.view.name, "stable", peer.reconnect.stable, self._stable)
        elif change == "down":
            was_up, peer.up = peer.up, False
            peer.session_error = reason or peer.session_error
            self._cancel_timers(peer.view.name, "stable")
            if (
                count
                and (was_up or peer.state in ("OpenSent", "OpenConfirm"))
                and self._back_off(peer, loop.time())
            ):
                state = HELD
        if peer.set_state(state):
            _log.info(
                "session", peer=peer.view.name, address=peer.address, state=state, reason=reason or None
            )
        self._notify()

    def _back_off(self, peer: PeerSession, at: float) -> bool:
        """Whether the peer is kept out of ExaBGP for a while before it dials again."""
        delay = peer.reconnect.down(at)
        if delay <= 0:
            return False
        name = peer.view.name
        peer.holds[BACKOFF] = f"reconnecting in {delay:.1f}s ({peer.reconnect.failures} failures in a row)"
        _log.warning(
            "session failed again: backing off",
            peer=name,
            delay=round(delay, 1),
            refusal=peer.refusal or None,
        )
        self._timer(name, BACKOFF, delay, self._retry)
        self._kick.set()  # the background pass takes it out of ExaBGP
        return True

    def _retry(self, name: str) -> None:
        peer = self._peers.get(name)
        if peer is not None and peer.holds.pop(BACKOFF, None) is not None:
            self._kick.set()

    def _stable(self, name: str) -> None:
        peer = self._peers.get(name)
        settled = peer is not None and peer.up and peer.reconnect.settled(asyncio.get_running_loop().time())
        if settled and peer is not None and peer.refusal:
            peer.refusal = ""
            self._notify()

    def _timer(self, name: str, what: str, delay: float, call: Callable[[str], None]) -> None:
        self._cancel_timers(name, what)
        self._timers[(name, what)] = asyncio.get_running_loop().call_later(delay, call, name)

    def _cancel_timers(self, name: str, what: str | None = None) -> None:
        for key in [k for k in self._timers if k[0] == name and what in (None, k[1])]:
            self._timers.pop(key).cancel()

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
                await self._sender.sync(peer, self._plan.routes.get(peer.view.name, {}))
        except Unsendable as err:
            _log.warning("routes not sent, retried when ExaBGP is back", error=str(err))
        self._sender.checked.trim()
        self._notify()
