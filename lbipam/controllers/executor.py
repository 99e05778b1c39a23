"""A keyed executor: work on one object at a time, on different objects in parallel.

STYLE.md convention 10. Jobs are submitted per key (an object's namespace/name); a key has at
most one job running and at most one waiting, and a newer submission replaces the waiting one
(latest wins: a job reads the newest state when it runs, so nothing is lost by coalescing).
An executor can run `after` a more urgent one: it starts jobs only while that one is idle
(Service status before annotations and Events, so a burst of new Services gets its IPs first).
Used by the controllers' writers; the planners never wait on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from lbipam.k8s.logs import KVLog

Job = Callable[[], Awaitable[None]]


class KeyedExecutor:
    def __init__(self, name: str, concurrency: int = 8, *, after: KeyedExecutor | None = None) -> None:
        """`after`: a more urgent executor; this one starts a job only while that one is idle."""
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.name = name
        self.concurrency = concurrency
        self._jobs: dict[str, Job] = {}
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._running: set[str] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self.after = after
        self.done = 0
        self.failed = 0
        self._log = KVLog("lbipam.executor", executor=name)

    def submit(self, key: str, job: Job) -> None:
        self._jobs[key] = job
        self._idle.clear()
        if key not in self._queued and key not in self._running:
            self._queued.add(key)
            self._queue.put_nowait(key)

    def has(self, key: str) -> bool:
        """Whether a job for `key` is queued or running."""
        return key in self._jobs or key in self._running

    @property
    def pending(self) -> int:
        return len(self._jobs) + len(self._running)

    async def wait_idle(self) -> None:
        """Return once nothing is queued or running."""
        await self._idle.wait()

    async def run(self) -> None:
        """Run the workers until cancelled."""
        async with asyncio.TaskGroup() as group:
            for index in range(self.concurrency):
                group.create_task(self._worker(), name=f"{self.name}-worker-{index}")

    async def _worker(self) -> None:
        while True:
            if self.after is not None:
                await self.after.wait_idle()
            key = await self._queue.get()
            self._queued.discard(key)
            job = self._jobs.pop(key, None)
            if job is None:
                continue
            self._running.add(key)
            try:
                await job()
                self.done += 1
            except asyncio.CancelledError:
                raise
            except Exception:  # one object's failure must not stop the others
                self.failed += 1
                self._log.exception("job failed", key=key)
            finally:
                self._running.discard(key)
                if key in self._jobs and key not in self._queued:
                    self._queued.add(key)
                    self._queue.put_nowait(key)
                if not self._jobs and not self._running:
                    self._idle.set()
