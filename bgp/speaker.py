"""The speaker process of one node (`lbipam speaker --node NAME`): cluster objects in, routes out.

Informers keep Nodes (only this one), Services, EndpointSlices, LoadBalancerIPPools,
PodCIDRPools, BGPPeers and BGPAdvertisements; handlers only mark what changed and wake the
planning loop. The loop plans at most once per `debounce` (a burst of changes is one round),
converts the snapshot to views (`bgp.convert`), plans (`bgp.planner.plan_routes`), hands the plan
to the driver (which makes ExaBGP announce exactly that), and has `bgp.nodestate.Publisher` tell
people (BGPNodeState, Events about bad input and refusing routers). Secrets holding TCP-MD5
passwords are read by name (`lbipam.k8s.secrets`) when a peer changes and again every `secret_refresh`.
BFD (`bgp.bfdpeers`, its own process) runs with the peers that enable it; a BFD Down holds the
peer's BGP session down (`driver.hold_down`) until BFD is Up again (`driver.release`).

Shutdown (the task is cancelled on SIGTERM): planning stops; `bgp.rules.on_sigterm` decides per
peer whether this is a rollout (graceful restart: the routes stay with the router until the next
speaker's End-of-RIB) or a drain / departure (withdraw first); `driver.stop(keep)` does it and
stops ExaBGP; BFD then says AdminDown; BGPNodeState shows the sessions down. Called by `bgp.main`; tests run
`Speaker.run()` as a task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from bgp.bfdpeers import BfdPeers
from bgp.convert import (
    Problem,
    advertisement_view,
    announced_service,
    node_info,
    peer_view,
    pod_pool_infos,
    pool_infos,
    slice_service,
)
from bgp.nodestate import NodeStateWriter, ProblemReporter, Publisher, Report, Session
from bgp.planner import plan_routes
from bgp.rules import on_sigterm
from bgp.views import AdvertisementView, AnnouncedService, NodeInfo, PeerView, PoolInfo, RoutePlan
from lbipam.core.bgpcheck import address_losses, contender, secret_ref
from lbipam.k8s.client import Kube
from lbipam.k8s.errors import Backoff, KubeError
from lbipam.k8s.events import SPEAKER, EventRecorder
from lbipam.k8s.informer import Informer
from lbipam.k8s.logs import KVLog
from lbipam.k8s.resources import (
    BGPADVERTISEMENTS,
    BGPPEERS,
    ENDPOINTSLICES,
    LBPOOLS,
    NODES,
    PODCIDRPOOLS,
    SERVICES,
)
from lbipam.k8s.secrets import Secrets
from lbipam.k8s.status import SPEAKER_FIELD_MANAGER, StatusWriter
from lbipam.observe.metrics import PeerMetrics

Obj = dict[str, Any]
Key = tuple[str, str]
_log = KVLog("bgp.speaker")


class Driver(Protocol):
    """What the speaker needs of `bgp.driver.Driver`."""

    on_change: Callable[[], None] | None  # called when sessions() changed

    async def apply(self, plan: RoutePlan, peers: Sequence[PeerView]) -> None: ...
    async def stop(self, keep: Collection[str] = ()) -> None: ...
    def sessions(self) -> Mapping[str, Session]: ...
    async def hold_down(self, peer: str, reason: str) -> None: ...
    async def release(self, peer: str) -> None: ...


@dataclass(frozen=True)
class SpeakerOptions:
    node: str
    default_class: bool = True  # announce Services without a loadBalancerClass
    debounce: float = 0.05  # at most one planning round per this many seconds
    secret_refresh: float = 60.0  # seconds between re-reads of the MD5 Secrets
    status_interval: float = 3.0  # BGPNodeState is written at most once per this many seconds


def _key(obj: Obj) -> Key:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


class Speaker:
    def __init__(
        self,
        kube: Kube,
        driver: Driver,
        options: SpeakerOptions,
        *,
        recorder: EventRecorder | None = None,
        status: StatusWriter | None = None,
        bfd: BfdPeers | None = None,
    ) -> None:
        self.kube = kube
        self.driver = driver
        driver.on_change = self.changed
        self.options = options
        self.node = options.node
        self.nodes = Informer(kube, NODES, field_selector={"metadata.name": options.node})
        self.services = Informer(kube, SERVICES)
        self.slices = Informer(kube, ENDPOINTSLICES)
        self.pools = Informer(kube, LBPOOLS)
        self.pod_pools = Informer(kube, PODCIDRPOOLS)
        self.peers = Informer(kube, BGPPEERS)
        self.advertisements = Informer(kube, BGPADVERTISEMENTS)
        self.secrets = Secrets(kube)
        self.reporter = ProblemReporter(recorder or EventRecorder(kube, SPEAKER, options.node[:128]))
        self.nodestate = NodeStateWriter(kube, status or StatusWriter(kube, SPEAKER_FIELD_MANAGER), self.node)
        self.publisher = Publisher(self.nodestate, self.reporter, options.status_interval)
        self._bfd_hold = asyncio.Event()  # BFD changed which BGP sessions to hold down
        self.bfd = bfd or BfdPeers()
        self.bfd.on_change, self.bfd.on_hold = self.publisher.due, self._bfd_hold.set
        self.plans = 0  # rounds planned and applied (tests wait on it)
        self.plan: RoutePlan | None = None
        self.ready = asyncio.Event()  # the first plan is applied
        self._announced: dict[str, AnnouncedService] = {}
        self._dirty: set[str] = set()  # Service keys whose view is to be rebuilt
        self._slices_of: dict[Key, set[str]] = {}  # Service -> names of its EndpointSlices
        self._accepted: dict[str, PoolInfo] = {}  # last valid spec of each pool
        self._report: Report | None = None
        self._decisions: dict[tuple[str, str, str | None], str] = {}
        self._wake = asyncio.Event()
        self._last_round = float("-inf")  # loop time the last round ended
        self._round_took = 0.0  # seconds the last round took
        self._node_missing = False
        self._log = _log.bind(node=self.node)
        self.services.add_handler(self._on_service)
        self.slices.add_handler(self._on_slice)
        self.peers.add_handler(self._on_peer)
        for informer in (self.nodes, self.pools, self.pod_pools, self.advertisements):
            informer.add_handler(lambda *_: self._wake.set())

    def informers(self) -> list[Informer]:
        informers = [self.nodes, self.pools, self.pod_pools, self.peers, self.advertisements]
        return [*informers, self.slices, self.services]

    # ---- change notifications (cheap: mark and wake) ---------------------------------------
    def _on_service(self, event: str, new: Obj, old: Obj | None) -> None:
        namespace, name = _key(new)
        self._dirty.add(f"{namespace}/{name}")
        self._wake.set()

    def _on_slice(self, event: str, new: Obj, old: Obj | None) -> None:
        name = _key(new)[1]
        for obj in (old, new):
            service = slice_service(obj) if obj is not None else None
            if service is None:
                continue
            names = self._slices_of.setdefault(service, set())
            if event == "DELETED" or obj is old:
                names.discard(name)
            else:
                names.add(name)
            if not names:
                del self._slices_of[service]
            self._dirty.add(f"{service[0]}/{service[1]}")
        self._wake.set()

    def _on_peer(self, event: str, new: Obj, old: Obj | None) -> None:
        for obj in (new, old):
            ref = secret_ref(obj) if obj is not None else None
            if ref is not None:
                self.secrets.stale.add(ref.where)  # a peer change re-reads its Secret
        self._wake.set()

    def is_ready(self) -> bool:
        """/readyz: every informer synced and the first plan handed to ExaBGP."""
        return self.ready.is_set()

    def peer_metrics(self) -> dict[str, PeerMetrics]:
        """lbipam_bgp_session_up / lbipam_bgp_routes_announced, per BGPPeer, at scrape time."""
        sessions = self.driver.sessions().items()
        return {name: self.bfd.metrics(name, s.state == "Established", s.advertised) for name, s in sessions}

    def changed(self) -> None:
        """The driver's change notification: a session changed state; rewrite BGPNodeState."""
        self.publisher.due()

    # ---- running ------------------------------------------------------------------------------
    async def run(self) -> None:
        """Until cancelled; then withdraw everything (driver.stop()) before returning."""
        try:
            async with asyncio.TaskGroup() as group:
                for informer in self.informers():
                    group.create_task(informer.run(), name=f"speaker-informer-{informer.resource.plural}")
                group.create_task(self._plan_loop(), name="speaker-plan")
                group.create_task(self.publisher.run(self._current), name="speaker-nodestate")
                group.create_task(self._secret_timer(), name="speaker-secrets")
                group.create_task(self.bfd.run(), name="speaker-bfd")
                group.create_task(self._bfd_holds(), name="speaker-bfd-holds")
        finally:
            await self._shutdown()

    async def _shutdown(self) -> None:
        keep = self._rollout()
        self._log.info("stopping", keep=sorted(keep) or None)
        await self.driver.stop(keep)
        if keep:
            self._log.info("ExaBGP stopped, routes left to graceful restart", peers=sorted(keep))
        else:
            self._log.info("routes withdrawn, ExaBGP stopped")
        await self.bfd.stop(admin_down=True)  # AdminDown: the routers see a stop, not a failure
        # Best effort, bounded: the routes are gone already, this only tells people so.
        write = asyncio.ensure_future(self.publisher.publish(self._current()))
        done, _ = await asyncio.wait({write}, timeout=5.0)
        if not done:
            write.cancel()
        with contextlib.suppress(asyncio.CancelledError, KubeError):
            await write

    def _rollout(self) -> set[str]:
        """The opened peers whose routes stay with their routers across this stop (a rollout);
        the others are withdrawn. Decided on the latest Node the informer saw."""
        if self._report is None:
            return set()
        obj = None if self._node_missing else self.nodes.get(None, self.node)
        node = node_info(obj) if obj is not None else None
        keep = set()
        for peer in self._report.peers:
            if peer.problems or not peer.node_selector.matches(self._report.node.labels):
                continue
            decision = on_sigterm(node, peer)
            self._log.info("on SIGTERM", peer=peer.name, keep=decision.keep, reason=decision.reason)
            if decision.keep:
                keep.add(peer.name)
        return keep

    async def _plan_loop(self) -> None:
        for informer in self.informers():
            await informer.synced.wait()
        self._wake.set()
        backoff = Backoff(base=0.5, cap=30.0)
        while True:
            await self._settle()
            began = asyncio.get_running_loop().time()
            try:
                await self._round()
                backoff.reset()
                self._last_round = asyncio.get_running_loop().time()
                self._round_took = self._last_round - began
            except Exception:  # a bug or a driver failure must not end the speaker: retry later
                delay = backoff.next()
                self._log.exception("planning round failed", retry_in=f"{delay:.1f}s")
                asyncio.get_running_loop().call_later(delay, self._wake.set)

    async def _settle(self) -> None:
        """Wait for a change; plan at most once per `debounce`. After a quiet spell a change is
        planned at once (a lone new Service reaches the routers without waiting); in a burst,
        what arrives while a round runs or within `debounce` of its end goes into the next one.
        (Waiting for the changes to pause instead would hold a steady trickle back for long.)"""
        await self._wake.wait()
        loop = asyncio.get_running_loop()
        # A round over many Services costs more than `debounce`: then wait as long as it took,
        # so that a long burst keeps the speaker at most about half busy, not replanning nonstop.
        wait = self._last_round + max(self.options.debounce, self._round_took) - loop.time()
        await asyncio.sleep(max(0.0, wait))  # a rate limit; 0: what came with this change comes along
        self._wake.clear()

    async def _bfd_holds(self) -> None:
        """Hand the driver the BGP sessions BFD holds down, and those it lets up again."""
        held: frozenset[str] = frozenset()
        while True:
            await self._bfd_hold.wait()
            self._bfd_hold.clear()
            now = self.bfd.held()
            for name in sorted(now - held):
                await self.driver.hold_down(name, "BFD is down; up again when BFD is Up")
            for name in sorted(held - now):
                await self.driver.release(name)
            held = now

    async def _secret_timer(self) -> None:
        while True:
            await asyncio.sleep(self.options.secret_refresh)
            wanted = set(self.secrets.reads)
            if wanted and await self.secrets.read(wanted, force=True):
                self._log.info("a password Secret changed")
                self._wake.set()

    # ---- one planning round -----------------------------------------------------------------
    async def _round(self) -> None:
        node_obj = self.nodes.get(None, self.node)
        if node_obj is None:
            if not self._node_missing:
                self._log.warning("node not found: announcing nothing until it exists")
                self._node_missing = True
                if self.plan is not None:  # it was deleted: without its labels, nothing is safe
                    await self.driver.apply(RoutePlan(), [])
                    self.plan = RoutePlan()
            return
        self._node_missing = False
        node = node_info(node_obj)
        peers, problems = await self._peer_views(node)
        ads: list[AdvertisementView] = []
        for obj in self.advertisements.list():
            ad, found = advertisement_view(obj)
            ads.append(ad)
            problems += found
        self._accepted, pools = pool_infos(self.pools.list(), self._accepted)
        plan = plan_routes(node, peers, ads, self._services(), pools, pod_pool_infos(self.pod_pools.list()))
        opened = [p for p in peers if not p.problems and p.node_selector.matches(node.labels)]
        self.bfd.configure(opened)
        # A SIGTERM may cancel this mid-way: the driver keeps what it is unsure of, and stop()
        # withdraws that too.
        await self.driver.apply(plan, opened)
        self.plan, self.plans = plan, self.plans + 1
        self.ready.set()
        self._log_decisions(plan)
        for ad_name, messages in plan.refusals.items():
            problems += [Problem("BGPAdvertisement", ad_name, "RouteRefused", m) for m in messages]
        problems += [Problem("Node", node.name, "PodCIDRNotInPool", m) for m in plan.pod_cidr_refusals]
        self._report = Report(node, peers, ads, plan, problems, self._objects(), node_obj)
        self.publisher.due()

    async def _peer_views(self, node: NodeInfo) -> tuple[list[PeerView], list[Problem]]:
        """Every peer's view; Secrets read for the peers that select this node. Problems of a
        peer that does not select this node are other speakers' to report."""
        objs = self.peers.list()
        first = [peer_view(obj, node, {})[0] for obj in objs]
        mine = [o for o, v in zip(objs, first, strict=True) if v.node_selector.matches(node.labels)]
        refs = {ref.where for obj in mine if (ref := secret_ref(obj)) is not None}
        await self.secrets.read(refs)
        # Of two peers toward one address this node would open, only the older's session opens
        # (the controller's AddressInUse condition says so; no Event here: it would come from
        # every node).
        contenders = [c for obj in objs if (c := contender(obj)) is not None]
        losses = address_losses(contenders, [(node.name, node.labels)])
        peers, problems = [], []
        for obj in objs:
            view, found = peer_view(obj, node, self.secrets.reads)
            loss = losses.get(view.name)
            if loss is not None:
                view = replace(view, problems=(*view.problems, loss.message()))
            peers.append(view)
            if any(p.reason == "InvalidSpec" for p in found) or view.node_selector.matches(node.labels):
                problems += found
        return peers, problems

    def _services(self) -> list[AnnouncedService]:
        """The announced Services, rebuilding only the views of Services marked dirty."""
        dirty, self._dirty = self._dirty, set()
        for key in dirty:
            namespace, name = key.split("/", 1)
            obj = self.services.get(namespace, name)
            slices = [
                s
                for slice_name in self._slices_of.get((namespace, name), ())
                if (s := self.slices.get(namespace, slice_name)) is not None
            ]
            view = announced_service(obj, slices, self.options.default_class) if obj else None
            if view is None:
                self._announced.pop(key, None)
            else:
                self._announced[key] = view
        return list(self._announced.values())

    def _objects(self) -> dict[tuple[str, str], Obj]:
        objects = {("BGPPeer", _key(o)[1]): o for o in self.peers.list()}
        objects.update({("BGPAdvertisement", _key(o)[1]): o for o in self.advertisements.list()})
        objects.update({("Node", _key(o)[1]): o for o in self.nodes.list()})
        return objects

    def _log_decisions(self, plan: RoutePlan) -> None:
        """Debug: the decisions that changed since the last round, with their reason codes."""
        if not self._log.logger.isEnabledFor(logging.DEBUG):
            self._decisions = {}
            return
        now = {(d.service, d.prefix, d.peer): d.reason for d in plan.decisions}
        details = {(d.service, d.prefix, d.peer): d.detail for d in plan.decisions}
        for key, reason in sorted(now.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or "")):
            if self._decisions.get(key) != reason:
                service, prefix, peer = key
                self._log.debug(
                    "decision", service=service, prefix=prefix, peer=peer, reason=reason, detail=details[key]
                )
        for service, prefix, peer in self._decisions.keys() - now.keys():
            self._log.debug("decision", service=service, prefix=prefix, peer=peer, reason="gone")
        self._decisions = now

    # ---- BGPNodeState -------------------------------------------------------------------------
    def _current(self) -> Report | None:
        """The last round's report with the sessions as the driver has them now."""
        if self._report is None:
            return None
        owner = self.nodes.get(None, self.node) or self._report.owner
        return replace(self._report, sessions=self.driver.sessions(), owner=owner, bfd=self.bfd.states())
