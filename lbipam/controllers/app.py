"""The `lbipam controller` process: informers always, the controllers only while leading.

`ControllerApp.run()` runs until cancelled; the CLI runs it under `run_until_signal`, tests run
it as a task (two at once for leader election). With leader election off (tests, a single
replica) it leads at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from dataclasses import dataclass, field

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
        self.elector: LeaderElector | None = None
        self._leading: list[asyncio.Task[None]] = []
        self._group: asyncio.TaskGroup | None = None

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

    async def _start_leading(self) -> None:
        assert self._group is not None
        _log.info("leading", identity=self.leader_options.identity)
        self._leading = [self._group.create_task(c.lead(), name=f"{c.name}-lead") for c in self.controllers]

    async def _stop_leading(self) -> None:
        tasks, self._leading = self._leading, []
        if tasks:
            _log.info("stepping down", identity=self.leader_options.identity)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
