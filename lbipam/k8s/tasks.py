"""Long-lived tasks under one asyncio.TaskGroup, and graceful SIGTERM/SIGINT draining.

STYLE.md convention 10: the controller and the speaker start every long-lived task (informers,
workers, the leader elector, the ExaBGP driver) through `Tasks.start(name, coro)`, so each is
named in logs and tracebacks, and one failure stops the process instead of leaving it half alive.

`run_until_signal(setup)` runs the group until SIGTERM or SIGINT (or a task fails): it then
awaits `flush()` if given (work the tasks must finish while still running, e.g. the controller's
planned writes; up to `flush_timeout`), then cancels every task and waits for their cleanup --
withdrawing routes, releasing the Lease -- up to `drain_timeout`; a second signal cuts the
flush short, or cancels the tasks once more.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from lbipam.k8s.logs import KVLog

_log = KVLog("lbipam.tasks")


class _Stop(Exception):
    """Raised inside the group to stop it; never escapes `run_until_signal`."""


class Tasks:
    """A TaskGroup front: named tasks, logged when they start and when they end."""

    def __init__(self, group: asyncio.TaskGroup) -> None:
        self._group = group
        self._tasks: dict[str, asyncio.Task[Any]] = {}
        self.idle = asyncio.Event()  # set when every started task has ended

    def start(self, name: str, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Start `coro` as task `name` (unique); it runs until it returns or the group stops."""
        if name in self._tasks and not self._tasks[name].done():
            coro.close()
            raise ValueError(f"a task named {name!r} is already running")
        task = self._group.create_task(_logged(name, coro), name=name)
        self._tasks[name] = task
        self.idle.clear()
        task.add_done_callback(self._check_idle)
        return task

    def _check_idle(self, _: asyncio.Task[Any]) -> None:
        if not self.names():
            self.idle.set()

    def names(self) -> list[str]:
        """The names of tasks still running."""
        return [name for name, task in self._tasks.items() if not task.done()]

    def cancel_all(self) -> None:
        for task in self._tasks.values():
            task.cancel()


async def _logged(name: str, coro: Coroutine[Any, Any, Any]) -> Any:
    _log.debug("task started", task=name)
    try:
        result = await coro
    except asyncio.CancelledError:
        _log.debug("task cancelled", task=name)
        raise
    except Exception as err:
        _log.error("task failed", task=name, error=repr(err))
        raise
    _log.debug("task finished", task=name)
    return result


async def run_until_signal(
    setup: Callable[[Tasks], Awaitable[None] | None],
    *,
    signals: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT),
    drain_timeout: float = 10.0,
    flush: Callable[[], Awaitable[None]] | None = None,
    flush_timeout: float = 10.0,
) -> None:
    """Start tasks via `setup(tasks)`; run until a signal arrives or every task has ended.

    On the signal `flush()` runs first (the tasks still running; at most `flush_timeout`
    seconds), then every task is cancelled and awaited (their cleanup runs); a second signal,
    or `drain_timeout` seconds, cancels what still runs once more. A task that fails stops
    the others too and its error propagates (in an ExceptionGroup).
    """
    loop = asyncio.get_running_loop()
    stop, hurry = asyncio.Event(), asyncio.Event()
    tasks: Tasks | None = None
    watchdog: list[asyncio.TimerHandle] = []

    def on_signal(signum: signal.Signals) -> None:
        if tasks is None:
            return
        if stop.is_set() and not hurry.is_set() and not watchdog:
            _log.warning("second signal: cutting the flush short", signal=signum.name)
            hurry.set()
            return
        if stop.is_set():
            _log.warning("second signal: cancelling the remaining tasks again", signal=signum.name)
            tasks.cancel_all()
            return
        _log.info("signal received, draining", signal=signum.name, tasks=",".join(tasks.names()))
        stop.set()

    def arm_watchdog() -> None:
        assert tasks is not None
        watchdog.append(loop.call_later(drain_timeout, _drain_watchdog, tasks))

    for signum in signals:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        async with asyncio.TaskGroup() as group:
            tasks = Tasks(group)
            result = setup(tasks)
            if result is not None:
                await result
            if tasks.names():
                flushing = _Flush(flush, flush_timeout, hurry)
                group.create_task(_stopper(stop, tasks, flushing, arm_watchdog), name="lbipam-signal-watch")
    except* _Stop:
        pass
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
        for handle in watchdog:
            handle.cancel()


class _Flush:
    """What to finish before the tasks are cancelled, and how long it may take."""

    def __init__(
        self, flush: Callable[[], Awaitable[None]] | None, timeout: float, hurry: asyncio.Event
    ) -> None:
        self.flush, self.timeout, self.hurry = flush, timeout, hurry

    async def run(self) -> None:
        if self.flush is None:
            return
        work = asyncio.ensure_future(self.flush())
        cut = asyncio.ensure_future(self.hurry.wait())
        try:
            await asyncio.wait([work, cut], timeout=self.timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            cut.cancel()
            if not work.done():
                _log.warning("flush not finished: stopping anyway", timeout=f"{self.timeout}s")
                work.cancel()
            elif not work.cancelled() and work.exception() is not None:
                _log.error("flush failed", error=repr(work.exception()))


async def _stopper(
    stop: asyncio.Event, tasks: Tasks, flushing: _Flush, arm_watchdog: Callable[[], None]
) -> None:
    """Raises _Stop -- the TaskGroup then cancels every task -- once the signal arrives and
    the flush is over; returns quietly if every task ends first."""
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(tasks.idle.wait())]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    if stop.is_set():
        await flushing.run()
        arm_watchdog()
        raise _Stop


def _drain_watchdog(tasks: Tasks) -> None:
    remaining = tasks.names()
    if remaining:
        _log.warning("drain deadline passed, cancelling again", tasks=",".join(remaining))
        tasks.cancel_all()
