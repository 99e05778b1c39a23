"""`lbipam controller` as a real process against the embedded API server (which runs in the
test's process), for the scenarios about restarts: started with its metrics port on a free
loopback port (ready = `/readyz` answers 200: informers synced, the first round planned), ended
with SIGKILL (a crash: nothing drained, no Lease released, memory gone) or SIGTERM (a rollout:
it drains and exits 0). Its log goes to a file the failure messages quote.

Used by test_lbipam_restarts.py. A process's state is seen only through the API: tests wait on
what it wrote (`tests.helpers.eventually`), never on time.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from tests.helpers import eventually


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ControllerProcess:
    proc: asyncio.subprocess.Process
    url: str
    log: Path

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    async def ready(self, timeout: float = 30.0) -> None:  # noqa: ASYNC109  # a polling deadline
        """Wait until it has planned its first round (its /readyz says so)."""

        async def answers() -> bool:
            assert self.proc.returncode is None, f"the controller exited:\n{self.tail()}"
            with contextlib.suppress(aiohttp.ClientError):
                async with aiohttp.ClientSession() as session, session.get(f"{self.url}/readyz") as r:
                    return r.status == 200
            return False

        await eventually(answers, timeout=timeout, interval=0.05)

    async def kill(self) -> None:
        """SIGKILL: what a crash, an OOM kill or a lost node does."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def terminate(self, timeout: float = 40.0) -> int:  # noqa: ASYNC109  # a deadline
        """SIGTERM, as a rollout sends it; its exit code."""
        self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), timeout)


@contextlib.asynccontextmanager
async def controller_process(
    kubeconfig: Path, log: Path, *flags: str, ready: bool = True
) -> AsyncIterator[ControllerProcess]:
    """`lbipam controller --no-leader-elect` with `flags`; killed at the end if still running."""
    port = free_port()
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "lbipam",
            "controller",
            "--kubeconfig",
            str(kubeconfig),
            "--no-leader-elect",
            "--metrics-port",
            str(port),
            "--metrics-address",
            "127.0.0.1",
            *flags,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=out,
        )
    running = ControllerProcess(proc, f"http://127.0.0.1:{port}", log)
    try:
        if ready:
            await running.ready()
        yield running
    finally:
        await running.kill()
