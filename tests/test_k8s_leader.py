"""Leader election on a Lease against the embedded API server, with two real candidates:
exactly one leads, a silent leader is replaced within the lease duration, a released lease
is taken at once, and a leader that cannot renew steps down."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from lbipam.k8s.client import Kube, connect
from lbipam.k8s.leader import LeaderElector
from lbipam.k8s.resources import LEASES
from tests.helpers import eventually

# Renewing often keeps the tests quick; leases stay long unless a test waits for one to expire,
# so a loaded machine cannot make a healthy leader look dead.
STEADY = {"lease_duration": 15.0, "renew_deadline": 10.0, "retry_period": 0.1}
SHORT = {"lease_duration": 2.0, "renew_deadline": 1.0, "retry_period": 0.1}


@pytest.fixture
async def kubes(apiserver: Any, kubeconfig: Path) -> AsyncIterator[tuple[Kube, Kube]]:
    """One client per candidate, as two controller replicas would have."""
    a, b = await connect(str(kubeconfig)), await connect(str(kubeconfig))
    yield a, b
    await a.close()
    await b.close()


class Candidate:
    def __init__(self, kube: Kube, identity: str, **overrides: Any) -> None:
        self.started = 0
        self.stopped = 0
        options = {**STEADY, **overrides}
        self.elector = LeaderElector(
            kube,
            name="lbipam-controller",
            namespace="default",
            identity=identity,
            on_started_leading=self._started,
            on_stopped_leading=self._stopped,
            **options,
        )
        self.task: asyncio.Task[None] | None = None

    def _started(self) -> None:
        self.started += 1

    def _stopped(self) -> None:
        self.stopped += 1

    def start(self) -> Candidate:
        self.task = asyncio.create_task(self.elector.run(), name=f"candidate-{self.elector.identity}")
        return self

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task

    @property
    def leads(self) -> bool:
        return self.elector.is_leader


async def lease(kube: Kube) -> dict[str, Any]:
    return await kube.get(LEASES, "lbipam-controller", namespace="default")


async def holder(kube: Kube) -> str:
    return str((await lease(kube))["spec"].get("holderIdentity") or "")


async def test_exactly_one_of_two_candidates_leads(kubes: tuple[Kube, Kube]) -> None:
    a, b = Candidate(kubes[0], "a").start(), Candidate(kubes[1], "b").start()
    try:
        await eventually(lambda: a.leads or b.leads, timeout=10)
        leader, standby = (a, b) if a.leads else (b, a)
        # Many renewals later the leader still leads, and the standby, which kept looking, never did.
        await eventually(lambda: leader.elector.renewals >= 10, timeout=10)
        assert standby.elector.holder == leader.elector.identity
        assert leader.leads
        assert not standby.leads
        assert (leader.started, standby.started) == (1, 0)
        assert await holder(kubes[0]) == leader.elector.identity
    finally:
        await a.stop()
        await b.stop()


async def test_a_silent_leader_is_replaced_within_the_lease_duration(kubes: tuple[Kube, Kube]) -> None:
    a = Candidate(kubes[0], "a", release_on_cancel=False, **SHORT).start()
    await eventually(lambda: a.leads, timeout=10)
    b = Candidate(kubes[1], "b", **SHORT).start()
    try:
        await eventually(lambda: b.elector.holder == "a", timeout=10)  # b has seen a's lease
        await a.stop()  # crashed: no release
        assert await holder(kubes[0]) == "a"
        await eventually(lambda: b.leads, timeout=SHORT["lease_duration"] * 3)
        current = await lease(kubes[1])
        assert current["spec"]["holderIdentity"] == "b"
        assert current["spec"]["leaseTransitions"] == 1
    finally:
        await b.stop()


async def test_release_on_shutdown_hands_over_at_once(kubes: tuple[Kube, Kube]) -> None:
    # Leases of 15 s: b can only lead within the test's 10 s deadline if a released it.
    a = Candidate(kubes[0], "a").start()
    await eventually(lambda: a.leads, timeout=10)
    b = Candidate(kubes[1], "b").start()
    try:
        await eventually(lambda: b.elector.holder == "a", timeout=10)
        await a.stop()
        assert a.stopped == 1
        await eventually(lambda: b.leads, timeout=10)
        assert await holder(kubes[1]) == "b"
    finally:
        await b.stop()


async def test_a_leader_whose_renewals_fail_steps_down(kubes: tuple[Kube, Kube], apiserver: Any) -> None:
    a = Candidate(kubes[0], "a", renew_deadline=0.5).start()
    try:
        await eventually(lambda: a.leads, timeout=10)
        apiserver.faults.fail_next_writes(1000, code=500, resource="leases")
        await eventually(lambda: a.stopped == 1, timeout=10)
        assert not a.leads
    finally:
        await a.stop()


async def test_a_leader_whose_api_server_hangs_steps_down_within_the_deadline(
    kubes: tuple[Kube, Kube], tmp_path: Path
) -> None:
    a = Candidate(kubes[0], "a", renew_deadline=0.5).start()
    try:
        await eventually(lambda: a.leads, timeout=10)
        with socket.socket() as silent:  # accepts connections (the kernel does), never answers
            silent.bind(("127.0.0.1", 0))
            silent.listen()
            config = tmp_path / "silent"
            config.write_text(
                "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
                f"clusters: [{{name: c, cluster: {{server: 'http://127.0.0.1:{silent.getsockname()[1]}'}}}}]\n"
                "users: [{name: u, user: {}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n"
            )
            async with await connect(str(config)) as hung:
                a.elector.kube = hung  # the API server stops answering mid-term
                # Requests would wait 30 s for an answer; the renewal deadline cuts them short.
                await eventually(lambda: a.stopped == 1, timeout=10)
                assert not a.leads
                await a.stop()
    finally:
        if a.task and not a.task.done():
            await a.stop()


def test_durations_must_nest() -> None:
    with pytest.raises(ValueError, match="renew_deadline"):
        LeaderElector(
            None,  # type: ignore[arg-type]
            name="x",
            namespace="default",
            identity="a",
            lease_duration=5,
            renew_deadline=10,
            retry_period=1,
        )
