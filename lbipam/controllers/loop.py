"""The planning loop both controllers run while they lead: dirty keys in, plans out.

Informer handlers only mark keys dirty and wake the loop; the loop plans dirty keys in slices
of at most PLAN_SLICE seconds (one planner, never shared), hands the plans to a writer working in
parallel, writes the status of pools whose counts changed (at most once per POOL_STATUS_INTERVAL
while objects stream in), retries waiting objects when addresses are freed or a reuse delay
ends, and says when it is ready and quiet. `lead()` starts from scratch each time leadership is
won: pools, then every existing assignment, then new allocations. `drain()` (on SIGTERM) stops
planning, writes the status of the pools that changed, and waits until every write planned is
made. Subclassed by `LBController` and `PodCIDRController`.

The two steps whose cost grows with the cluster, not with one change (`start`: every object;
`set_pools`: every pool, and a pool may hold 100,000 blocks) run in a worker thread, so that the
event loop keeps answering probes, renewing the Lease and reading watches meanwhile. That is
safe because the planner has one user: the planning task, which waits for the thread; informer
handlers only mark keys, and the hooks read the informer caches by copy (`Informer.list`).
What the caches hold is frozen out of the garbage collector's sweeps (`gc.freeze`) after the
start, after the first round, and each time they have grown by a quarter since.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from lbipam.controllers.lanes import Lanes
from lbipam.core.poolstatus import PoolStatusPlan
from lbipam.k8s.informer import Informer
from lbipam.k8s.logs import KVLog

Obj = dict[str, Any]
BATCH = 256  # objects planned at most before yielding to the event loop
PLAN_SLICE = 0.02  # seconds of planning at most before yielding to the event loop
POOL_STATUS_INTERVAL = 1.0  # seconds between pool status rounds while objects stream in
FREEZE_GROWTH = 1.25  # freeze again once the caches hold a quarter more objects than at the last
FREEZE_MIN = 1000  # ... and at least this many more


def freeze_due(cached: int, at_last_freeze: int) -> bool:
    """Whether the caches have grown enough since the last `gc.freeze()` to freeze again (see
    `PlanningLoop._freeze_if_grown`)."""
    return cached >= max(at_last_freeze * FREEZE_GROWTH, at_last_freeze + FREEZE_MIN)


class Planner(Protocol):
    freed: bool
    waiting: set[str]
    touched: set[str]

    @property
    def pools(self) -> dict[str, Any]: ...
    @property
    def next_expiry(self) -> float | None: ...
    def expire(self, now: float) -> None: ...


class Writer(Protocol):
    @property
    def lanes(self) -> Lanes: ...
    def pool(self, plan: PoolStatusPlan) -> None: ...


class PlanningLoop(ABC):
    def __init__(self, name: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.clock = clock
        self.planner: Any = None  # while leading
        self.writer: Any = None  # while leading
        self.ready = asyncio.Event()  # set once the first full round after leading began is planned
        self._dirty: set[str] = set()
        self._order: list[str] = []  # the dirty keys, sorted once, planned in this order
        self._order_at = 0
        self._busy = False  # a step runs in the worker thread
        self._pools_dirty = True
        # Pools whose status changed under us (mostly our own writes): their status is written
        # again once the cache holds the change, since a write skipped as "unchanged" against a
        # cached copy that did not yet show our previous write is caught only so.
        self._recheck: set[str] = set()
        self._announced = False
        self._frozen_at = 0  # objects cached at the last gc.freeze()
        self._draining = False
        self._planning_stopped = asyncio.Event()  # set when the loop ends (drained or not leading)
        self._wake = asyncio.Event()
        self._log = KVLog(f"lbipam.controller.{name}")

    # ---- what a controller provides ----------------------------------------------------
    @abstractmethod
    def informers(self) -> list[Informer]: ...

    @abstractmethod
    def new_planner(self) -> Planner: ...

    @abstractmethod
    def new_writer(self) -> Writer: ...

    @abstractmethod
    def start(self, planner: Any) -> set[str]:
        """Set the pools and import every existing assignment; returns every key to plan."""

    @abstractmethod
    def set_pools(self, planner: Any) -> set[str]:
        """Give the planner the pools anew; returns the keys to plan again."""

    @abstractmethod
    def plan(self, planner: Any, writer: Any, key: str, now: float) -> None:
        """Plan one key and hand the result to the writer."""

    @abstractmethod
    def pool_status(self, planner: Any, name: str) -> PoolStatusPlan: ...

    def planned(self, planner: Any) -> None:  # noqa: B027 - a hook; most controllers need none
        """Called after each batch of keys is planned, before pool status is written."""

    # ---- change notifications (cheap: mark and wake) ----------------------------------
    def mark(self, *keys: str) -> None:
        self._dirty.update(keys)
        self._wake.set()

    def pool_changed(self, event: str, new: Obj, old: Obj | None) -> None:
        """Informer handler for pools: a spec change replans; a status change is re-checked."""
        if old is not None and old.get("spec") == new.get("spec") and event == "MODIFIED":
            self._recheck.add((new.get("metadata") or {}).get("name", ""))
        else:
            self._pools_dirty = True
        self._wake.set()

    # ---- leading -----------------------------------------------------------------------
    async def lead(self) -> None:
        """Plan and write until cancelled (leadership lost or shutdown)."""
        for informer in self.informers():
            await informer.synced.wait()
        planner, writer = self.new_planner(), self.new_writer()
        self.planner, self.writer, self._announced = planner, writer, False
        self._planning_stopped.clear()
        self._dirty, self._order, self._order_at = set(), [], 0  # start() returns every key
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(writer.lanes.run(), name=f"{self.name}-writer")
                gc.disable()  # a start-up over 10k cached objects: full collections are 300 ms pauses
                try:
                    self._dirty |= await self._off_loop(self.start, planner)
                finally:
                    gc.enable()
                gc.freeze()  # what exists now lives as long as we lead: out of the collector's sweeps
                self._frozen_at = self._cached()
                self._pools_dirty = True  # the first round writes every pool's status
                self._wake.set()
                await self._loop(planner, writer)
        finally:
            self._planning_stopped.set()
            writer.lanes.close()
            self.planner = self.writer = None
            self.ready.clear()

    def quiet(self) -> bool:
        """Nothing left to do now: leading, the first round planned, no change waiting, no write
        queued or running, and no waiting object that a freed address or an ending reuse delay
        may serve. Tests and benchmarks wait on it."""
        planner, writer = self.planner, self.writer
        if planner is None or writer is None or not self.ready.is_set():
            return False
        if self._dirty or self._pools_dirty or self._recheck or self._busy or writer.lanes.busy:
            return False
        if planner.touched:  # pool status to write (set_pools ran in the thread; the write comes next)
            return False
        return not (planner.waiting and (planner.freed or planner.next_expiry is not None))

    @property
    def draining(self) -> bool:
        return self._draining

    async def drain(self) -> None:
        """Plan nothing more and return once everything planned is written (the caller bounds
        the wait): Events and annotations of a burst are not lost to a restart."""
        self._draining = True
        self._wake.set()
        writer = self.writer
        if writer is not None:
            await self._planning_stopped.wait()  # its last batch planned, the pools' status queued
            await writer.lanes.drained()

    def work_done(self) -> tuple[int, int]:
        """(writer jobs done, failed) since leading began: unchanged counts mean no write ran."""
        return self.writer.lanes.done if self.writer is not None else (0, 0)

    async def _loop(self, planner: Planner, writer: Writer) -> None:
        last_pool_round = -POOL_STATUS_INTERVAL
        while True:
            await self._wait(planner)
            if self.draining:
                break
            now = self.clock()
            if self._pools_dirty:
                self._pools_dirty = False
                self._dirty |= await self._off_loop(self.set_pools, planner)
            planner.expire(now)
            if planner.freed:
                planner.freed = False
                self._dirty |= planner.waiting
            await self._plan_dirty(planner, writer)
            self.planned(planner)
            due = self.clock() - last_pool_round >= POOL_STATUS_INTERVAL
            if planner.touched and (due or not self._dirty):
                last_pool_round = self.clock()
                self._recheck -= planner.touched
                self._write_pools(planner, writer, planner.touched)
                planner.touched.clear()
            if self._recheck and not self._dirty:
                self._write_pools(planner, writer, self._recheck)
                self._recheck.clear()
            if not self._dirty:
                self._first_round_done(planner)
                self._freeze_if_grown()
        # Draining: the pools' status carries what the next leader reads (counts, the reuse delays).
        self._write_pools(planner, writer, planner.touched | self._recheck)
        planner.touched.clear()
        self._planning_stopped.set()

    def _write_pools(self, planner: Planner, writer: Writer, names: set[str]) -> None:
        for name in names & planner.pools.keys():
            writer.pool(self.pool_status(planner, name))

    def _cached(self) -> int:
        return sum(len(informer) for informer in self.informers())

    def _freeze_if_grown(self) -> None:
        """Freeze what exists (gc.freeze) once the caches have grown by a quarter since the last
        freeze, at a moment with nothing left to plan. The cached objects live as long as we lead,
        and a collection walking every object of 50,000 Services held the loop for about half a
        second (the p99 of 280 creates/s in bench/controller.py); frozen, they are walked no
        more. Freezes come O(log growth) times, so what a freeze keeps past its time (a cycle
        that becomes garbage only later) stays bounded."""
        cached = self._cached()
        if freeze_due(cached, self._frozen_at):
            gc.freeze()
            self._frozen_at = cached

    def _first_round_done(self, planner: Planner) -> None:
        self.ready.set()
        if not self._announced:
            self._announced = True
            gc.freeze()  # what the first round built stays too
            self._frozen_at = self._cached()
            self._log.info("ready: every object planned", pools=len(planner.pools))

    async def _wait(self, planner: Planner) -> None:
        if self._dirty or self._pools_dirty or self._recheck or (planner.freed and planner.waiting):
            return  # a release in the last round (reuse delay 0) may serve a waiting object now
        self._wake.clear()
        expiry = planner.next_expiry
        timeout = None if expiry is None else max(0.0, expiry - self.clock())
        # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation that
        # comes as the wake-up does, and the loop (so a step-down or a stop) would hang.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wake.wait()

    async def _plan_dirty(self, planner: Planner, writer: Writer) -> None:
        """Plan dirty keys in key order for at most PLAN_SLICE seconds (and BATCH keys), then let
        informers and writers run."""
        began = time.perf_counter()
        now = self.clock()
        for count, key in enumerate(self._next_dirty(), 1):
            self.plan(planner, writer, key, now)
            if count >= BATCH or time.perf_counter() - began >= PLAN_SLICE:
                break
        await asyncio.sleep(0)

    def _next_dirty(self) -> Iterator[str]:
        """Dirty keys in key order, sorting them once per pass (not once per slice: 50,000 keys)."""
        while self._dirty:
            if self._order_at >= len(self._order):
                self._order, self._order_at = sorted(self._dirty), 0
            key = self._order[self._order_at]
            self._order_at += 1
            if key in self._dirty:
                self._dirty.discard(key)
                yield key

    async def _off_loop(self, step: Callable[[Any], set[str]], planner: Planner) -> set[str]:
        """Run a whole-cluster step in the worker thread (see the module's docstring)."""
        self._busy = True
        try:
            return await asyncio.to_thread(step, planner)
        finally:
            self._busy = False
