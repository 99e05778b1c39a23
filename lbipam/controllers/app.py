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


class ControllerApp:
    def __init__(self, kube: Kube, lb: LBOptions | None = None, leader: LeaderOptions | None = None) -> None:
        lb = lb or LBOptions()
        leader = leader or LeaderOptions()
        self.kube = kube
        self.leader_options = leader
        recorder = EventRecorder(kube, CONTROLLER, leader.identity[:128])
        self.lb = LBController(kube, StatusWriter(kube, CONTROLLER_FIELD_MANAGER), recorder, lb)
        self.elector: LeaderElector | None = None
        self._leading: asyncio.Task[None] | None = None
        self._group: asyncio.TaskGroup | None = None

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            self._group = group
            for informer in (self.lb.pools, self.lb.namespaces, self.lb.services):
                group.create_task(informer.run(), name=f"informer-{informer.resource.plural}")
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
        self._leading = self._group.create_task(self.lb.lead(), name="lbipam-lead")

    async def _stop_leading(self) -> None:
        task, self._leading = self._leading, None
        if task is not None:
            _log.info("stepping down", identity=self.leader_options.identity)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
