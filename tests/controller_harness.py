"""What every in-process controller test needs, whichever controller it drives.

- `until`: `eventually` for an async check, typed;
- `Running`: one `ControllerApp` as a task on its own client, and `stop()`;
- `settled_read`: the "has it settled?" check without sleeps, generic over a `PlanningLoop`: the
  loop was quiet before and after a fresh read of the API, wrote nothing in between, and its
  caches hold exactly what the read returned.
Used by lbipam_harness.py (LB-IPAM) and podcidr_harness.py (PodCIDR).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from lbipam.controllers.app import ControllerApp
from lbipam.controllers.loop import PlanningLoop
from lbipam.k8s.client import Kube
from lbipam.k8s.informer import Informer
from lbipam.k8s.status import StatusWriter
from tests.helpers import eventually

Obj = dict[str, Any]
T = TypeVar("T")
STOP_TIMEOUT = 20.0  # seconds a cancelled controller has to end


async def until(
    check: Callable[[], Awaitable[T | None]],
    timeout: float = 10.0,  # noqa: ASYNC109  # a polling deadline, as `eventually` has
    interval: float = 0.02,
) -> T:
    """`eventually` for an async check, typed: its first truthy result."""
    found: object = await eventually(cast(Any, check), timeout=timeout, interval=interval)
    return cast(T, found)


def versions(objs: Sequence[Obj]) -> dict[tuple[str, str], str]:
    """(namespace, name) -> resourceVersion."""
    return {
        (o["metadata"].get("namespace", ""), o["metadata"]["name"]): str(o["metadata"]["resourceVersion"])
        for o in objs
    }


@dataclass
class Running:
    """One ControllerApp running as a task on its own client."""

    app: ControllerApp
    kube: Kube
    task: asyncio.Task[None]
    name: str = "controller"
    stopped: bool = field(default=False)

    def alive(self) -> None:
        """Raise the controller's error here if its task has ended (a crash)."""
        if self.task.done():
            self.task.result()
            raise AssertionError(f"{self.name} has stopped")

    async def stop(self) -> None:
        """Cancel it (it releases its Lease when leading) and close its client."""
        if self.stopped:
            return
        self.stopped = True
        self.task.cancel()
        done, _ = await asyncio.wait([self.task], timeout=STOP_TIMEOUT)
        if not done:  # a hang: say where every task waits, rather than hang the test run
            raise AssertionError(f"{self.name} did not stop within {STOP_TIMEOUT}s:\n{task_stacks()}")
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self.kube.close()


def task_stacks() -> str:
    """Where every task of this event loop waits."""
    out = io.StringIO()
    for task in asyncio.all_tasks():
        task.print_stack(limit=8, file=out)
    return out.getvalue()


async def settled_read(
    loop: PlanningLoop,
    status: StatusWriter,
    read: Callable[[], Awaitable[Sequence[list[Obj]]]],
    caches: Sequence[Informer],
) -> Sequence[list[Obj]] | None:
    """What `read` returned, if `loop` has settled around it; else None (ask again).

    Settled: the loop had nothing to do before and after the read, wrote nothing in between,
    and each of `caches` holds exactly the objects of the matching list `read` returned (`read`
    may return more lists than there are caches: those are not compared). Then
    every change it has seen is planned and written, and it has seen every change there is (the
    test writes nothing meanwhile), so the objects read are its final word."""

    def state() -> tuple[bool, int, int, int]:
        return (loop.quiet(), status.writes, *loop.work_done())

    before = state()
    if not before[0]:
        return None
    fresh = await read()
    if state() != before:
        return None
    for informer, items in zip(caches, fresh[: len(caches)], strict=True):
        if versions(informer.list()) != versions(items):
            return None
    return fresh
