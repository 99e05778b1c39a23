"""Secure by default: what an anonymous client reaches, the files the server writes, and the
ways of switching safety off (plain HTTP only on loopback, fault injection only when asked for).

The TLS handshake and the real client over the kubeconfig are in test_apiserver_tls.py.
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from pathlib import Path

import aiohttp
import pytest
import yaml

from lbipam.apiserver.server import EmbeddedAPIServer, InsecureNotLoopback
from tests.helpers import api_client

ROOT = Path(__file__).resolve().parent.parent
PUBLIC = ["/healthz", "/livez", "/readyz", "/version"]
PRIVATE = [
    "/api",
    "/apis",
    "/api/v1/namespaces/default/secrets",
    "/api/v1/namespaces/default/services",
    "/openapi/v2",
    "/openapi/v3",
    "/debug/lbipam/faults",
    "/healthz/store",
]


@pytest.mark.parametrize("path", PUBLIC + PRIVATE)
async def test_without_the_token_only_health_and_version_answer(
    apiserver: EmbeddedAPIServer, path: str
) -> None:
    assert apiserver.url.startswith("https://")
    connector = aiohttp.TCPConnector(ssl=apiserver.ssl_context())
    async with aiohttp.ClientSession(apiserver.url, connector=connector) as anonymous:
        for method in ("GET", "POST"):
            async with anonymous.request(method, path, json={"action": "drop_watches"}) as response:
                if path in PUBLIC and method == "GET":
                    assert response.status == 200, await response.text()
                elif path in PRIVATE:
                    assert response.status == 401, (method, await response.text())
                    assert (await response.json())["reason"] == "Unauthorized"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def modes(directory: Path, pattern: str) -> dict[str, int]:
    return {f.name: mode(f) for f in directory.glob(pattern)}


def stray_temporaries(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.endswith(".tmp") and not p.is_symlink()]


async def test_the_database_and_its_companions_are_private(tmp_path: Path) -> None:
    umask = os.umask(0o022)  # what a login shell has: files would be 0644 without care
    db = tmp_path / "api.db"
    server = EmbeddedAPIServer(db=str(db), port=0)
    await server.start()
    try:
        async with server.session() as http:
            secret = {"metadata": {"name": "md5"}, "stringData": {"password": "s3cret"}}
            async with http.post("/api/v1/namespaces/default/secrets", json=secret) as response:
                assert response.status == 201
        found = modes(tmp_path, "api.db*")
        assert set(found) >= {"api.db", "api.db-wal", "api.db-shm"}
        assert found == dict.fromkeys(found, 0o600)
    finally:
        await server.stop()
        os.umask(umask)


async def test_the_kubeconfig_is_written_fresh_and_private(
    apiserver: EmbeddedAPIServer, tmp_path: Path
) -> None:
    target = tmp_path / "kubeconfig"
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    victim.chmod(0o666)
    (tmp_path / "kubeconfig.tmp").symlink_to(victim)  # the old way's temporary name, planted
    target.write_text("old")
    target.chmod(0o644)  # a pre-existing file does not decide the mode
    written = apiserver.write_kubeconfig(target)
    assert mode(written) == 0o600
    assert yaml.safe_load(written.read_text())["users"][0]["user"]["token"] == apiserver.token
    assert victim.read_text() == "untouched"
    assert stray_temporaries(tmp_path) == []
    async with api_client(written) as api:
        assert api.configuration.host == apiserver.url


async def test_a_kubeconfig_target_that_is_a_link_is_refused(
    apiserver: EmbeddedAPIServer, tmp_path: Path
) -> None:
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    link = tmp_path / "kubeconfig"
    link.symlink_to(victim)
    with pytest.raises(OSError, match="symbolic link"):
        apiserver.write_kubeconfig(link)
    assert victim.read_text() == "untouched"
    assert link.is_symlink()


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "::", "example.com"])
def test_insecure_is_refused_off_loopback(host: str) -> None:
    with pytest.raises(InsecureNotLoopback, match="only on a loopback address"):
        EmbeddedAPIServer(host=host, port=0, insecure=True)


async def test_insecure_serves_plain_http_on_loopback_without_a_token() -> None:
    server = EmbeddedAPIServer(port=0, insecure=True)
    await server.start()
    try:
        assert server.url.startswith("http://127.0.0.1:")
        async with aiohttp.ClientSession(server.url) as http, http.get("/api/v1/namespaces") as response:
            assert response.status == 200
    finally:
        await server.stop()


async def test_the_command_refuses_insecure_off_loopback_in_one_line(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lbipam", "apiserver", "--insecure", "--host", "192.0.2.10", "--port", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 2
    assert out == b""
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("lbipam apiserver: --insecure")
    assert "loopback" in lines[0]


async def test_fault_injection_is_served_only_when_enabled(tmp_path: Path) -> None:
    for enabled, expected in ((False, 404), (True, 200)):
        server = EmbeddedAPIServer(port=0, enable_fault_injection=enabled)
        await server.start()
        try:
            async with server.session() as http, http.get("/debug/lbipam/faults") as response:
                assert response.status == expected, await response.text()
        finally:
            await server.stop()
