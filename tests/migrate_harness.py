"""Shared helpers of the handover tests (tests/test_migrate_handover*.py): a cluster as MetalLB
or Cilium leaves it, moved over to lbipam with the real tools.

- `Kubectl`: the stock kubectl with its own HOME, against one kubeconfig (apply files, stdin);
- `run_migrate`: `python -m lbipam migrate --from SOURCE --kubeconfig K` as a user runs it;
- `ControllerProcess`: `python -m lbipam controller --compat ... --no-leader-elect`, its log in a file;
- `IngressLog`: every ingress IP list each Service has had since it started (an informer), so a
  test can say no Service ever changed IP, not only that the end state matches;
- `left_by`: write the Services' ingress IPs (and another controller's annotations) as that
  controller left them;
- `announced`: a speaker process's routes as BIRD holds them, the speaker then stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lbipam.k8s.client import Kube
from lbipam.k8s.informer import Informer
from lbipam.k8s.resources import SERVICES
from tests.bgplab import Bird, Route
from tests.controller_harness import until
from tests.process_harness import SpeakerProcess, start_controller
from tests.speaker_harness import table

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "migrate"
Obj = dict[str, Any]


def kubectl_path() -> str | None:
    found = shutil.which("kubectl")
    beside = Path(sys.executable).parent / "kubectl"
    return found or (str(beside) if beside.exists() else None)


@dataclass
class Kubectl:
    kubeconfig: Path
    home: Path

    async def run(self, *args: str, stdin: str | None = None) -> str:
        binary = kubectl_path()
        assert binary is not None
        env = {"HOME": str(self.home), "KUBECONFIG": str(self.kubeconfig), "PATH": os.environ.get("PATH", "")}
        proc = await asyncio.create_subprocess_exec(
            binary,
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin else None), 60)
        assert proc.returncode == 0, f"kubectl {' '.join(args)}: {err.decode()}"
        return out.decode()

    async def apply(self, *paths: Path) -> str:
        return await self.run("apply", *(a for p in paths for a in ("-f", str(p))))

    async def apply_text(self, text: str) -> str:
        return await self.run("apply", "-f", "-", stdin=text)


async def run_migrate(kubeconfig: Path, source: str, *flags: str) -> tuple[int, str, str]:
    """`lbipam migrate --from SOURCE --kubeconfig K`: (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lbipam",
        "migrate",
        "--from",
        source,
        "--kubeconfig",
        str(kubeconfig),
        *flags,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@dataclass
class ControllerProcess:
    """`python -m lbipam controller` as its own process."""

    proc: asyncio.subprocess.Process
    log: Path

    @classmethod
    async def start(cls, kubeconfig: Path, log: Path, *flags: str) -> ControllerProcess:
        with log.open("wb") as out:
            proc = await start_controller(
                kubeconfig,
                out,
                "--reuse-delay",
                "1",
                *flags,
                stdout=out,
                stdin=asyncio.subprocess.DEVNULL,
                cwd=ROOT,
            )
        return cls(proc, log)

    def alive(self) -> None:
        assert self.proc.returncode is None, f"the controller exited: {self.log.read_text(errors='replace')}"

    async def stop(self) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        assert self.proc.returncode is not None
        return self.proc.returncode


@contextlib.asynccontextmanager
async def controller_process(kubeconfig: Path, log: Path, *flags: str) -> Any:
    running = await ControllerProcess.start(kubeconfig, log, *flags)
    try:
        yield running
    finally:
        await running.stop()


def ingress_of(obj: Obj) -> tuple[str, ...]:
    return tuple(i["ip"] for i in ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or [])


@dataclass
class IngressLog:
    """Every distinct ingress IP list each Service has shown since the log started."""

    seen: dict[str, list[tuple[str, ...]]] = field(default_factory=lambda: defaultdict(list))

    def record(self, event: str, new: Obj, old: Obj | None) -> None:
        key = f"{new['metadata'].get('namespace')}/{new['metadata']['name']}"
        ips = ingress_of(new)
        if not self.seen[key] or self.seen[key][-1] != ips:
            self.seen[key].append(ips)


@contextlib.asynccontextmanager
async def ingress_log(kube: Kube) -> Any:
    """An `IngressLog` fed by an informer on Services, running for the block."""
    log = IngressLog()
    informer = Informer(kube, SERVICES)
    informer.add_handler(log.record)
    task = asyncio.create_task(informer.run(), name="ingress-log")
    try:
        await until(lambda: _synced(informer, task), timeout=20)
        yield log
        assert not task.done(), "the ingress log stopped"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _synced(informer: Informer, task: asyncio.Task[None]) -> bool:
    if task.done():
        task.result()
    return informer.synced.is_set()


async def left_by(kube: Kube, services: dict[tuple[str, str], tuple[str, ...]]) -> None:
    """Write each Service's ingress IPs as the previous controller left them."""
    for (namespace, name), ips in services.items():
        body = {"status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}}}
        await kube.patch(SERVICES, name, body, namespace=namespace, subresource="status")


async def announced(kubeconfig: Path, tmp_path: Path, bgp: Bird, expected: set[str]) -> dict[str, Route]:
    """BIRD's routes once a speaker process for node-a has announced exactly `expected`; the
    speaker is then stopped with SIGTERM and must exit 0."""
    proc = await SpeakerProcess.start(kubeconfig, "node-a", tmp_path / "speaker", tmp_path / "speaker.log")
    try:
        return await table(bgp, expected, timeout=40)
    finally:
        assert await proc.terminate() == 0, proc.output()
