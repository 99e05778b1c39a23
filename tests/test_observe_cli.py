"""`lbipam controller` as a real process: --metrics-port/--metrics-address serve /metrics,
/healthz and /readyz (by default on both IP families); --log-format json writes one JSON object
per line; a taken port or a bad flag is a clear error, not a traceback. The embedded API server
runs in the test's process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from lbipam.cli import build_parser
from lbipam.k8s.client import connect
from tests.controller_harness import until
from tests.daemon import free_port
from tests.helpers import eventually
from tests.lbipam_harness import Api, pool, service
from tests.process_harness import start_controller

ROOT = Path(__file__).resolve().parent.parent


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as r:
        return r.status, await r.text()


async def metric(url: str, name: str, **labels: str) -> float | None:
    status, text = await get(f"{url}/metrics")
    assert status == 200
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return None


@contextlib.asynccontextmanager
async def controller(
    kubeconfig: Path, stderr: Path, *flags: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`lbipam controller` with `flags`, its stderr in a file; SIGTERM when done."""
    with stderr.open("wb") as err:
        proc = await start_controller(kubeconfig, err, *flags)
        try:
            yield proc
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 20)


async def test_endpoints_and_json_logs(kubeconfig: Path, lbipam_crds: list[str], tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    stderr = tmp_path / "stderr"
    flags = ("--metrics-port", str(port), "--metrics-address", "127.0.0.1", "--log-format", "json")
    async with controller(kubeconfig, stderr, *flags) as proc:

        async def ready() -> bool:
            assert proc.returncode is None, stderr.read_text()
            return (await get(f"{url}/readyz"))[0] == 200

        await until(ready, timeout=20)
        assert await get(f"{url}/healthz") == (200, "ok\n")
        assert await metric(url, "lbipam_leader", controller="lbipam") == 1.0
        assert await metric(url, "lbipam_leader", controller="podcidr") is None  # --podcidr-target none
        kube = await connect(str(kubeconfig))
        try:
            api = Api(kube)
            await api.make(pool("web", "192.0.2.0/31"))
            # The pool first (once its series show, the planner has it), else a Service seen
            # before it would fail with noPool first.
            await until(
                lambda: metric(url, "lbipam_pool_addresses", pool="web", family="ipv4", state="total")
            )
            await api.make(service("a"), service("b"), service("c"))

            async def counted() -> bool:
                got = [
                    await metric(url, "lbipam_allocations_total", result=r) for r in ("allocated", "outOfIPs")
                ]
                return got == [2.0, 1.0]

            await until(counted, timeout=20)
            assert await metric(url, "lbipam_pool_exhausted", pool="web", family="ipv4") == 1.0
            assert await metric(url, "lbipam_pool_addresses", pool="web", family="ipv4", state="used") == 2.0
        finally:
            await kube.close()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0

    lines = stderr.read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "msg"} <= r.keys() for r in records), lines
    assert all(r["time"].endswith("Z") for r in records)
    serving = [r for r in records if r["logger"] == "lbipam.observe"]
    assert serving == [{**serving[0], "level": "info", "url": url}]
    planned = [r for r in records if r["msg"] == "ready: every object planned"]
    assert planned[0]["logger"] == "lbipam.controller.lbipam"
    assert planned[0]["pools"] == 0  # ints stay ints
    assert any(r["msg"] == "signal received, draining" and r["signal"] == "SIGTERM" for r in records)


async def test_a_taken_port_is_a_clear_error(
    kubeconfig: Path, lbipam_crds: list[str], tmp_path: Path
) -> None:
    stderr = tmp_path / "stderr"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        flags = ("--metrics-port", str(port), "--metrics-address", "127.0.0.1")
        async with controller(kubeconfig, stderr, *flags) as proc:
            assert await asyncio.wait_for(proc.wait(), 20) == 2  # a user's mistake, as every command's
    text = stderr.read_text()
    assert f"lbipam controller: cannot serve metrics on 127.0.0.1:{port}: " in text
    assert "Traceback" not in text


async def test_metrics_port_zero_serves_nothing(
    kubeconfig: Path, lbipam_crds: list[str], tmp_path: Path
) -> None:
    stderr = tmp_path / "stderr"
    async with controller(kubeconfig, stderr, "--metrics-port", "0") as proc:
        await eventually(lambda: "ready: every object planned" in stderr.read_text(), timeout=20)
        assert proc.returncode is None
    assert "serving /metrics" not in stderr.read_text()


@pytest.mark.parametrize(
    ("flags", "error"),
    [
        pytest.param(["--metrics-port", "70000"], "70000 is not a port number", id="port-too-big"),
        pytest.param(["--metrics-port", "-1"], "-1 is not a port number", id="port-negative"),
        pytest.param(["--metrics-port", "web"], "'web' is not a port number", id="port-not-a-number"),
        pytest.param(["--log-format", "xml"], "invalid choice: 'xml'", id="log-format"),
    ],
)
def test_bad_flags(flags: list[str], error: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["controller", *flags])
    assert exit_.value.code == 2
    assert error in capsys.readouterr().err


async def test_an_unknown_log_level_is_a_clear_error() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lbipam",
        "controller",
        "--log-level",
        "loud",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2
    assert err.decode() == (
        "lbipam controller: --log-level: unknown level 'loud' (DEBUG, INFO, WARNING, ERROR or CRITICAL)\n"
    )


def test_flag_defaults() -> None:
    args = build_parser().parse_args(["controller"])
    assert (args.metrics_port, args.metrics_address, args.log_format) == (0, "::", "text")


async def test_by_default_the_probes_answer_over_ipv6_and_ipv4(
    kubeconfig: Path, lbipam_crds: list[str], tmp_path: Path
) -> None:
    """`--metrics-address` left at its default (`::`): the kubelet probes an IPv6-only pod's IPv6
    address and an IPv4-only pod's IPv4 one; the one socket answers both (here ::1 and 127.0.0.1)."""
    port = free_port()
    stderr = tmp_path / "stderr"
    async with controller(kubeconfig, stderr, "--metrics-port", str(port)) as proc:

        async def ready() -> bool:
            assert proc.returncode is None, stderr.read_text()
            return (await get(f"http://[::1]:{port}/readyz"))[0] == 200

        await until(ready, timeout=20)
        assert await get(f"http://[::1]:{port}/healthz") == (200, "ok\n")
        assert await get(f"http://127.0.0.1:{port}/healthz") == (200, "ok\n")
        assert (await get(f"http://127.0.0.1:{port}/readyz"))[0] == 200
        assert await metric(f"http://[::1]:{port}", "lbipam_leader", controller="lbipam") == 1.0
    assert f"url=http://[::]:{port}" in stderr.read_text()


SERVE_AND_PROBE = """
import asyncio, aiohttp
from prometheus_client.registry import CollectorRegistry
from lbipam.observe.server import ObserveServer

async def main():
    server = ObserveServer(CollectorRegistry(), lambda: True, "::", 0)
    await server.start()
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{server.port}/readyz") as r:
            print(server.host, r.status)
    await server.stop()

asyncio.run(main())
"""


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip"), reason="needs root and iproute2 (ip netns)")
async def test_where_ipv6_is_off_the_default_address_still_serves_ipv4() -> None:
    """In a network namespace of the test's own with IPv6 disabled (sysctl disable_ipv6)."""
    netns = f"lbipam-obs-{os.getpid()}"
    await run("ip", "netns", "add", netns)
    try:
        inside = ("ip", "netns", "exec", netns)
        await run(*inside, "ip", "link", "set", "lo", "up")
        for conf in ("all", "default", "lo"):
            await run(*inside, "sysctl", "-qw", f"net.ipv6.conf.{conf}.disable_ipv6=1")
        assert "inet6" not in await run(*inside, "ip", "-6", "addr", "show", "lo")
        out = await run(*inside, sys.executable, "-c", SERVE_AND_PROBE, cwd=ROOT)
        host, status = out.split()
        assert status == "200"
        assert host in ("::", "0.0.0.0")
    finally:
        await run("ip", "netns", "del", netns)


async def run(*argv: str, cwd: Path | None = None) -> str:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=cwd
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, (argv, err.decode())
    return out.decode()
