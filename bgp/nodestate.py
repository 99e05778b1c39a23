"""What the speaker tells people: its node's BGPNodeState, and Events about bad input.

- `peer_entries` (pure): the `status.peers` list from the sessions the driver reports, the peers
  it does not open because of a problem, and the problems of advertisements aimed at each peer;
  `session_problems` (pure): a router's refusal (its NOTIFICATION) as a problem of the BGPPeer.
- `NodeStateWriter`: creates the BGPNodeState named after the node when it is absent (owned by
  the Node, so it goes when the Node goes) and merge-patches its status only when it changed;
  an entry keeps the `since` it was written with while its `state` stays the same.
- `ProblemReporter`: one Warning Event per distinct problem per speaker on the object at fault;
  a problem that goes away and comes back is reported again. No conditions: several speakers
  would fight over them.
- `Publisher`: runs both from the speaker's latest `Report`, writing BGPNodeState at most once
  every `interval` seconds (a flapping session is a few writes a minute, not a storm).
Called by `bgp.speaker`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from bgp.convert import Problem
from bgp.views import AdvertisementView, NodeInfo, PeerView, RoutePlan, SessionSummary
from lbipam.k8s.client import Kube
from lbipam.k8s.errors import AlreadyExists, Backoff, NotFound
from lbipam.k8s.events import EventRecorder
from lbipam.k8s.logs import KVLog
from lbipam.k8s.resources import BGPADVERTISEMENTS, BGPNODESTATES, BGPPEERS, NODES, Resource
from lbipam.k8s.status import StatusWriter
from lbipam.k8s.times import rfc3339

Obj = dict[str, Any]
MAX_ERROR = 1024  # characters of lastError: a status, not a log
RESOURCES: dict[str, Resource] = {"BGPPeer": BGPPEERS, "BGPAdvertisement": BGPADVERTISEMENTS, "Node": NODES}
REFUSED = "NotificationReceived"  # the Event reason of a router's refusal
_log = KVLog("bgp.nodestate")


class Session(SessionSummary, Protocol):
    """What the driver reports of one session (bgp.driver.SessionInfo)."""

    @property
    def since(self) -> datetime | None: ...
    @property
    def last_error(self) -> str: ...
    @property
    def refusal(self) -> str: ...


def _aimed_at(advertisement: AdvertisementView, peer: str, node: NodeInfo) -> bool:
    selected = not advertisement.peers or peer in advertisement.peers
    return selected and advertisement.node_selector.matches(node.labels)


def _named(kind: str, name: str, message: str) -> str:
    """The message, saying which object it is about (the planner's refusals already do)."""
    prefix = f"{kind} {name}"
    return message if message.startswith(prefix) else f"{prefix}: {message}"


def peer_entries(
    node: NodeInfo,
    peers: Sequence[PeerView],
    sessions: Mapping[str, Session],
    advertisements: Sequence[AdvertisementView] = (),
    refusals: Mapping[str, Sequence[str]] | None = None,
    bfd: Mapping[str, str] | None = None,
) -> list[Obj]:
    """status.peers, sorted by name: every peer this node opens (or would, but for a problem).

    lastError joins the session's own error, the peer's problems, and the problems and refused
    routes of the advertisements that target the peer from this node. `bfd` (BGPPeer name ->
    BFD state) gives `bfd` for the peers with BFD enabled; absent when BFD is off.
    """
    refusals = refusals or {}
    entries = []
    for peer in sorted(peers, key=lambda p: p.name):
        if not peer.node_selector.matches(node.labels):
            continue  # another node's session (a spec too broken to tell selects every node)
        session = sessions.get(peer.name)
        errors = [session.last_error] if session is not None and session.last_error else []
        errors += [f"BGPPeer {peer.name}: {p}" for p in peer.problems]
        for ad in advertisements:
            if _aimed_at(ad, peer.name, node):
                errors += [
                    f"BGPAdvertisement {ad.name}: {p}" for p in (*ad.problems, *refusals.get(ad.name, ()))
                ]
        error = "; ".join(errors)
        entry: Obj = {
            "name": peer.name,
            "peerAddress": session.address if session is not None else peer.address,
            "state": session.state if session is not None else "Idle",
            "advertised": session.advertised if session is not None else 0,
            "lastError": error if len(error) <= MAX_ERROR else error[: MAX_ERROR - 3] + "...",
        }
        if session is not None and session.since is not None:
            entry["since"] = rfc3339(session.since)
        if peer.bfd is not None and bfd is not None:
            entry["bfd"] = bfd.get(peer.name, "Down")
        entries.append(entry)
    return entries


def session_problems(sessions: Mapping[str, Session]) -> list[Problem]:
    """A router that ended a session with a NOTIFICATION, as one problem of the BGPPeer for as
    long as the session flaps: one Event, however many times it is refused."""
    return [
        Problem("BGPPeer", name, REFUSED, f"the router at {s.address} ended the session: {s.refusal}")
        for name, s in sorted(sessions.items())
        if s.refusal
    ]


def keep_since(entries: list[Obj], written: Mapping[str, Obj]) -> list[Obj]:
    """`entries` with the `since` last written for each peer whose `state` is still the same:
    `since` changes only when `state` does, as a reader sees it, even if the session went
    through other states between two writes."""
    out = []
    for entry in entries:
        before = written.get(entry["name"])
        same = before is not None and before.get("state") == entry["state"] and before.get("since")
        out.append({**entry, "since": before["since"]} if same and before is not None else entry)
    return out


class NodeStateWriter:
    """Keeps `BGPNodeState/<node>` status.peers as given; writes only on change."""

    def __init__(self, kube: Kube, status: StatusWriter, node: str) -> None:
        self.kube = kube
        self.status = status
        self.node = node
        self._obj: Obj | None = None
        self.writes = 0
        self._log = _log.bind(kind="BGPNodeState", name=node)

    async def write(self, peers: list[Obj], owner: Mapping[str, Any] | None = None) -> bool:
        """Make status.peers `peers`; `owner` (the Node) becomes the owner of a new object.
        Whether anything was written."""
        for attempt in range(2):
            obj = self._obj or await self._ensure(owner)
            current = {p["name"]: p for p in (obj.get("status") or {}).get("peers") or []}
            peers = keep_since(peers, current)
            try:
                written = await self.status.patch_status(BGPNODESTATES, obj, {"peers": peers})
            except NotFound:
                self._obj = None  # deleted under us: create it again, once
                if attempt:
                    raise
                continue
            if written is not None:
                self._obj = written
                self.writes += 1
                self._log.debug("status written", peers=len(peers))
            return written is not None
        return False

    async def _ensure(self, owner: Mapping[str, Any] | None) -> Obj:
        try:
            self._obj = await self.kube.get(BGPNODESTATES, self.node)
            return self._obj
        except NotFound:
            pass
        meta: Obj = {"name": self.node}
        owner_meta = (owner or {}).get("metadata") or {}
        if owner_meta.get("uid"):
            meta["ownerReferences"] = [
                {"apiVersion": "v1", "kind": "Node", "name": self.node, "uid": owner_meta["uid"]}
            ]
        body = {"apiVersion": BGPNODESTATES.api_version, "kind": BGPNODESTATES.kind, "metadata": meta}
        try:
            self._obj = await self.kube.create(BGPNODESTATES, body, field_manager=self.status.field_manager)
            self._log.info("created")
        except AlreadyExists:
            self._obj = await self.kube.get(BGPNODESTATES, self.node)
        return self._obj


class ProblemReporter:
    """Warning Events about bad BGPPeers and BGPAdvertisements, once per distinct problem."""

    def __init__(self, recorder: EventRecorder) -> None:
        self.recorder = recorder
        self._reported: set[tuple[str, str, str, str]] = set()

    async def report(self, problems: Iterable[Problem], objects: Mapping[tuple[str, str], Obj]) -> int:
        """Record an Event for each problem not reported before; `objects` maps (kind, name) to
        the object. Returns how many Events were recorded."""
        current = {(p.kind, p.name, p.reason, p.message) for p in problems}
        self._reported &= current  # gone problems may be reported again when they come back
        recorded = 0
        for kind, name, reason, message in sorted(current - self._reported):
            obj = objects.get((kind, name))
            if obj is None:
                continue
            event = await self.recorder.record(
                obj, reason, message, type="Warning", action="Announce", resource=RESOURCES.get(kind)
            )
            if event is not None:  # else (logged by the recorder) try again next round
                self._reported.add((kind, name, reason, message))
                recorded += 1
        return recorded


@dataclass(frozen=True)
class Report:
    """What the speaker last planned, for `Publisher`: read afresh at every publication."""

    node: NodeInfo
    peers: Sequence[PeerView]
    advertisements: Sequence[AdvertisementView]
    plan: RoutePlan
    problems: Sequence[Problem]  # of the objects the round read
    objects: Mapping[tuple[str, str], Obj]  # (kind, name) -> object, for the Events
    owner: Mapping[str, Any] | None  # the Node
    sessions: Mapping[str, Session] = field(default_factory=dict)
    bfd: Mapping[str, str] = field(default_factory=dict)  # BGPPeer name -> BFD state


class Publisher:
    """BGPNodeState and the Events from the latest `Report`, when `due()` was called: Events at
    once, BGPNodeState at most once every `interval` seconds."""

    def __init__(self, writer: NodeStateWriter, reporter: ProblemReporter, interval: float) -> None:
        self.writer, self.reporter, self.interval = writer, reporter, interval
        self._due = asyncio.Event()
        self._last_write = float("-inf")

    def due(self) -> None:
        self._due.set()

    async def run(self, report: Callable[[], Report | None]) -> None:
        backoff = Backoff(base=0.5, cap=30.0)
        loop = asyncio.get_running_loop()
        while True:
            await self._due.wait()
            self._due.clear()
            try:
                await self.publish(report(), events_only=True)
                wait = self._last_write + self.interval - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)  # the rate limit of BGPNodeState writes
                    self._due.clear()  # what came meanwhile is in what is written now
                if await self.publish(report()):
                    self._last_write = loop.time()
                backoff.reset()
            except Exception as err:  # the API, or a bug: BGPNodeState is worth no crash
                delay = backoff.next()
                _log.warning("BGPNodeState not written", error=repr(err), retry_in=f"{delay:.1f}s")
                await asyncio.sleep(delay)
                self._due.set()

    async def publish(self, report: Report | None, events_only: bool = False) -> bool:
        """Record the Events not recorded yet and (unless `events_only`) write BGPNodeState.
        Whether BGPNodeState was written."""
        if report is None:
            return False
        problems = [*report.problems, *session_problems(report.sessions)]
        await self.reporter.report(problems, report.objects)
        if events_only:
            return False
        entries = peer_entries(
            report.node,
            report.peers,
            report.sessions,
            report.advertisements,
            report.plan.refusals,
            report.bfd,
        )
        return await self.writer.write(entries, owner=report.owner)
