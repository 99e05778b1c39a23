"""Durability of the embedded API server: every object and the resourceVersion survive a restart
with the same database, in process and as the `lbipam apiserver` command (SIGTERM, restart)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest
from kubernetes_asyncio import client

from lbipam.apiserver.server import EmbeddedAPIServer
from lbipam.apiserver.storage.store import Store
from tests.helpers import api_client

ROOT = Path(__file__).resolve().parent.parent


async def test_restart_keeps_objects_and_resource_versions_move_forward(tmp_path: Path) -> None:
    db = str(tmp_path / "api.db")
    first = EmbeddedAPIServer(db=db, port=0)
    await first.start()
    async with api_client(first.write_kubeconfig(tmp_path / "kc1")) as api:
        core = client.CoreV1Api(api)
        await core.create_namespace({"metadata": {"name": "team"}})
        body = {"metadata": {"name": "web"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}
        svc = await core.create_namespaced_service("team", body)
        await core.patch_namespaced_service_status(
            "web", "team", {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.7"}]}}}
        )
        last_rv = int((await core.list_namespace()).metadata.resource_version)
    await first.stop()

    second = EmbeddedAPIServer(db=db, port=0)
    await second.start()
    try:
        async with api_client(second.write_kubeconfig(tmp_path / "kc2")) as api:
            core = client.CoreV1Api(api)
            read = await core.read_namespaced_service("web", "team")
            assert read.metadata.uid == svc.metadata.uid
            assert read.spec.cluster_ip == svc.spec.cluster_ip
            assert read.status.load_balancer.ingress[0].ip == "192.0.2.7"
            other = await core.create_namespaced_service(
                "team", {"metadata": {"name": "db"}, "spec": {"ports": [{"port": 5432}]}}
            )
            assert int(other.metadata.resource_version) > last_rv
            assert other.spec.cluster_ip != svc.spec.cluster_ip, "allocations were restored"
            assert {ns.metadata.name for ns in (await core.list_namespace()).items} >= {"default", "team"}
    finally:
        await second.stop()


async def test_writes_are_committed_before_they_are_acknowledged(tmp_path: Path) -> None:
    db = str(tmp_path / "api.db")
    server = EmbeddedAPIServer(db=db, port=0)
    await server.start()
    try:
        async with api_client(server.write_kubeconfig(tmp_path / "kc")) as api:
            core = client.CoreV1Api(api)
            made = await asyncio.gather(
                *(
                    core.create_namespaced_config_map("default", {"metadata": {"name": f"cm{i}"}})
                    for i in range(20)
                )
            )
            # A second reader of the same file sees every acknowledged write, before any shutdown.
            reader = Store(db)
            reader.open()
            try:
                names = {o["metadata"]["name"] for o in reader.items("/configmaps")}
                assert names == {m.metadata.name for m in made}
                assert reader.rv == max(int(m.metadata.resource_version) for m in made)
            finally:
                await reader.close()
    finally:
        await server.stop()


async def _start(db: Path, kubeconfig: Path) -> tuple[asyncio.subprocess.Process, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lbipam",
        "apiserver",
        "--port",
        "0",
        "--db",
        str(db),
        "--kubeconfig-out",
        str(kubeconfig),
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env=env,
    )
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
    assert line.startswith("apiserver ready https://127.0.0.1:"), line
    return process, line.split()[-1]


async def _stop(process: asyncio.subprocess.Process) -> int:
    process.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(process.wait(), 30)


@pytest.mark.e2e
async def test_the_command_serves_stops_on_sigterm_and_restarts(tmp_path: Path) -> None:
    db, kubeconfig = tmp_path / "api.db", tmp_path / "kubeconfig"
    process, url = await _start(db, kubeconfig)
    try:
        assert url in kubeconfig.read_text()
        async with api_client(kubeconfig) as api:
            made = await client.CoreV1Api(api).create_namespaced_config_map(
                "default", {"metadata": {"name": "kept"}, "data": {"k": "v"}}
            )
    finally:
        assert await _stop(process) == 0
    process, _ = await _start(db, kubeconfig)
    try:
        async with api_client(kubeconfig) as api:
            core = client.CoreV1Api(api)
            read = await core.read_namespaced_config_map("kept", "default")
            assert (read.data, read.metadata.uid) == ({"k": "v"}, made.metadata.uid)
            later = await core.create_namespaced_config_map("default", {"metadata": {"name": "later"}})
            assert int(later.metadata.resource_version) > int(made.metadata.resource_version)
    finally:
        assert await _stop(process) == 0
