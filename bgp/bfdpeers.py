"""The speaker's BFD: which sessions to run, which BGP sessions to hold down, what to report.

- `bfd_sessions(peers)` (pure): the `bgp.bfd` sessions for the peers this node opens with
  `spec.bfd.enabled`: one per BGPPeer, from its sourceAddress (else the kernel's choice toward
  the peer, as ExaBGP's), multihop (RFC 5883) when ebgpMultihop is set.
- `BfdPeers`: owns the `bgp.bfd.client.BfdClient` (the BFD process), counts state changes per
  peer, and says which BGP sessions are held down: a peer whose BFD session was Up and is not
  any more (the router stopped answering, or said Down) until BFD is Up again. A router that
  took BFD down administratively (AdminDown, RFC 5882 section 3.2) is not a failure: its BGP
  session stays. A peer whose BFD never came Up (a router without BFD) is not held.
Called by `bgp.speaker`, which drops held peers from what it hands the driver (ExaBGP then
closes the session) and shows `bfd` in BGPNodeState.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from bgp.bfd.client import BfdClient, BfdState
from bgp.views import PeerView
from lbipam.k8s.logs import KVLog
from lbipam.observe.metrics import PeerMetrics

_log = KVLog("bgp.bfd")


def _nothing() -> None:
    pass


def bfd_sessions(peers: Sequence[PeerView]) -> list[dict[str, Any]]:
    """The wanted BFD sessions (`bgp.bfd.daemon` wire form) of the peers with BFD enabled."""
    sessions = []
    for peer in sorted(peers, key=lambda p: p.name):
        if peer.bfd is None:
            continue
        sessions.append(
            {
                "name": peer.name,
                "peer": peer.address,
                "local": peer.source,
                "multihop": peer.multihop is not None,
                "minTxMs": peer.bfd.min_tx_ms,
                "minRxMs": peer.bfd.min_rx_ms,
                "multiplier": peer.bfd.multiplier,
            }
        )
    return sessions


class BfdPeers:
    def __init__(self, client: BfdClient | None = None) -> None:
        self.on_change: Callable[[], None] = _nothing  # any change (BGPNodeState)
        self.on_hold: Callable[[], None] = _nothing  # the held set changed (the driver)
        self.client = client or BfdClient()
        self.client.on_change = self._changed
        self.changes: dict[str, Counter[str]] = {}  # peer -> state entered -> count
        self._was_up: set[str] = set()
        self._held: set[str] = set()
        self._last: dict[str, str] = {}

    def configure(self, peers: Sequence[PeerView]) -> None:
        """Run BFD with the peers among `peers` that have it enabled (and only those)."""
        wanted = bfd_sessions(peers)
        names = {item["name"] for item in wanted}
        for name in set(self._last) - names:
            self._forget(name)
        self.client.configure(wanted)

    def held(self) -> frozenset[str]:
        """BGPPeers whose BGP session is to stay down until their BFD session is Up again."""
        return frozenset(self._held)

    def state(self, name: str) -> BfdState | None:
        return self.client.states.get(name)

    def states(self) -> dict[str, str]:
        """BGPPeer name -> BFD state (Up, Down, Init, AdminDown), for the peers running BFD."""
        return {name: s.state for name, s in self.client.states.items()}

    def metrics(self, name: str, up: bool, routes: int) -> PeerMetrics:
        """The peer's metrics: the BGP figures given, BFD's from here."""
        state = self.client.states.get(name)
        changes = dict(self.changes.get(name, {}))
        return PeerMetrics(up=up, routes=routes, bfd=state.state if state else None, bfd_changes=changes)

    async def run(self) -> None:
        await self.client.run()

    async def stop(self, *, admin_down: bool = True) -> None:
        await self.client.stop(admin_down=admin_down)

    def _forget(self, name: str) -> None:
        self._last.pop(name, None)
        self._was_up.discard(name)
        if name in self._held:
            self._held.discard(name)
            self.on_hold()
        self.on_change()

    def _changed(self, name: str) -> None:
        state = self.client.states.get(name)
        if state is None:
            self._forget(name)
            return
        if state.state != self._last.get(name):
            self._last[name] = state.state
            self.changes.setdefault(name, Counter())[state.state] += 1
            _log.info("bfd", peer=name, state=state.state, diag=state.diag, error=state.error or None)
        hold = name in self._was_up and state.state != "Up" and state.remote_state != "AdminDown"
        if state.state == "Up":
            self._was_up.add(name)
        if hold != (name in self._held):
            (self._held.add if hold else self._held.discard)(name)
            _log.warning("bfd: BGP session " + ("held down" if hold else "released"), peer=name)
            self.on_hold()
        self.on_change()
