"""The `lbipam controller` process: informers always, the controllers only while leading.

`ControllerApp.run()` runs until cancelled; the CLI runs it under `run_until_signal`, which on
SIGTERM first calls `drain()` (stop planning, finish every write planned, bounded; the Lease is
kept meanwhile so no other replica writes yet), tests run it as a task (two at once for leader
election). With leader election off (tests, a single
replica) it leads at once. What the metrics and /readyz read (`leading`, `results()`, `ready()`)
is here too (`lbipam.observe.metrics.controller_registry(app)`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections import Counter
from dataclasses import dataclass, field

from lbipam.controllers.bgpstatus.controller import BGPStatusController, BGPStatusOptions
from lbipam.controllers.lbipam.controller import LBController, LBOptions
from lbipam.controllers.loop import PlanningLoop
from lbipam.controllers.podcidr.controller import PodCIDRController, PodCIDROptions
from lbipam.controllers.podcidr.targets import make_target
from lbipam.k8s.client import Kube
from lbipam.k8s.events import CONTROLLER, EventRecorder
from lbipam.k8s.leader import LeaderElector
from lbipam.k8s.logs import KVLog
from lbipam.k8s.status import CONTROLLER_FIELD_MANAGER, StatusWriter

_log = KVLog("lbipam.controller")


@dataclass(frozen=True)
class LeaderOptions:
    enabled: bool = True
    lease_name: str = "lbipam-controller"
    lease_namespace: str = field(default_factory=lambda: os.environ.get("POD_NAMESPACE", "default"))
    identity: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0


@dataclass(frozen=True)
class PodCIDRSettings:
    target: str = "none"  # --podcidr-target
    pre_allocate: int = 8  # ciliumnode-pool watermarks, unless the CiliumNode sets its own
    max_above_watermark: int = 8
    options: PodCIDROptions = field(default_factory=PodCIDROptions)


class ControllerApp:
    def __init__(
        self,
        kube: Kube,
        lb: LBOptions | None = None,
        leader: LeaderOptions | None = None,
        podcidr: PodCIDRSettings | None = None,
        bgp: BGPStatusOptions | None = None,
    ) -> None:
        lb = lb or LBOptions()
        leader = leader or LeaderOptions()
        podcidr = podcidr or PodCIDRSettings()
        self.kube = kube
        self.leader_options = leader
        recorder = EventRecorder(kube, CONTROLLER, leader.identity[:128])
        status = StatusWriter(kube, CONTROLLER_FIELD_MANAGER)
        self.lb = LBController(kube, status, recorder, lb)
        target = make_target(podcidr.target, podcidr.pre_allocate, podcidr.max_above_watermark)
        self.podcidr = (
            PodCIDRController(kube, target, status, recorder, podcidr.options) if target is not None else None
        )
        # The Ready conditions of BGPPeers and BGPAdvertisements (sharing the PodCIDR controller's
        # Node informer when it runs).
        nodes = self.podcidr.nodes if self.podcidr is not None else None
        self.bgp = BGPStatusController(kube, status, recorder, bgp, nodes=nodes)
        self.elector: LeaderElector | None = None
        self.leading = False  # this replica holds the Lease (or runs without one)
        self._leading: list[asyncio.Task[None]] = []
        self._group: asyncio.TaskGroup | None = None
        # Each leadership term has a writer of its own, with its own result counts: the counts of
        # every term are kept (by identity), so the process's totals never go down.
        self._tallies: dict[str, list[Counter[str]]] = {}

    @property
    def controllers(self) -> list[PlanningLoop]:
        return [c for c in (self.lb, self.podcidr) if c is not None]

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            self._group = group
            for controller in self.controllers:
                for informer in controller.informers():
                    name = f"informer-{controller.name}-{informer.resource.plural}"
                    group.create_task(informer.run(), name=name)
            for informer in self.bgp.informers():
                name = f"informer-{self.bgp.name}-{informer.resource.plural}"
                group.create_task(informer.run(), name=name)
            if not self.leader_options.enabled:
                await self._start_leading()
                return
            opts = self.leader_options
            self.elector = LeaderElector(
                self.kube,
                name=opts.lease_name,
                namespace=opts.lease_namespace,
                identity=opts.identity,
                lease_duration=opts.lease_duration,
                renew_deadline=opts.renew_deadline,
                retry_period=opts.retry_period,
                on_started_leading=self._start_leading,
                on_stopped_leading=self._stop_leading,
            )
            group.create_task(self.elector.run(), name="leader-election")

    async def drain(self) -> None:
        """Stop planning and make every write already planned (status, annotations, Events),
        while still holding the Lease. The caller bounds the wait."""
        started = [(c.name, c.work_done()) for c in self.controllers]
        try:
            await asyncio.gather(self.bgp.drain(), *(c.drain() for c in self.controllers))
        finally:
            done = {
                name: c.work_done()[0] - before[0]
                for (name, before), c in zip(started, self.controllers, strict=True)
            }
            _log.info(
                "drained the writes planned before shutdown", **{f"{k}_writes": v for k, v in done.items()}
            )

    def ready(self) -> bool:
        """/readyz: every informer has synced and, while leading, every controller has planned its
        first round. A standby is ready too, as kube-controller-manager's: it waits to take over."""
        if not all(i.synced.is_set() for c in self.controllers for i in c.informers()):
            return False
        if not all(i.synced.is_set() for i in self.bgp.watched()):
            return False
        return not self.leading or (
            self.bgp.ready.is_set() and all(c.ready.is_set() for c in self.controllers)
        )

    def results(self, controller: str) -> Counter[str]:
        """What the plans of controller `controller` did since the process started (see
        `lbipam.observe.results`), over every leadership term."""
        self._note_tallies()
        total: Counter[str] = Counter()
        for tally in self._tallies.get(controller, []):
            total.update(tally)
        return total

    def _note_tallies(self) -> None:
        for c in self.controllers:
            tally = c.writer.results if c.writer is not None else None
            kept = self._tallies.setdefault(c.name, [])
            if tally is not None and not any(t is tally for t in kept):
                kept.append(tally)

    async def _start_leading(self) -> None:
        assert self._group is not None
        _log.info("leading", identity=self.leader_options.identity)
        self.leading = True
        self._leading = [self._group.create_task(c.lead(), name=f"{c.name}-lead") for c in self.controllers]
        self._leading.append(self._group.create_task(self.bgp.lead(), name=f"{self.bgp.name}-lead"))

    async def _stop_leading(self) -> None:
        tasks, self._leading = self._leading, []
        self.leading = False
        self._note_tallies()  # before the writers go
        if tasks:
            _log.info("stepping down", identity=self.leader_options.identity)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
