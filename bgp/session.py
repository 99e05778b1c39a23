"""One BGP session as the driver keeps it, and the pure rules about sessions: which peers are
opened, states, the reconnect back-off, and what a router's NOTIFICATION says.

Used by `bgp.driver` (which feeds `PeerSession` the events ExaBGP reports and the clock) and read
through `SessionInfo` by `bgp.speaker` (BGPNodeState, metrics). No I/O, no asyncio.

Back-off: ExaBGP reconnects at once after a session that was Established goes down, so a router
that takes the session and then refuses an UPDATE (answers with a NOTIFICATION) would be dialled
again and again, many times a second. `Reconnect` decides, at every `down`, how long the driver
keeps the peer out of ExaBGP's configuration: nothing the first time (a router restart is back at
once), then 1 s, 2 s, 4 s... doubling (less up to 25 % jitter) up to a ceiling; a session that stays up
for `stable` seconds starts again from nothing. (A TCP connection that never completes backs off
inside ExaBGP: 1.2 times longer each try, up to 60 s.)
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bgp import render
from bgp.render import RenderError
from bgp.views import PeerView, RouteAttributes

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
HELD = "Idle"  # the state of a session the driver keeps down (back-off, hold_down)


def now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """One peer's session as BGPNodeState shows it."""

    address: str
    state: str  # one of lbipam.api.bgpnodestate.SESSION_STATES
    since: datetime
    advertised: int  # routes ExaBGP acknowledged for the peer while its session is up
    last_error: str
    refusal: str = ""  # the router's last NOTIFICATION while the session flaps (an Event)


@dataclass(slots=True)
class Reconnect:
    """The back-off of one peer's session (see the module docstring). Times are seconds of a
    monotonic clock the caller passes in."""

    base: float = 1.0
    cap: float = 60.0
    stable: float = 30.0
    jitter: float = 0.25
    failures: int = 0
    up_at: float | None = None

    def up(self, at: float) -> None:
        self.up_at = at

    def settled(self, at: float) -> bool:
        """Whether the session has been up `stable` seconds; then the failures are forgotten."""
        if self.up_at is not None and at - self.up_at >= self.stable:
            self.failures = 0
            return True
        return False

    def down(self, at: float, rng: random.Random | None = None) -> float:
        """The session went down at `at`: seconds to keep the peer out before it dials again."""
        self.settled(at)
        self.up_at = None
        self.failures += 1
        if self.failures == 1:
            return 0.0
        delay = min(self.cap, self.base * 2.0 ** min(self.failures - 2, 30))
        # Jitter below the delay, never above the ceiling: nodes that failed together spread out.
        spread: float = (rng or random.Random()).uniform(1 - self.jitter, 1.0)
        return delay * spread


# RFC 4271 4.5 and 6, RFC 4486 (Cease), RFC 7313, RFC 8538, RFC 9384.
_CODES = {
    1: "Message Header Error",
    2: "OPEN Message Error",
    3: "UPDATE Message Error",
    4: "Hold Timer Expired",
    5: "Finite State Machine Error",
    6: "Cease",
    7: "ROUTE-REFRESH Message Error",
}
_SUBCODES = {
    (1, 1): "Connection Not Synchronized",
    (1, 2): "Bad Message Length",
    (1, 3): "Bad Message Type",
    (2, 1): "Unsupported Version Number",
    (2, 2): "Bad Peer AS",
    (2, 3): "Bad BGP Identifier",
    (2, 4): "Unsupported Optional Parameter",
    (2, 6): "Unacceptable Hold Time",
    (2, 7): "Unsupported Capability",
    (3, 1): "Malformed Attribute List",
    (3, 2): "Unrecognized Well-known Attribute",
    (3, 3): "Missing Well-known Attribute",
    (3, 4): "Attribute Flags Error",
    (3, 5): "Attribute Length Error",
    (3, 6): "Invalid ORIGIN Attribute",
    (3, 8): "Invalid NEXT_HOP Attribute",
    (3, 9): "Optional Attribute Error",
    (3, 10): "Invalid Network Field",
    (3, 11): "Malformed AS_PATH",
    (6, 1): "Maximum Number of Prefixes Reached",
    (6, 2): "Administrative Shutdown",
    (6, 3): "Peer De-configured",
    (6, 4): "Administrative Reset",
    (6, 5): "Connection Rejected",
    (6, 6): "Other Configuration Change",
    (6, 7): "Connection Collision Resolution",
    (6, 8): "Out of Resources",
    (6, 9): "Hard Reset",
    (6, 10): "BFD Down",
    (7, 1): "Invalid Message Length",
}
MAX_DATA = 64  # hex digits of NOTIFICATION data shown


def _shutdown_text(data: bytes) -> str | None:
    """RFC 9003: a Cease/Administrative Shutdown or Reset may carry a length byte and UTF-8 text."""
    if not data or data[0] != len(data) - 1:
        return None
    try:
        text = data[1:].decode("utf-8")
    except UnicodeDecodeError:
        return None
    return "".join(c if c.isprintable() else "?" for c in text)[:255]


def describe_notification(code: int, subcode: int, data: str = "") -> str:
    """`NOTIFICATION 3/8 (UPDATE Message Error / Invalid NEXT_HOP Attribute), data 0x4003...`:
    what a router said, for people. `data` is hex as ExaBGP writes it ("0x..."). A shutdown
    message (RFC 9003) is quoted as text, other data shown as hex."""
    names = [_CODES.get(code, "unknown error")]
    if (code, subcode) in _SUBCODES:
        names.append(_SUBCODES[(code, subcode)])
    text = f"NOTIFICATION {code}/{subcode} ({' / '.join(names)})"
    digits = data[2:] if data.lower().startswith("0x") else data
    try:
        raw = bytes.fromhex(digits)
    except ValueError:
        return text
    spoken = _shutdown_text(raw) if (code, subcode) in ((6, 2), (6, 4)) else None
    if spoken is not None:
        return f'{text}: "{spoken}"'
    if raw:
        shown = raw.hex().upper()
        return f"{text}, data 0x{shown[:MAX_DATA]}{'...' if len(shown) > MAX_DATA else ''}"
    return text


@dataclass(slots=True)
class PeerSession:
    """What the driver knows of one opened peer: its session and the routes ExaBGP holds for it."""

    view: PeerView
    address: str
    state: str = "Idle"
    since: datetime = field(default_factory=now)
    session_error: str = ""
    route_error: str = ""
    refusal: str = ""  # the router's last NOTIFICATION, kept until the session is stable again
    sent: dict[str, RouteAttributes] = field(default_factory=dict)
    unsure: set[str] = field(default_factory=set)
    up: bool = False
    synced: bool = False  # `sent` mirrors ExaBGP since it last started
    resync: bool = False  # send everything, then End-of-RIB
    holds: dict[str, str] = field(default_factory=dict)  # why it is kept out of ExaBGP: who -> reason
    reconnect: Reconnect = field(default_factory=Reconnect)

    @property
    def held(self) -> bool:
        return bool(self.holds)

    def info(self) -> SessionInfo:
        errors = [e for e in (self.route_error, self.session_error) if e]
        if self.refusal and self.refusal not in self.session_error:
            errors.append(f"the router refused the session: {self.refusal}")
        errors += [f"held down: {reason}" for reason in self.holds.values()]
        advertised = len(self.sent) if self.up else 0
        return SessionInfo(self.address, self.state, self.since, advertised, "; ".join(errors), self.refusal)

    def set_state(self, state: str) -> bool:
        """Enter `state`; `since` changes only when the state does. Whether it changed."""
        if state == self.state:
            return False
        self.state, self.since = state, now()
        return True

    def forget_routes(self) -> None:
        """ExaBGP holds nothing for the peer any more (it left ExaBGP's configuration, or a new
        ExaBGP started): everything goes out again once its session is up."""
        self.sent.clear()
        self.unsure.clear()
        self.synced = self.up = self.resync = False


def check_peers(
    views: Sequence[PeerView], router_id: str | None, refused_before: Mapping[str, SessionInfo]
) -> tuple[dict[str, PeerView], dict[str, SessionInfo]]:
    """(the peers to open by name, the refused ones with why): a peer with problems, one that
    cannot be rendered, or a second one with the same peerAddress is refused; a refusal keeps
    its `since` while its reason stays the same."""
    wanted: dict[str, PeerView] = {}
    refused: dict[str, SessionInfo] = {}
    owners: dict[str, str] = {}
    for view in views:
        problem = "; ".join(view.problems)
        if not problem:
            try:
                address = render.neighbor_block(view, router_id)[0]
                if address in owners:
                    problem = f"peerAddress: already used by BGPPeer {owners[address]}"
                owners.setdefault(address, view.name)
            except RenderError as err:
                problem = str(err)
        if problem:
            old = refused_before.get(view.name)
            since = old.since if old is not None and old.last_error == problem else now()
            refused[view.name] = SessionInfo(view.address, "Idle", since, 0, problem)
        else:
            wanted[view.name] = view
    return wanted, refused
