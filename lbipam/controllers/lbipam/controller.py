"""The LB-IPAM controller: watches Services, Namespaces and LoadBalancerIPPools; while it leads,
plans every change with `LBPlanner` and hands the plans to `LBWriter`.

Informers run all the time (a standby keeps a warm cache); `lead()` runs only while this process
holds the Lease and starts from scratch each time: pools, then every existing assignment, then
new allocations (DESIGN.md "Restart"). Changes are collected as dirty keys and planned in
batches, one at a time (the planner is not shared), while the writer works in parallel.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lbipam.controllers.executor import KeyedExecutor
from lbipam.controllers.lbipam.convert import pool_view, service_view
from lbipam.controllers.lbipam.writer import LBWriter
from lbipam.core.lbplanner import LBPlanner
from lbipam.core.lbstatus import pool_status
from lbipam.core.lbviews import ServiceView
from lbipam.k8s.client import Kube
from lbipam.k8s.events import EventRecorder
from lbipam.k8s.informer import Informer
from lbipam.k8s.logs import KVLog
from lbipam.k8s.resources import LBPOOLS, NAMESPACES, SERVICES
from lbipam.k8s.status import StatusWriter
from lbipam.k8s.tasks import Tasks

Obj = dict[str, Any]
BATCH = 256  # Services planned before yielding to the event loop
POOL_STATUS_INTERVAL = 1.0  # seconds between pool status rounds while Services stream in
_log = KVLog("lbipam.controller.lbipam")


@dataclass(frozen=True)
class LBOptions:
    default_class: bool = True  # handle Services without a loadBalancerClass
    reuse_delay: float = 30.0  # seconds a released IP is held back
    concurrency: int = 8  # writes in flight


def _key(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


class LBController:
    def __init__(
        self,
        kube: Kube,
        status: StatusWriter,
        recorder: EventRecorder,
        options: LBOptions | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.options = options or LBOptions()
        self.clock = clock
        self.services = Informer(kube, SERVICES)
        self.namespaces = Informer(kube, NAMESPACES)
        self.pools = Informer(kube, LBPOOLS)
        self.status = status
        self.recorder = recorder
        self.planner: LBPlanner | None = None
        self.writer: LBWriter | None = None  # while leading
        self.ready = asyncio.Event()  # set once the first full round after start-up is planned
        self._dirty: set[str] = set()
        self._gone: dict[str, Obj] = {}
        self._views: dict[str, tuple[tuple[str, str], ServiceView]] = {}
        self._pools_dirty = True
        self._announced_ready = False
        # Pools whose status changed under us (mostly our own writes): their status is written
        # again once the cache holds the change, since a write skipped as "unchanged" against a
        # cached copy that did not yet show our previous write is caught only so.
        self._recheck: set[str] = set()
        self._wake = asyncio.Event()
        self.services.add_handler(self._on_service)
        self.namespaces.add_handler(self._on_namespace)
        self.pools.add_handler(self._on_pool)

    def start_informers(self, tasks: Tasks) -> None:
        for informer in (self.pools, self.namespaces, self.services):
            tasks.start(f"informer-{informer.resource.plural}", informer.run())

    # ---- change notifications (cheap: mark and wake) ----------------------------------
    def _on_service(self, event: str, new: Obj, old: Obj | None) -> None:
        key = _key(new)
        if event == "DELETED":
            self._gone[key] = new
        else:
            self._gone.pop(key, None)
        self._dirty.add(key)
        self._wake.set()

    def _on_namespace(self, event: str, new: Obj, old: Obj | None) -> None:
        name = (new.get("metadata") or {}).get("name")
        self._dirty.update(_key(s) for s in self.services.list() if s["metadata"].get("namespace") == name)
        self._wake.set()

    def _on_pool(self, event: str, new: Obj, old: Obj | None) -> None:
        if old is not None and old.get("spec") == new.get("spec") and event == "MODIFIED":
            self._recheck.add((new.get("metadata") or {}).get("name", ""))  # a status write
        else:
            self._pools_dirty = True
        self._wake.set()

    # ---- leading -----------------------------------------------------------------------
    async def lead(self) -> None:
        """Plan and write until cancelled (leadership lost or shutdown)."""
        for informer in (self.pools, self.namespaces, self.services):
            await informer.synced.wait()
        executor = KeyedExecutor("lbipam-writer", self.options.concurrency)
        writer = LBWriter(self.services, self.pools, self.status, self.recorder, executor)
        self._announced_ready = False
        planner = self.planner = LBPlanner(self.options.reuse_delay)
        self.writer = writer
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(writer.run(), name="lbipam-writer")
                self._start(planner)
                await self._loop(planner, writer)
        finally:
            writer.close()
            self.planner = self.writer = None
            self.ready.clear()

    def quiet(self) -> bool:
        """Nothing left to do now: leading, the first round planned, no change waiting to be
        planned, no write queued or running, and no waiting Service that a freed address or an
        ending reuse delay may serve. Tests and benchmarks wait on it (with caches that match the
        API: see tests/lbipam_harness.py)."""
        planner, writer = self.planner, self.writer
        if planner is None or writer is None or not self.ready.is_set():
            return False
        if self._dirty or self._pools_dirty or self._recheck or writer.busy:
            return False
        return not (planner.waiting and (planner.freed or planner.next_expiry is not None))

    def work_done(self) -> tuple[int, int]:
        """(writer jobs done, failed) since leading began: unchanged counts mean no write ran."""
        writer = self.writer
        if writer is None:
            return (0, 0)
        lanes = (writer.executor, writer.background)
        return (sum(e.done for e in lanes), sum(e.failed for e in lanes))

    def _start(self, planner: LBPlanner) -> None:
        """Pools, then every assignment the Services carry, then (in the loop) everything else."""
        now = self.clock()
        planner.set_pools([pool_view(p) for p in self.pools.list()], now)
        self._pools_dirty = True  # the loop's first round writes every pool's status
        ordered = sorted(
            self.services.list(), key=lambda s: (s["metadata"].get("creationTimestamp", ""), _key(s))
        )
        gc.disable()  # 10k cached Services make every full collection a 300 ms pause
        try:
            for obj in ordered:
                planner.import_service(self._view(obj), now)
        finally:
            gc.enable()
        # What exists now (the caches, the planner's book) lives as long as the process leads:
        # keep it out of the collector's sweeps.
        gc.freeze()
        self._dirty = {_key(s) for s in ordered}
        self._wake.set()
        _log.info("leading: imported assignments", services=len(ordered), pools=len(planner.pools))

    async def _loop(self, planner: LBPlanner, writer: LBWriter) -> None:
        last_pool_round = -POOL_STATUS_INTERVAL
        while True:
            await self._wait(planner)
            now = self.clock()
            if self._pools_dirty:
                self._pools_dirty = False
                planner.set_pools([pool_view(p) for p in self.pools.list()], now)
                self._dirty.update(_key(s) for s in self.services.list())
            planner.expire(now)
            if planner.freed:
                planner.freed = False
                self._dirty |= planner.waiting
            await self._plan_dirty(planner, writer)
            due = self.clock() - last_pool_round >= POOL_STATUS_INTERVAL
            if planner.touched and (due or not self._dirty):
                last_pool_round = self.clock()
                self._recheck -= planner.touched
                for name in planner.touched & planner.pools.keys():
                    writer.pool(pool_status(planner.pools[name]))
                planner.touched.clear()
            if self._recheck and not self._dirty:
                for name in self._recheck & planner.pools.keys():
                    writer.pool(pool_status(planner.pools[name]))
                self._recheck.clear()
            if not self._dirty:
                self._first_round_done(planner)

    def _first_round_done(self, planner: LBPlanner) -> None:
        self.ready.set()
        if not self._announced_ready:
            self._announced_ready = True
            gc.freeze()  # what the first round built stays too
            _log.info("ready: every Service planned", services=len(self.services), pools=len(planner.pools))

    async def _wait(self, planner: LBPlanner) -> None:
        if self._dirty or self._pools_dirty or self._recheck or (planner.freed and planner.waiting):
            return  # a release in the last round (reuse delay 0) may serve a waiting Service now
        self._wake.clear()
        expiry = planner.next_expiry
        timeout = None if expiry is None else max(0.0, expiry - self.clock())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    async def _plan_dirty(self, planner: LBPlanner, writer: LBWriter) -> bool:
        """Plan a batch of dirty Services; True if anything was planned."""
        keys = sorted(self._dirty)[:BATCH]
        self._dirty.difference_update(keys)
        now = self.clock()
        for key in keys:
            namespace, name = key.split("/", 1)
            obj = self.services.get(namespace, name)
            if obj is None:
                self._views.pop(key, None)
                gone = self._gone.pop(key, None)
                plan = planner.forget(key, now)
                if plan.events:
                    writer.service(plan, last_seen=gone)
                continue
            writer.service(planner.plan(self._view(obj), now))
        await asyncio.sleep(0)  # let informers and writers run between batches
        return bool(keys)

    def _view(self, obj: Obj) -> ServiceView:
        """The Service's view, rebuilt only when it or its namespace changed."""
        meta = obj["metadata"]
        ns = self.namespaces.get(None, meta.get("namespace", "")) or {}
        ns_meta = ns.get("metadata") or {}
        version = (meta.get("resourceVersion", ""), ns_meta.get("resourceVersion", ""))
        key = _key(obj)
        cached = self._views.get(key)
        if cached is not None and cached[0] == version:
            return cached[1]
        view = service_view(obj, ns_meta.get("labels") or {}, self.options.default_class)
        self._views[key] = (version, view)
        return view
