"""`lbipam demo` as a user runs it: a subprocess that prints every example Service with an IP
from the right pool (and, with --with-bird, the routes BIRD received), gives an IP to a Service
applied afterwards with the stock kubectl, and exits 0 on Ctrl-C (SIGINT) after withdrawing and
saying what it withdrew. `--db FILE` run twice resumes: every Service keeps its IP. `--keep`
keeps the log it names."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import netaddr
import pytest

from lbipam.demo.bird import SBIN

# Service -> the pool its IPs must come from (lbipam/examples/pools.yaml + demo-cluster.yaml).
EXPECTED = {
    "default/web": ("default", ["192.0.2.0/24", "198.51.100.10/31", "198.51.100.12/30", "198.51.100.16/30",
                                "198.51.100.20/32"]),
    "default/dns-udp": ("default", ["198.51.100.10/32"]),
    "default/dns-tcp": ("default", ["198.51.100.10/32"]),
    "default/ingress": ("default", ["192.0.2.0/24"]),
    "default/payments": ("reserved", ["203.0.113.0/28"]),
    "prod/api": ("prod-dual-stack", ["203.0.113.64/26", "2001:db8:100::/120"]),
}  # fmt: skip
EXTRA = """\
apiVersion: v1
kind: Service
metadata: {name: extra, namespace: default}
spec:
  type: LoadBalancer
  selector: {app: extra}
  ports: [{port: 8080, protocol: TCP}]
"""


class Demo:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []

    async def line_matching(self, predicate: object, timeout: float = 90.0) -> str:  # noqa: ASYNC109
        """Read stdout until a line satisfies `predicate`; fail with what was printed."""
        assert callable(predicate)
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.proc.stdout.readline()
                if not raw:
                    stderr = await self.proc.stderr.read() if self.proc.stderr else b""
                    pytest.fail(f"demo exited {self.proc.returncode}: {self.lines} {stderr.decode()[-2000:]}")
                line = raw.decode().rstrip("\n")
                self.lines.append(line)
                if predicate(line):
                    return line


@asynccontextmanager
async def demo(tmp_path: Path, *flags: str, path: str | None = None) -> AsyncIterator[Demo]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PATH": path or os.environ.get("PATH", "")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lbipam", "demo", "--kubeconfig-out", str(tmp_path / "kubeconfig"), *flags,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        yield Demo(proc)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def in_pool(ip: str, blocks: list[str]) -> bool:
    return any(netaddr.IPAddress(ip) in netaddr.IPNetwork(b) for b in blocks)


async def check_table(run: Demo) -> dict[str, list[str]]:
    await run.line_matching(lambda line: line.startswith("SERVICE"))
    seen: dict[str, list[str]] = {}
    while len(seen) < len(EXPECTED):
        line = await run.line_matching(lambda line: line.split(" ", 1)[0] in EXPECTED)
        key, rest = line.split(None, 1)
        ips = [ip.strip() for ip in rest.split("   ")[0].split(",")]
        # Every example Service has a ready endpoint: some node announces it (ingress: node-a only).
        assert "node-a" in line, line
        assert (key == "default/ingress") != ("node-b" in line), line  # eTP Local: node-a only
        seen[key] = ips
        want_pool, blocks = EXPECTED[key]
        assert f" {want_pool} " in line, f"{key} not from pool {want_pool}: {line!r}"
        assert all(in_pool(ip, blocks) for ip in ips), f"{key}: {ips} outside {blocks}"
    assert len(seen["prod/api"]) == 2  # RequireDualStack: one of each family
    assert seen["default/dns-udp"] == seen["default/dns-tcp"]  # shared by key
    return seen


async def kubectl_apply(kubeconfig: Path, manifest: str) -> None:
    kubectl = shutil.which("kubectl")
    assert kubectl is not None, "kubectl is not on PATH"
    proc = await asyncio.create_subprocess_exec(
        kubectl, "--kubeconfig", str(kubeconfig), "apply", "-f", "-",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate(manifest.encode())
    assert proc.returncode == 0, out.decode()


async def interrupt(run: Demo) -> list[str]:
    """Ctrl-C; what the demo printed from then on, once it exited 0."""
    assert run.proc.stdout is not None
    assert run.proc.stderr is not None
    run.proc.send_signal(signal.SIGINT)
    async with asyncio.timeout(60):
        rest = (await run.proc.stdout.read()).decode().splitlines()
        assert await run.proc.wait() == 0, (run.lines, rest, (await run.proc.stderr.read()).decode()[-2000:])
    return rest


def without_sbin() -> str:
    """PATH without /usr/sbin and /usr/local/sbin, where Debian puts bird: as a plain user's."""
    return os.pathsep.join(
        d for d in os.environ.get("PATH", "").split(os.pathsep) if d.rstrip("/") not in SBIN
    )


@pytest.mark.parametrize(
    "flags",
    [
        pytest.param((), id="no-router"),
        pytest.param(
            ("--with-bird",),
            id="with-bird",
            marks=pytest.mark.skipif(
                not shutil.which("bird", path=os.pathsep.join([os.environ.get("PATH", ""), *SBIN])),
                reason="needs BIRD 2 (.ci/run installs it)",
            ),
        ),
    ],
)
async def test_the_demo_assigns_announces_takes_new_services_and_stops(
    tmp_path: Path, flags: tuple[str, ...]
) -> None:
    # With BIRD: on a PATH without the sbin folders, where Debian's bird is not: the demo looks there.
    async with demo(tmp_path, *flags, path=without_sbin() if flags else None) as run:
        seen = await check_table(run)
        if flags:
            await run.line_matching(lambda line: line.startswith("BIRD (127.0.0.1) received"))
            routes = await run.line_matching(lambda line: seen["default/web"][0] + "/32" in line)
            assert "[node" in routes  # BIRD learnt it from a demo node's session
        await run.line_matching(lambda line: line.startswith("Ctrl-C"))
        await kubectl_apply(tmp_path / "kubeconfig", EXTRA)
        line = await run.line_matching(lambda line: line.startswith("default/extra:"))
        ip = line.split(":", 1)[1].split()[0]
        assert in_pool(ip, EXPECTED["default/web"][1]), line
        assert "(pool default)" in line
        goodbye = await interrupt(run)
    if flags:  # node-a announces the 6 example IPs, node-b all but ingress's (eTP Local); extra
        # has no endpoint, so nobody announces it
        assert goodbye == [
            "Stopped. Withdrawn:",
            "  node-a: 6 routes from demo-node-a (127.0.0.1)",
            "  node-b: 5 routes from demo-node-b (127.0.0.1)",
        ]
    else:
        assert goodbye == ["Stopped. No session was up, so no router held a route: nothing to withdraw."]


async def test_a_second_run_on_the_same_db_resumes_with_the_same_ips(tmp_path: Path) -> None:
    """The Nodes keep their PodCIDRs (which cannot be taken back), every Service its IP, and the
    Service applied in the first run is still there; `--keep` keeps the log it names."""
    db = tmp_path / "demo.db"
    async with demo(tmp_path, "--db", str(db), "--keep") as run:
        first = await check_table(run)
        await run.line_matching(lambda line: line.startswith("Ctrl-C"))
        await kubectl_apply(tmp_path / "kubeconfig", EXTRA)
        extra = (await run.line_matching(lambda line: line.startswith("default/extra:"))).split()[1]
        goodbye = await interrupt(run)
    kept = [line for line in goodbye if line.startswith("kept ")]
    assert len(kept) == 1, goodbye
    workdir = Path(kept[0].split()[1].rstrip(":"))
    try:
        assert "demo.log" in kept[0].split(": ", 1)[1].split(", ")
        log = (workdir / "demo.log").read_text()
        assert "lbipam.controller" in log
        assert "ExaBGP started" in log
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    async with demo(tmp_path, "--db", str(db)) as run:
        resumed = await run.line_matching(lambda line: line.startswith("resuming "))
        assert resumed.startswith(f"resuming {db}: ")
        assert await check_table(run) == first
        rows = [line.split()[1] for line in run.lines if line.startswith("default/extra ")]
        assert rows == [extra], run.lines
        await interrupt(run)
