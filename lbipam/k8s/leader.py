"""`LeaderElector`: leader election on a coordination.k8s.io/v1 Lease, as client-go does it.

Acquire: create the Lease, or take it over when its holder is empty (released) or has not renewed
for leaseDurationSeconds. Expiry is judged on *this* process' monotonic clock from the moment it
last saw the lease record change -- never by comparing renewTime with local wall time -- so clock
skew between nodes cannot elect two leaders. Renew every retry period; step down (callback) when
renewals have failed for longer than the renew deadline, or at once when another holder shows
up. Release on shutdown (cancellation): clear holderIdentity so a standby takes over at once.
Every write is a PUT carrying the resourceVersion read, so two candidates cannot both win.

renew_deadline < lease_duration is what keeps leaders unique: a leader that cannot renew stops
before any standby may take over. The controller runs one elector; see `run()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import inspect
import math
import random
import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from lbipam.k8s.client import Kube
from lbipam.k8s.errors import AlreadyExists, Conflict, KubeError, NotFound
from lbipam.k8s.logs import KVLog
from lbipam.k8s.resources import LEASES
from lbipam.k8s.times import micro_time, now
from lbipam.k8s.wire import Obj

Callback = Callable[[], Awaitable[None] | None]


def default_identity() -> str:
    """hostname_random: unique per process even when two share a host name."""
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


class LeaderElector:
    """One candidate for the Lease `namespace/name`."""

    def __init__(
        self,
        kube: Kube,
        *,
        name: str,
        namespace: str,
        identity: str,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        on_started_leading: Callback | None = None,
        on_stopped_leading: Callback | None = None,
        release_on_cancel: bool = True,
    ) -> None:
        if not 0 < retry_period < renew_deadline < lease_duration:
            raise ValueError(
                f"leader election needs 0 < retry_period ({retry_period}) < renew_deadline "
                f"({renew_deadline}) < lease_duration ({lease_duration})"
            )
        if not identity:
            raise ValueError("leader election needs a non-empty identity")
        self.kube = kube
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.on_started_leading = on_started_leading
        self.on_stopped_leading = on_stopped_leading
        self.release_on_cancel = release_on_cancel
        self.leading = asyncio.Event()
        self.renewals = 0  # successful renewals while leading
        self._lease: Obj | None = None  # the last lease we wrote or read
        self._observed: dict[str, Any] | None = None  # the last lease spec seen
        self._observed_at = 0.0  # loop.time() when it last changed
        self._log = KVLog("lbipam.k8s.leader", lease=f"{namespace}/{name}", identity=identity)

    @property
    def is_leader(self) -> bool:
        return self.leading.is_set()

    @property
    def holder(self) -> str:
        """The holder the lease last showed ("" if none or unknown)."""
        return str((self._observed or {}).get("holderIdentity") or "")

    async def run(self) -> None:
        """Campaign, lead, step down, campaign again... until cancelled (then release)."""
        try:
            while True:
                await self._acquire()
                self.leading.set()
                self._log.info("started leading")
                await _call(self.on_started_leading)
                await self._renew_until_lost()
                await self._step_down("lost the lease")
        finally:
            if self.is_leader:
                if self.release_on_cancel:
                    await self._release()
                await self._step_down("shutting down")

    async def _acquire(self) -> None:
        while True:
            if await self._try_acquire_or_renew():
                return
            await asyncio.sleep(self.retry_period * random.uniform(1.0, 1.2))

    async def _renew_until_lost(self) -> None:
        loop = asyncio.get_running_loop()
        last_renewal = loop.time()
        while True:
            await asyncio.sleep(self.retry_period)
            # Each attempt is bounded by what is left of the deadline: a hung API server must
            # not keep us leading past it (and so, perhaps, past the lease others watch).
            remaining = last_renewal + self.renew_deadline - loop.time()
            renewed = False
            if remaining > 0:
                try:
                    async with asyncio.timeout(remaining):
                        renewed = await self._try_acquire_or_renew()
                except TimeoutError:
                    self._log.warning("lease renewal timed out")
            if renewed:
                last_renewal = loop.time()
                self.renewals += 1
            elif self.holder not in ("", self.identity):
                return  # someone else holds it now
            elif loop.time() - last_renewal >= self.renew_deadline:
                self._log.warning("renewals failed past the deadline", deadline=f"{self.renew_deadline}s")
                return

    async def _step_down(self, why: str) -> None:
        self.leading.clear()
        self._log.info("stopped leading", why=why)
        await _call(self.on_stopped_leading)

    async def _try_acquire_or_renew(self) -> bool:
        try:
            if self.is_leader and self._lease is not None:
                with contextlib.suppress(Conflict):  # fast path: renew what we last wrote
                    return await self._write(copy.deepcopy(self._lease), taking_over=False)
            try:
                lease = await self.kube.get(LEASES, self.name, namespace=self.namespace)
            except NotFound:
                return await self._create()
            self._observe(lease)
            spec = lease.get("spec") or {}
            holder = spec.get("holderIdentity") or ""
            if holder and holder != self.identity and not self._expired(spec):
                return False
            return await self._write(lease, taking_over=holder != self.identity)
        except (Conflict, AlreadyExists):
            return False  # another candidate wrote first; look again next period
        except KubeError as err:
            self._log.warning("lease request failed", error=str(err))
            return False

    def _spec(self, old: dict[str, Any], taking_over: bool) -> dict[str, Any]:
        stamp = micro_time(now())
        spec = dict(old)
        spec.update(
            holderIdentity=self.identity,
            leaseDurationSeconds=max(1, math.ceil(self.lease_duration)),
            renewTime=stamp,
        )
        if taking_over or "acquireTime" not in spec:
            spec["acquireTime"] = stamp
            spec["leaseTransitions"] = int(old.get("leaseTransitions") or 0) + (1 if taking_over else 0)
        return spec

    async def _create(self) -> bool:
        lease = {
            "apiVersion": LEASES.api_version,
            "kind": LEASES.kind,
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": self._spec({"leaseTransitions": 0}, taking_over=False),
        }
        self._lease = await self.kube.create(LEASES, lease)
        self._observe(self._lease)
        return True

    async def _write(self, lease: Obj, *, taking_over: bool) -> bool:
        lease["spec"] = self._spec(lease.get("spec") or {}, taking_over)
        self._lease = await self.kube.replace(LEASES, lease)
        self._observe(self._lease)
        if taking_over:
            self._log.info("took over the lease", transitions=lease["spec"]["leaseTransitions"])
        return True

    def _observe(self, lease: Obj) -> None:
        spec = lease.get("spec") or {}
        if spec != self._observed:
            self._observed = dict(spec)
            self._observed_at = asyncio.get_running_loop().time()

    def _expired(self, spec: dict[str, Any]) -> bool:
        duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
        return asyncio.get_running_loop().time() > self._observed_at + duration

    async def _release(self) -> None:
        """Hand the lease back: empty holder, so a standby need not wait for it to expire."""
        lease = copy.deepcopy(self._lease) if self._lease else None
        if lease is None:
            return
        spec = lease.setdefault("spec", {})
        spec.update(holderIdentity="", leaseDurationSeconds=1, renewTime=micro_time(now()))
        try:
            async with asyncio.timeout(max(self.retry_period, 1.0)):
                self._lease = await self.kube.replace(LEASES, lease)
            self._log.info("released the lease")
        except (KubeError, TimeoutError) as err:
            self._log.warning("could not release the lease", error=str(err))


async def _call(callback: Callback | None) -> None:
    if callback is not None:
        result = callback()
        if inspect.isawaitable(result):
            await result
