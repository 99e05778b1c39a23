"""Two write lanes and "try again later": the shared machinery of the controllers' writers.

The first lane carries what users wait for (an IP in a Service's status, a CIDR on a Node, pool
status); the second (annotations, conditions, Events) starts jobs only while the first is idle, so
a burst of new objects gets served first. A write that fails past `StatusWriter`'s own retries
(the API was away for a while) is submitted again after `RETRY_LATER` seconds: the planner already
counts it done, so nothing else would bring it back. Used by `LBWriter` and `PodCIDRWriter`, with
`PoolWrites` for the status of pools of either kind (`pool_fragment` is its patch).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from lbipam.controllers.executor import Job, KeyedExecutor
from lbipam.core.conditions import set_condition
from lbipam.core.poolstatus import PoolStatusPlan
from lbipam.k8s.errors import Conflict, KubeError, NotFound, TemporaryError
from lbipam.k8s.informer import Informer
from lbipam.k8s.logs import KVLog
from lbipam.k8s.resources import Resource
from lbipam.k8s.status import StatusWriter

RETRY_LATER = 2.0  # seconds before a write that failed past its own retries is tried again


class Lanes:
    def __init__(self, name: str, concurrency: int) -> None:
        self.executor = KeyedExecutor(name, concurrency)
        self.background = KeyedExecutor(f"{name}-background", concurrency, after=self.executor)
        self._later: dict[str, asyncio.TimerHandle] = {}
        self._log = KVLog(f"lbipam.{name}")

    @property
    def busy(self) -> bool:
        """Writes queued, running, or waiting to be tried again."""
        return bool(self.executor.pending or self.background.pending or self._later)

    @property
    def done(self) -> tuple[int, int]:
        """(jobs done, jobs failed) in both lanes."""
        lanes = (self.executor, self.background)
        return (sum(e.done for e in lanes), sum(e.failed for e in lanes))

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self.executor.run(), name=self.executor.name)
            group.create_task(self.background.run(), name=self.background.name)

    async def drained(self) -> None:
        """Return once every write queued, running or waiting to be tried again is done (a
        SIGTERM drains the lanes so that no Event or annotation planned is lost)."""
        while self.busy:
            await self.executor.wait_idle()
            await self.background.wait_idle()
            if self._later and not (self.executor.pending or self.background.pending):
                await asyncio.sleep(RETRY_LATER / 4)  # a retry is due: let its timer fire

    def close(self) -> None:
        for handle in self._later.values():
            handle.cancel()
        self._later.clear()

    def later(self, job_key: str, job: Job, lane: KeyedExecutor, error: KubeError) -> None:
        """Try `job` again in RETRY_LATER seconds, if retrying can help."""
        if not isinstance(error, TemporaryError | Conflict):
            self._log.error("not written", key=job_key, error=str(error))
            return
        self._log.warning(
            "not written; trying again later", key=job_key, error=str(error), retry_in=RETRY_LATER
        )
        if job_key not in self._later:
            loop = asyncio.get_running_loop()
            self._later[job_key] = loop.call_later(RETRY_LATER, self._resubmit, job_key, job, lane)

    def waiting_again(self, job_key: str) -> bool:
        return job_key in self._later

    def _resubmit(self, job_key: str, job: Job, lane: KeyedExecutor) -> None:
        self._later.pop(job_key, None)
        lane.submit(job_key, job)


def pool_fragment(plan: PoolStatusPlan, obj: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The status merge patch for `plan`. The extra fields the status already carries are left
    out (a merge patch keeps what it does not name): `accepted` lists every block, and a pool of
    100,000 blocks would otherwise send megabytes at every change of its counts."""
    status = obj.get("status") or {}
    conditions: list[dict[str, Any]] = list(status.get("conditions") or [])
    for type_, c in plan.conditions:
        conditions = set_condition(
            conditions, type_, c.status, c.reason, c.message, plan.observed_generation, now
        )
    return {
        "observedGeneration": plan.observed_generation,
        "conditions": conditions,
        **plan.counts,
        **{key: value for key, value in plan.extra.items() if status.get(key, ...) != value},
    }


class PoolWrites:
    """Pool status writes, for either kind of pool: on the first lane, made from the newest cached
    copy of the pool when they run (a newer plan replaces one not yet written), tried again later
    when the API was away."""

    def __init__(
        self,
        lanes: Lanes,
        pools: Informer,
        resource: Resource,
        status: StatusWriter,
        clock: Callable[[], datetime],
    ) -> None:
        self.lanes, self.pools, self.resource, self.status, self.clock = lanes, pools, resource, status, clock
        self._plans: dict[str, PoolStatusPlan] = {}

    def submit(self, plan: PoolStatusPlan) -> None:
        self._plans[plan.name] = plan
        self.lanes.executor.submit(f"pool:{plan.name}", lambda: self._write(plan.name))

    async def _write(self, name: str) -> None:
        plan = self._plans.pop(name, None)
        obj = self.pools.get(None, name)
        if plan is None or obj is None:
            return
        try:
            await self.status.patch_status(self.resource, obj, pool_fragment(plan, obj, self.clock()))
        except NotFound:
            return
        except KubeError as err:
            self._plans.setdefault(name, plan)
            self.lanes.later(f"pool:{name}", lambda: self._write(name), self.lanes.executor, err)
