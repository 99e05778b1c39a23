"""Applies the LB-IPAM planner's decisions: Service status, annotation and Events; pool status.

The thin executor of the LB-IPAM controller. Each write is computed when it runs, from the
informer's newest copy of the object, and made only when something changed (merge patches
through `StatusWriter`). Work is serialised per object and parallel across objects
(`KeyedExecutor`); Events planned for one Service are never dropped when its writes coalesce.
Service status goes first; the annotation and Events follow in a background lane.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from lbipam.controllers.lanes import Lanes, PoolWrites
from lbipam.core.conditions import set_condition
from lbipam.core.lbplanner import PlannedEvent, ServicePlan
from lbipam.core.lbviews import ANNOTATION_ALLOCATED_FROM, CONDITION_SATISFIED
from lbipam.core.poolstatus import PoolStatusPlan
from lbipam.k8s.errors import KubeError, NotFound
from lbipam.k8s.events import EventRecorder
from lbipam.k8s.informer import Informer
from lbipam.k8s.logs import KVLog
from lbipam.k8s.resources import LBPOOLS, SERVICES
from lbipam.k8s.status import StatusWriter
from lbipam.k8s.times import now as wall_clock
from lbipam.observe.results import Results

Obj = dict[str, Any]
_log = KVLog("lbipam.controller.lbipam")


def service_fragment(plan: ServicePlan, obj: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The status merge patch that makes `obj` carry `plan` ({} when it already does)."""
    status = obj.get("status") or {}
    current = status.get("conditions") or []
    ips = [i.get("ip") for i in (status.get("loadBalancer") or {}).get("ingress") or []]
    fragment: dict[str, Any] = {}
    if plan.manage:
        if ips != list(plan.ingress):
            fragment["loadBalancer"] = {"ingress": [{"ip": ip} for ip in plan.ingress] or None}
        if plan.condition is not None:
            c = plan.condition
            generation = (obj.get("metadata") or {}).get("generation")
            wanted = set_condition(
                current, CONDITION_SATISFIED, c.status, c.reason, c.message, generation, now
            )
            if wanted != current:
                fragment["conditions"] = wanted
        return fragment
    if plan.clear_ingress and ips:
        fragment["loadBalancer"] = {"ingress": None}
    others = [c for c in current if c.get("type") != CONDITION_SATISFIED]
    if len(others) != len(current):
        fragment["conditions"] = others or None
    return fragment


class LBWriter:
    """Service status and pool status go in the first lane; the allocated-from annotation and
    Events in the background lane (see `Lanes`)."""

    def __init__(
        self,
        services: Informer,
        pools: Informer,
        status: StatusWriter,
        recorder: EventRecorder,
        concurrency: int = 8,
        clock: Callable[[], datetime] = wall_clock,
    ) -> None:
        self.services = services
        self.pools = pools
        self.status = status
        self.recorder = recorder
        self.clock = clock
        self.lanes = Lanes("lbipam-writer", concurrency)
        self._pools = PoolWrites(self.lanes, pools, LBPOOLS, status, clock)
        self.executor, self.background = self.lanes.executor, self.lanes.background
        self._plans: dict[str, ServicePlan] = {}
        self._notes: dict[str, str | None] = {}  # the allocated-from annotation to write
        self._events: dict[str, list[PlannedEvent]] = {}
        self._last_seen: dict[str, Obj] = {}  # deleted Services, for the Events about them
        self.results = Results()  # what the plans did, for lbipam_allocations_total

    def service(self, plan: ServicePlan, last_seen: Obj | None = None) -> None:
        """Make the Service carry `plan` (soon, once, in order with its earlier plans)."""
        self.results.count(plan.events, plan.condition)
        key = plan.key
        note = ",".join(plan.allocated_from) if plan.manage and plan.allocated_from else None
        if last_seen is not None:
            self._last_seen[key] = last_seen
        namespace, name = key.split("/", 1)
        obj = self.services.get(namespace, name)
        status_key, notes_key = f"service:{key}", f"notes:{key}"
        # Nothing to write and nothing in flight: skip the queues (most plans after a restart).
        # A write of ours still on its way back through the watch wakes the planner again.
        if obj is not None and not plan.events and not self.lanes.waiting_again(status_key):
            annotations = (obj.get("metadata") or {}).get("annotations") or {}
            idle = not self.executor.has(status_key) and not self.background.has(notes_key)
            same_note = annotations.get(ANNOTATION_ALLOCATED_FROM) == note
            if idle and same_note and not service_fragment(plan, obj, self.clock()):
                return
        self._plans[key] = plan
        self._notes[key] = note
        if plan.events:
            self._events.setdefault(key, []).extend(plan.events)
        self.executor.submit(status_key, lambda: self._write_status(key))
        self.background.submit(notes_key, lambda: self._write_notes(key))

    def pool(self, plan: PoolStatusPlan) -> None:
        self._pools.submit(plan)

    def _cached(self, key: str) -> Obj | None:
        namespace, name = key.split("/", 1)
        return self.services.get(namespace, name)

    async def _write_status(self, key: str) -> None:
        plan = self._plans.pop(key, None)
        obj = self._cached(key)
        if obj is None or plan is None:
            return
        fragment = service_fragment(plan, obj, self.clock())
        if not fragment:
            return
        try:
            await self.status.patch_status(SERVICES, obj, fragment)
        except NotFound:
            return  # deleted meanwhile: its DELETED event brings the release
        except KubeError as err:  # keep the plan (unless a newer one came)
            self._plans.setdefault(key, plan)
            self.lanes.later(f"service:{key}", lambda: self._write_status(key), self.executor, err)

    async def _write_notes(self, key: str) -> None:
        """The allocated-from annotation, then the Events planned for the Service."""
        note = self._notes.pop(key, None)
        events = self._events.pop(key, [])
        obj = self._cached(key)
        target = obj or self._last_seen.pop(key, None)
        if obj is not None:
            try:
                await self.status.patch_metadata(SERVICES, obj, annotations={ANNOTATION_ALLOCATED_FROM: note})
            except NotFound:
                obj = None
            except KubeError as err:  # keep the annotation (unless a newer one came) and the Events
                self._notes.setdefault(key, note)
                self._events[key] = events + self._events.get(key, [])
                self.lanes.later(f"notes:{key}", lambda: self._write_notes(key), self.background, err)
                return
        for event in events:
            if target is not None:
                await self.recorder.record(
                    target, event.reason, event.note, type=event.type, resource=SERVICES
                )
