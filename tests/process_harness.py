"""lbipam's own processes against the embedded API server (which runs in the test's process).

`controller_process`: `lbipam controller`, for the scenarios about restarts (test_lbipam_restarts.py):
started with its metrics port on a free loopback port (ready = `/readyz` answers 200: informers
synced, the first round planned), ended with SIGKILL (a crash: nothing drained, no Lease released,
memory gone) or SIGTERM (a rollout: it drains and exits 0). Its log goes to a file the failure
messages quote.

`SpeakerProcess`: `python -m lbipam speaker --node NODE`, its output in a log file (used by
test_speaker_process.py, test_migrate_handover.py and tests/lab.py).

A process's state is seen only through the API: tests wait on what it wrote
(`tests.helpers.eventually`), never on time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import aiohttp

from tests.daemon import free_port
from tests.helpers import eventually

ROOT = Path(__file__).resolve().parent.parent


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


async def start_controller(
    kubeconfig: Path, log: IO[bytes], *flags: str, stdout: Any = asyncio.subprocess.DEVNULL, **options: Any
) -> asyncio.subprocess.Process:
    """`python -m lbipam controller --kubeconfig KUBECONFIG --no-leader-elect FLAGS`, its stderr
    into `log`; `options` as `asyncio.create_subprocess_exec` takes them."""
    argv = ["controller", "--kubeconfig", str(kubeconfig), "--no-leader-elect", *flags]
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lbipam", *argv, stdout=stdout, stderr=log, **options
    )


@contextlib.asynccontextmanager
async def controller_process(
    kubeconfig: Path, log: Path, *flags: str, ready: bool = True
) -> AsyncIterator[ControllerProcess]:
    """`lbipam controller --no-leader-elect` with `flags`; killed at the end if still running."""
    port = free_port()
    with log.open("ab") as out:
        proc = await start_controller(
            kubeconfig, out, "--metrics-port", str(port), "--metrics-address", "127.0.0.1", *flags
        )
    running = ControllerProcess(proc, f"http://127.0.0.1:{port}", log)
    try:
        if ready:
            await running.ready()
        yield running
    finally:
        await running.kill()


# ---- the speaker as its own process -------------------------------------------------------------
def speaker_module() -> str:
    """`lbipam` once its CLI has the speaker subcommand, else `bgp.main` (the same parser)."""
    from lbipam.cli import build_parser

    try:
        build_parser().parse_args(["speaker", "--node", "x"])
    except SystemExit:
        return "bgp.main"
    return "lbipam"


@dataclass
class SpeakerProcess:
    """`python -m lbipam speaker --node NODE`, its output in a log file."""

    proc: asyncio.subprocess.Process
    log: Path

    @classmethod
    async def start(
        cls,
        kubeconfig: Path,
        node: str,
        runtime_dir: Path,
        log: Path,
        *flags: str,
        cwd: Path = ROOT,
        wrap: Sequence[str] = (),
    ) -> SpeakerProcess:
        """Run it in `cwd`; `runtime_dir` as given (a relative one is resolved there); `wrap`: a
        command prefix, e.g. `ip netns exec NS` (tests/lab.py)."""
        args = ["speaker", "--node", node, "--kubeconfig", str(kubeconfig), "--runtime-dir", str(runtime_dir)]
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                *wrap,
                sys.executable,
                "-m",
                speaker_module(),
                *args,
                "--log-level",
                "DEBUG",
                *flags,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                cwd=cwd,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
        return cls(proc, log)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def terminate(self, timeout: float = 30.0) -> int:  # noqa: ASYNC109  # a deadline
        """SIGTERM; the exit code once it has exited."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), timeout)

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
