"""The PodCIDR controller: watches Nodes, PodCIDRPools (and CiliumNodes for the ciliumnode
targets); while it leads, plans every change with `PodCIDRPlanner` and hands the plans to
`PodCIDRWriter`. Start-up order: pools, then every CIDR the target already shows, then new
allocations. Runs inside `lbipam controller` beside the LB-IPAM controller, on the same core.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from lbipam.controllers.loop import PlanningLoop
from lbipam.controllers.podcidr.convert import accepted_status, accepted_view, node_view, pcpool_view
from lbipam.controllers.podcidr.targets import Target
from lbipam.controllers.podcidr.writer import PodCIDRWriter
from lbipam.controllers.viewcache import ViewCache
from lbipam.core.pcplanner import PodCIDRPlanner
from lbipam.core.poolstatus import PoolStatusPlan, pool_status
from lbipam.k8s.client import Kube
from lbipam.k8s.events import EventRecorder
from lbipam.k8s.informer import Informer
from lbipam.k8s.resources import CILIUMNODES, NODES, PODCIDRPOOLS
from lbipam.k8s.status import StatusWriter

Obj = dict[str, Any]


@dataclass(frozen=True)
class PodCIDROptions:
    reuse_delay: float = 30.0  # seconds a deleted node's CIDR is held back
    concurrency: int = 8


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


class PodCIDRController(PlanningLoop):
    def __init__(
        self,
        kube: Kube,
        target: Target,
        status: StatusWriter,
        recorder: EventRecorder,
        options: PodCIDROptions | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__("podcidr", clock)
        self.options = options or PodCIDROptions()
        self.target = target
        self.status = status
        self.recorder = recorder
        self.nodes = Informer(kube, NODES)
        self.pools = Informer(kube, PODCIDRPOOLS)
        self.ciliumnodes = Informer(kube, CILIUMNODES) if target.uses_ciliumnodes else None
        self._gone: dict[str, Obj] = {}
        self._pool_views = ViewCache(pcpool_view)
        self.nodes.add_handler(self._on_node)
        self.pools.add_handler(self.pool_changed)
        if self.ciliumnodes is not None:
            self.ciliumnodes.add_handler(lambda event, new, old: self.mark(_name(new)))

    def informers(self) -> list[Informer]:
        return [i for i in (self.pools, self.nodes, self.ciliumnodes) if i is not None]

    def _on_node(self, event: str, new: Obj, old: Obj | None) -> None:
        name = _name(new)
        if event == "DELETED":
            self._gone[name] = new
        else:
            self._gone.pop(name, None)
        self.mark(name)

    def _view(self, node: Obj) -> Any:
        cn = self.ciliumnodes.get(None, _name(node)) if self.ciliumnodes is not None else None
        return node_view(node, self.target.current(node, cn))

    # ---- the loop's hooks --------------------------------------------------------------
    def new_planner(self) -> PodCIDRPlanner:
        return PodCIDRPlanner(self.options.reuse_delay)

    def new_writer(self) -> PodCIDRWriter:
        return PodCIDRWriter(
            self.nodes,
            self.ciliumnodes,
            self.pools,
            self.target,
            self.status,
            self.recorder,
            self.options.concurrency,
        )

    def start(self, planner: PodCIDRPlanner) -> set[str]:
        now = self.clock()
        # The pools as last accepted first (their status says), then every CIDR the target
        # shows, then the specs as written now: a change refused before a restart is refused
        # again, against the CIDRs nodes hold, instead of becoming the starting point.
        pools = self.pools.list()
        planner.set_pools([accepted_view(p) or pcpool_view(p) for p in pools], now)
        nodes = sorted(
            self.nodes.list(),
            key=lambda n: ((n.get("metadata") or {}).get("creationTimestamp", ""), _name(n)),
        )
        for node in nodes:
            planner.import_node(self._view(node), now)
        planner.set_pools(self._pool_views.views(pools), now)
        self._log.info(
            "leading: imported node CIDRs",
            nodes=len(nodes),
            pools=len(planner.pools),
            target=self.target.name,
        )
        return {_name(n) for n in nodes}

    def set_pools(self, planner: PodCIDRPlanner) -> set[str]:
        planner.set_pools(self._pool_views.views(self.pools.list()), self.clock())
        return {_name(n) for n in self.nodes.list()}

    def plan(self, planner: PodCIDRPlanner, writer: PodCIDRWriter, key: str, now: float) -> None:
        node = self.nodes.get(None, key)
        if node is None:
            writer.gone(key, planner.forget(key, now), self._gone.pop(key, None))
            return
        if self.ciliumnodes is not None and self.ciliumnodes.get(None, key) is None:
            # As Cilium's operator: nothing is allocated before the agent creates its CiliumNode
            # (else CIDRs nobody can see would be counted, announced in Events, and lost on a
            # restart); what the Node already holds is kept and written when it appears.
            return
        writer.node(planner.plan(self._view(node), now))

    def planned(self, planner: PodCIDRPlanner) -> None:
        if planner.recheck_refusals():
            self._pools_dirty = True  # the last holder of what a refused change drops has gone

    def pool_status(self, planner: PodCIDRPlanner, name: str) -> PoolStatusPlan:
        state = planner.pools[name]
        plan = pool_status(state, state.refused, changes=True)
        return replace(plan, extra={"accepted": accepted_status(state.accepted)})
