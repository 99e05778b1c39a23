"""The LB-IPAM controller: watches Services, Namespaces and LoadBalancerIPPools; while it leads,
plans every change with `LBPlanner` and hands the plans to `LBWriter`.

Informers run all the time (a standby keeps a warm cache); the planning loop (`PlanningLoop`)
runs only while this process holds the Lease and starts from scratch each time: pools (serving
from `status.accepted` while a spec is invalid), then every existing assignment, then the reuse
delays the pools' status recorded, then new allocations (DESIGN.md "Restart"). A pool's status
write carries `status.accepted` and `status.heldBack` for the next leader (`poolrecord`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from lbipam.controllers.lbipam.convert import pool_view, service_view
from lbipam.controllers.lbipam.poolrecord import Clocks, WireBlocks, accepted_status, held_status, read_held
from lbipam.controllers.lbipam.writer import LBWriter
from lbipam.controllers.loop import PlanningLoop
from lbipam.controllers.viewcache import ViewCache
from lbipam.core.lbplanner import LBPlanner
from lbipam.core.lbviews import ServiceView
from lbipam.core.poolstatus import PoolStatusPlan, pool_status
from lbipam.k8s.client import Kube
from lbipam.k8s.events import EventRecorder
from lbipam.k8s.informer import Informer
from lbipam.k8s.resources import LBPOOLS, NAMESPACES, SERVICES
from lbipam.k8s.status import StatusWriter
from lbipam.k8s.tasks import Tasks

Obj = dict[str, Any]


@dataclass(frozen=True)
class LBOptions:
    default_class: bool = True  # handle Services without a loadBalancerClass
    reuse_delay: float = 30.0  # seconds a released IP is held back
    concurrency: int = 8  # writes in flight
    compat: frozenset[str] = frozenset()  # --compat: MetalLB's / Cilium's Service annotations read too


def _key(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


class LBController(PlanningLoop):
    def __init__(
        self,
        kube: Kube,
        status: StatusWriter,
        recorder: EventRecorder,
        options: LBOptions | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__("lbipam", clock)
        self.options = options or LBOptions()
        self.services = Informer(kube, SERVICES)
        self.namespaces = Informer(kube, NAMESPACES)
        self.pools = Informer(kube, LBPOOLS)
        self.status = status
        self.recorder = recorder
        self._gone: dict[str, Obj] = {}
        self._views: dict[str, tuple[tuple[str, str], ServiceView]] = {}
        self._clocks = Clocks.now(clock)  # taken anew each time leading begins
        self._pool_views = ViewCache(pool_view)
        self._wire = WireBlocks()  # each pool's blocks as its status writes them
        self.services.add_handler(self._on_service)
        self.namespaces.add_handler(self._on_namespace)
        self.pools.add_handler(self.pool_changed)

    def informers(self) -> list[Informer]:
        return [self.pools, self.namespaces, self.services]

    def start_informers(self, tasks: Tasks) -> None:
        for informer in self.informers():
            tasks.start(f"informer-{informer.resource.plural}", informer.run())

    # ---- change notifications ----------------------------------------------------------
    def _on_service(self, event: str, new: Obj, old: Obj | None) -> None:
        key = _key(new)
        if event == "DELETED":
            self._gone[key] = new
        else:
            self._gone.pop(key, None)
        self.mark(key)

    def _on_namespace(self, event: str, new: Obj, old: Obj | None) -> None:
        name = (new.get("metadata") or {}).get("name")
        self.mark(*(_key(s) for s in self.services.list() if s["metadata"].get("namespace") == name))

    # ---- the loop's hooks --------------------------------------------------------------
    def new_planner(self) -> LBPlanner:
        self._clocks = Clocks.now(self.clock)
        return LBPlanner(self.options.reuse_delay)

    def new_writer(self) -> LBWriter:
        return LBWriter(self.services, self.pools, self.status, self.recorder, self.options.concurrency)

    def start(self, planner: LBPlanner) -> set[str]:
        """Pools, then every assignment the Services carry (oldest first), then the reuse delays."""
        now = self.clock()
        pools = self.pools.list()
        planner.set_pools(self._pool_views.views(pools), now)
        self._wire.prepare(planner.pools)
        ordered = sorted(
            self.services.list(), key=lambda s: (s["metadata"].get("creationTimestamp", ""), _key(s))
        )
        for obj in ordered:
            planner.import_service(self._view(obj), now)
        held, pauses = read_held(pools, self._clocks)
        planner.restore_held(held, pauses, now)
        self._log.info(
            "leading: imported assignments",
            services=len(ordered),
            pools=len(planner.pools),
            held_back=len(planner.record.held),
        )
        return {_key(s) for s in ordered}

    def set_pools(self, planner: LBPlanner) -> set[str]:
        planner.set_pools(self._pool_views.views(self.pools.list()), self.clock())
        self._wire.prepare(planner.pools)  # here in the worker thread, not in pool_status on the loop
        return {_key(s) for s in self.services.list()}

    def plan(self, planner: LBPlanner, writer: LBWriter, key: str, now: float) -> None:
        namespace, name = key.split("/", 1)
        obj = self.services.get(namespace, name)
        if obj is None:
            self._views.pop(key, None)
            gone = self._gone.pop(key, None)
            plan = planner.forget(key, now)
            if plan.events:
                writer.service(plan, last_seen=gone)
            return
        writer.service(planner.plan(self._view(obj), now))

    def pool_status(self, planner: LBPlanner, name: str) -> PoolStatusPlan:
        state = planner.pools[name]
        # `blocks`: what the pool serves from, one string for `kubectl get lbpool`'s column;
        # `accepted` and `heldBack`: what the next leader reads back (poolrecord).
        served, wire = self._wire.get(name, state.accepted.blocks) if state.accepted else ("", None)
        extra = {
            "blocks": served,
            "accepted": accepted_status(state, wire),
            "heldBack": held_status(planner.record.listing(name), self._clocks),
        }
        return replace(pool_status(state), extra=extra)

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
        view = service_view(obj, ns_meta.get("labels") or {}, self.options.default_class, self.options.compat)
        self._views[key] = (version, view)
        return view
