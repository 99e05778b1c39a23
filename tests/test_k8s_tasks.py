"""run_until_signal and Tasks: named tasks under one TaskGroup, a real SIGTERM/SIGINT drains them
(their cleanup runs), one failure stops the rest, and a process whose tasks all end returns."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from lbipam.k8s.tasks import Tasks, run_until_signal


class Worker:
    """A long-lived task that records that it started and that its cleanup ran."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cleaned_up = False

    async def run(self) -> None:
        self.started.set()
        try:
            await asyncio.Event().wait()  # forever
        finally:
            await asyncio.sleep(0)  # async cleanup (withdraw routes, release the lease) still runs
            self.cleaned_up = True


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_signal_drains_every_task(signum: signal.Signals) -> None:
    workers = [Worker(), Worker()]
    names: list[str] = []

    async def send_signal_once_started() -> None:
        for worker in workers:
            await worker.started.wait()
        os.kill(os.getpid(), signum)

    def setup(tasks: Tasks) -> None:
        for n, worker in enumerate(workers):
            tasks.start(f"worker-{n}", worker.run())
        names.extend(tasks.names())
        asyncio.get_running_loop().create_task(send_signal_once_started())

    await asyncio.wait_for(run_until_signal(setup), timeout=10)
    assert names == ["worker-0", "worker-1"]
    assert all(worker.cleaned_up for worker in workers)
    # The handlers are gone again: a later signal does what it would have done without lbipam.
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


async def test_one_failing_task_stops_the_others_and_its_error_propagates() -> None:
    worker = Worker()

    async def broken() -> None:
        await worker.started.wait()
        raise RuntimeError("informer bug")

    def setup(tasks: Tasks) -> None:
        tasks.start("worker", worker.run())
        tasks.start("broken", broken())

    with pytest.raises(ExceptionGroup) as info:
        await asyncio.wait_for(run_until_signal(setup), timeout=10)
    assert info.group_contains(RuntimeError, match="informer bug")
    assert worker.cleaned_up


async def test_it_returns_when_every_task_ends_by_itself() -> None:
    done: list[str] = []

    async def job(name: str) -> None:
        await asyncio.sleep(0)
        done.append(name)

    async def setup(tasks: Tasks) -> None:
        tasks.start("one", job("one"))
        tasks.start("two", job("two"))

    await asyncio.wait_for(run_until_signal(setup), timeout=10)
    assert sorted(done) == ["one", "two"]


async def test_task_names_are_unique_while_running() -> None:
    worker = Worker()
    errors: list[str] = []

    async def setup(tasks: Tasks) -> None:
        tasks.start("worker", worker.run())
        with pytest.raises(ValueError, match="already running") as info:
            tasks.start("worker", Worker().run())
        errors.append(str(info.value))
        await worker.started.wait()
        os.kill(os.getpid(), signal.SIGTERM)

    await asyncio.wait_for(run_until_signal(setup), timeout=10)
    assert errors


async def test_a_signal_runs_the_flush_first_while_the_tasks_still_run() -> None:
    """The controller's planned writes go out on SIGTERM before anything is cancelled."""
    worker = Worker()
    seen: list[bool] = []

    async def flush() -> None:
        await asyncio.sleep(0)
        seen.append(worker.cleaned_up)  # the worker still runs while the flush does

    def setup(tasks: Tasks) -> None:
        tasks.start("worker", worker.run())

        async def send() -> None:
            await worker.started.wait()
            os.kill(os.getpid(), signal.SIGTERM)

        asyncio.get_running_loop().create_task(send())

    await asyncio.wait_for(run_until_signal(setup, flush=flush), timeout=10)
    assert seen == [False]
    assert worker.cleaned_up


@pytest.mark.parametrize("cut", ["deadline", "second-signal"])
async def test_a_flush_that_hangs_is_cut_short(cut: str) -> None:
    worker = Worker()
    flushing = asyncio.Event()
    cancelled: list[bool] = []

    async def flush() -> None:
        flushing.set()
        try:
            await asyncio.Event().wait()  # never done
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    def setup(tasks: Tasks) -> None:
        tasks.start("worker", worker.run())

        async def send() -> None:
            await worker.started.wait()
            os.kill(os.getpid(), signal.SIGTERM)
            await flushing.wait()
            if cut == "second-signal":
                os.kill(os.getpid(), signal.SIGTERM)

        asyncio.get_running_loop().create_task(send())

    timeout = 0.2 if cut == "deadline" else 60.0
    await asyncio.wait_for(run_until_signal(setup, flush=flush, flush_timeout=timeout), timeout=10)
    assert cancelled == [True]
    assert worker.cleaned_up
