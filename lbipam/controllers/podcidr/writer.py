"""Applies the PodCIDR planner's decisions: the target write (first lane), then the Node's
condition, the CiliumNode operator-status error and the Events (background lane); pool status.

Each write is computed when it runs from the informers' newest copies and made only when
something changed. See `Lanes` for the two lanes and the retry-later rule.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from lbipam.controllers.lanes import Lanes, PoolWrites
from lbipam.controllers.podcidr.targets import Target
from lbipam.core.conditions import set_condition
from lbipam.core.lbplanner import PlannedEvent
from lbipam.core.pcplanner import NodePlan
from lbipam.core.pcviews import CONDITION_PODCIDRS
from lbipam.core.poolstatus import PoolStatusPlan
from lbipam.k8s.errors import KubeError, NotFound
from lbipam.k8s.events import EventRecorder
from lbipam.k8s.informer import Informer
from lbipam.k8s.resources import NODES, PODCIDRPOOLS
from lbipam.k8s.status import StatusWriter, changes
from lbipam.k8s.times import now as wall_clock
from lbipam.observe.results import Results

Obj = dict[str, Any]


class PodCIDRWriter:
    def __init__(
        self,
        nodes: Informer,
        ciliumnodes: Informer | None,
        pools: Informer,
        target: Target,
        status: StatusWriter,
        recorder: EventRecorder,
        concurrency: int = 8,
        clock: Callable[[], datetime] = wall_clock,
    ) -> None:
        self.nodes, self.ciliumnodes, self.pools = nodes, ciliumnodes, pools
        self.target = target
        self.status = status
        self.recorder = recorder
        self.clock = clock
        self.lanes = Lanes("podcidr-writer", concurrency)
        self._pools = PoolWrites(self.lanes, pools, PODCIDRPOOLS, status, clock)
        self._plans: dict[str, NodePlan] = {}
        self._events: dict[str, list[PlannedEvent]] = {}
        self._last_seen: dict[str, Obj] = {}
        self.results = Results()  # what the plans did, for lbipam_podcidr_allocations_total

    def _objects(self, name: str) -> tuple[Obj | None, Obj | None]:
        cn = self.ciliumnodes.get(None, name) if self.ciliumnodes is not None else None
        return self.nodes.get(None, name), cn

    def node(self, plan: NodePlan) -> None:
        """Make the Node (and its target) carry `plan`."""
        self.results.count(plan.events, plan.condition)
        node, cn = self._objects(plan.name)
        if node is not None and not plan.events and self._settled(plan, node, cn):
            return  # nothing to write (most plans after a restart)
        self._plans[plan.name] = plan
        if plan.events:
            self._events.setdefault(plan.name, []).extend(plan.events)
        self.lanes.executor.submit(f"node:{plan.name}", lambda: self._write_target(plan.name))
        self.lanes.background.submit(f"notes:{plan.name}", lambda: self._write_notes(plan.name))

    def gone(self, name: str, events: tuple[PlannedEvent, ...], last_seen: Obj | None) -> None:
        """Events about a deleted Node."""
        self.results.count(events, None)
        self._plans.pop(name, None)
        if events and last_seen is not None:
            self._events.setdefault(name, []).extend(events)
            self._last_seen[name] = last_seen
            self.lanes.background.submit(f"notes:{name}", lambda: self._write_notes(name))

    def pool(self, plan: PoolStatusPlan) -> None:
        self._pools.submit(plan)

    def _settled(self, plan: NodePlan, node: Obj, cn: Obj | None) -> bool:
        name = plan.name
        if self.lanes.executor.has(f"node:{name}") or self.lanes.background.has(f"notes:{name}"):
            return False
        if self.lanes.waiting_again(f"node:{name}") or self.target.write(plan, node, cn) is not None:
            return False
        report = self.target.report(plan, cn)
        if report is not None and changes(report.obj.get("status"), report.fragment):
            return False
        return self._condition(plan, node) is None

    def _condition(self, plan: NodePlan, node: Obj) -> dict[str, Any] | None:
        """Our condition as the Node should carry it, or None when it already does."""
        current = (node.get("status") or {}).get("conditions") or []
        c = plan.condition
        wanted = set_condition(current, CONDITION_PODCIDRS, c.status, c.reason, c.message, None, self.clock())
        if wanted == current:
            return None
        return next(x for x in wanted if x.get("type") == CONDITION_PODCIDRS)

    async def _write_target(self, name: str) -> None:
        plan = self._plans.get(name)
        node, cn = self._objects(name)
        write = self.target.write(plan, node, cn) if plan is not None and node is not None else None
        if write is None:
            return
        try:
            await self.status.patch_object(write.resource, write.obj, write.fragment)
        except NotFound:
            return
        except KubeError as err:
            self.lanes.later(f"node:{name}", lambda: self._write_target(name), self.lanes.executor, err)

    async def _write_notes(self, name: str) -> None:
        plan = self._plans.get(name)  # kept: the first lane reads it too
        events = self._events.pop(name, [])
        node, cn = self._objects(name)
        target = node or self._last_seen.pop(name, None)
        try:
            if plan is not None and node is not None:
                condition = self._condition(plan, node)
                if condition is not None:
                    await self.status.patch_condition(NODES, node, condition)
                report = self.target.report(plan, cn)
                if report is not None:
                    await self.status.patch_status(report.resource, report.obj, report.fragment)
        except NotFound:
            pass
        except KubeError as err:
            self._events[name] = events + self._events.get(name, [])
            self.lanes.later(f"notes:{name}", lambda: self._write_notes(name), self.lanes.background, err)
            return
        for event in events:
            if target is not None:
                await self.recorder.record(target, event.reason, event.note, type=event.type, resource=NODES)
