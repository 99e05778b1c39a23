"""The BGP status controller: the `Ready` condition of every BGPPeer and BGPAdvertisement.

Watches BGPPeers, BGPAdvertisements and Nodes (their labels only: the peerAddress contest is per
node; the PodCIDR controller's Node informer is shared when it runs), and reads the peers' MD5 Secrets
by name (`lbipam.k8s.secrets`: RBAC `get` only) when a peer changes and every `secret_refresh`
seconds. While it leads, each round judges every object anew with `lbipam.core.bgpcheck` (the
speaker opens sessions by the same code) and writes, through the status subresource, only the
conditions that changed; `lastTransitionTime` moves only when the status does (`set_condition`).
A change to False (or to another reason of False) is also a Warning Event on the object.
Objects are few (tens of peers), so a round over all of them is cheap; rounds run at most once
per `debounce` seconds. Runs inside `lbipam controller` (`ControllerApp`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lbipam.core.bgpcheck import READY, Verdict, judge_advertisements, judge_peers, peer_spec, secret_ref
from lbipam.core.conditions import find_condition, set_condition
from lbipam.k8s.client import Kube
from lbipam.k8s.errors import Backoff, KubeError, NotFound
from lbipam.k8s.events import EventRecorder
from lbipam.k8s.informer import Informer
from lbipam.k8s.logs import KVLog
from lbipam.k8s.resources import BGPADVERTISEMENTS, BGPPEERS, NODES, Resource
from lbipam.k8s.secrets import Secrets
from lbipam.k8s.status import StatusWriter
from lbipam.k8s.times import now as wall_clock

Obj = dict[str, Any]
_log = KVLog("lbipam.controller.bgpstatus")


@dataclass(frozen=True)
class BGPStatusOptions:
    secret_refresh: float = 60.0  # seconds between re-reads of the MD5 Secrets
    debounce: float = 0.05  # at most one round per this many seconds


def _meta(obj: Obj | None) -> Obj:
    return (obj or {}).get("metadata") or {}


def labels_only(node: Obj) -> Obj:
    """What the contest reads of a Node (its name and labels), all a cache of 5,000 Nodes keeps."""
    meta = _meta(node)
    kept = ("name", "uid", "resourceVersion", "creationTimestamp", "labels")
    return {"metadata": {k: meta[k] for k in kept if k in meta}}


def _newer(cached: Obj | None, written: Obj | None) -> Obj | None:
    """The later of the cached copy and the answer to our last write (the watch may lag)."""
    if cached is None or written is None or _meta(cached).get("uid") != _meta(written).get("uid"):
        return cached
    try:
        ours, theirs = int(_meta(written)["resourceVersion"]), int(_meta(cached)["resourceVersion"])
    except (KeyError, TypeError, ValueError):
        return cached  # resourceVersions are opaque elsewhere: trust the watch
    return written if ours > theirs else cached


class BGPStatusController:
    name = "bgpstatus"

    def __init__(
        self,
        kube: Kube,
        status: StatusWriter,
        recorder: EventRecorder,
        options: BGPStatusOptions | None = None,
        *,
        nodes: Informer | None = None,
        clock: Callable[[], datetime] = wall_clock,
    ) -> None:
        self.options = options or BGPStatusOptions()
        self.status, self.recorder, self.clock = status, recorder, clock
        self.peers = Informer(kube, BGPPEERS)
        self.advertisements = Informer(kube, BGPADVERTISEMENTS)
        self._own_nodes = nodes is None
        self.nodes = nodes if nodes is not None else Informer(kube, NODES, trim=labels_only)
        self.secrets = Secrets(kube)
        self.ready = asyncio.Event()  # set once a round after leading began wrote everything
        self.leading = False
        self.done, self.failed = 0, 0  # writes made, writes failed (retried later)
        self._written: dict[tuple[str, str], Obj] = {}  # (plural, name) -> the server's answer
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()  # no round running
        self._idle.set()
        self._draining = False
        self.peers.add_handler(self._on_peer)
        self.advertisements.add_handler(lambda *_: self._wake.set())
        self.nodes.add_handler(self._on_node)

    # ---- what ControllerApp runs --------------------------------------------------------------
    def informers(self) -> list[Informer]:
        """The informers this controller runs (a shared Node informer is run by its owner)."""
        return [self.peers, self.advertisements, *([self.nodes] if self._own_nodes else [])]

    def watched(self) -> list[Informer]:
        return [self.peers, self.advertisements, self.nodes]

    def work_done(self) -> tuple[int, int]:
        return self.done, self.failed

    def quiet(self) -> bool:
        """Leading, a round done, and nothing waiting: tests wait on it."""
        return self.leading and self.ready.is_set() and self._idle.is_set() and not self._wake.is_set()

    async def drain(self) -> None:
        """Start no new round; return once the running one has written what it planned."""
        self._draining = True
        self._wake.set()
        await self._idle.wait()

    # ---- change notifications -----------------------------------------------------------------
    def _on_peer(self, event: str, new: Obj, old: Obj | None) -> None:
        for obj in (new, old):
            ref = secret_ref(obj) if obj is not None else None
            if ref is not None:
                self.secrets.stale.add(ref.where)  # a peer change re-reads its Secret
        self._wake.set()

    def _on_node(self, event: str, new: Obj, old: Obj | None) -> None:
        if old is None or event != "MODIFIED" or _meta(old).get("labels") != _meta(new).get("labels"):
            self._wake.set()  # the contest reads Node labels only

    # ---- leading ------------------------------------------------------------------------------
    async def lead(self) -> None:
        """Judge and write until cancelled (leadership lost or shutdown) or drained."""
        for informer in self.watched():
            await informer.synced.wait()
        self.leading, self._draining, self._written = True, False, {}
        refresh = asyncio.create_task(self._refresh(), name="bgpstatus-secrets")
        backoff = Backoff(base=0.5, cap=30.0)
        loop = asyncio.get_running_loop()
        self._wake.set()
        try:
            while True:
                await self._wake.wait()
                if self._draining:
                    return
                await asyncio.sleep(self.options.debounce)  # a rate limit: a burst is one round
                self._wake.clear()
                self._idle.clear()
                try:
                    done = await self._round()
                except KubeError as err:  # a Secret read that failed for good: judge again later
                    _log.warning("BGP status round failed", error=str(err))
                    done = False
                except Exception:  # a bug must not end the controller: log, retry later
                    _log.exception("BGP status round failed")
                    done = False
                finally:
                    self._idle.set()
                if done:
                    backoff.reset()
                    self.ready.set()
                else:
                    loop.call_later(backoff.next(), self._wake.set)
        finally:
            refresh.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresh
            self.leading = False
            self.ready.clear()

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(self.options.secret_refresh)
            wanted = set(self.secrets.reads)
            if wanted and await self.secrets.read(wanted, force=True):
                _log.info("a password Secret changed")
                self._wake.set()

    async def _round(self) -> bool:
        """One judgement of everything; whether every write went through."""
        peers = self.peers.list()
        wanted = {
            ref.where
            for obj in peers
            if (ref := secret_ref(obj)) is not None and peer_spec(obj)[0] is not None
        }
        await self.secrets.read(wanted)
        nodes = [
            (str(_meta(n).get("name") or ""), dict(_meta(n).get("labels") or {})) for n in self.nodes.list()
        ]
        verdicts = [
            (BGPPEERS, judge_peers(peers, nodes, self.secrets.reads)),
            (
                BGPADVERTISEMENTS,
                judge_advertisements(self.advertisements.list(), (str(_meta(p).get("name")) for p in peers)),
            ),
        ]
        informers = {BGPPEERS: self.peers, BGPADVERTISEMENTS: self.advertisements}
        judged_keys = {(res.plural, name) for res, judged in verdicts for name in judged}
        self._written = {k: v for k, v in self._written.items() if k in judged_keys}
        # A Secret whose read failed for now (429, 5xx, no connection): its peers are judged again
        # later, not turned False (with an Event) for a moment.
        unsure = {
            str(_meta(obj).get("name"))
            for obj in peers
            if (ref := secret_ref(obj)) is not None and ref.where in self.secrets.stale
        }
        ok = not unsure
        for resource, judged in verdicts:
            for name, verdict in sorted(judged.items()):
                if resource is BGPPEERS and name in unsure:
                    continue
                ok = await self._write(resource, informers[resource], name, verdict) and ok
        return ok

    async def _write(self, resource: Resource, informer: Informer, name: str, verdict: Verdict) -> bool:
        key = (resource.plural, name)
        obj = _newer(informer.get(None, name), self._written.get(key))
        if obj is None:
            return True  # deleted meanwhile
        current = (obj.get("status") or {}).get("conditions") or []
        generation = _meta(obj).get("generation")
        wanted = set_condition(
            current, READY, verdict.status, verdict.reason, verdict.message, generation, self.clock()
        )
        if wanted == current:
            return True
        before = find_condition(current, READY)
        try:
            written = await self.status.patch_status(resource, obj, {"conditions": wanted})
        except NotFound:
            return True
        except KubeError as err:
            self.failed += 1
            _log.warning("Ready condition not written", kind=resource.kind, name=name, error=str(err))
            return False
        self.done += 1
        if written is not None:
            self._written[key] = written
        newly_false = before is None or (before.get("status"), before.get("reason")) != (
            "False",
            verdict.reason,
        )
        if not verdict.ready and newly_false:
            await self.recorder.record(
                obj, verdict.reason, verdict.message, type="Warning", resource=resource
            )
        return True
