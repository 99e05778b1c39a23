"""TLS mode of the embedded API server: a generated CA in the kubeconfig and a required bearer token."""

from __future__ import annotations

import base64
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yaml
from kubernetes_asyncio import client

from lbipam.apiserver.server import EmbeddedAPIServer
from tests.helpers import api_client


@pytest.fixture
async def tls_server() -> AsyncIterator[EmbeddedAPIServer]:
    server = EmbeddedAPIServer(port=0)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_the_real_client_connects_with_the_kubeconfig(
    tls_server: EmbeddedAPIServer, tmp_path: Path
) -> None:
    assert tls_server.url.startswith("https://127.0.0.1:")
    kubeconfig = tls_server.write_kubeconfig(tmp_path / "kubeconfig")
    assert kubeconfig.stat().st_mode & 0o077 == 0, "the token is readable by its owner only"
    config = yaml.safe_load(kubeconfig.read_text())
    assert config["users"][0]["user"]["token"] == tls_server.token
    assert base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"]).startswith(
        b"-----BEGIN"
    )
    async with api_client(kubeconfig) as api:
        names = [ns.metadata.name for ns in (await client.CoreV1Api(api).list_namespace()).items]
    assert "default" in names


async def test_requests_without_the_token_are_401(tls_server: EmbeddedAPIServer) -> None:
    assert tls_server.ca_pem is not None
    context = ssl.create_default_context(cadata=tls_server.ca_pem.decode())
    async with aiohttp.ClientSession(tls_server.url, connector=aiohttp.TCPConnector(ssl=context)) as http:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            async with http.get("/api/v1/namespaces", headers=headers) as response:
                assert response.status == 401
                status = json.loads(await response.text())
                assert (status["reason"], status["code"]) == ("Unauthorized", 401)
        good = {"Authorization": f"Bearer {tls_server.token}"}
        async with http.get("/api/v1/namespaces", headers=good) as response:
            assert response.status == 200
    async with aiohttp.ClientSession(tls_server.url) as http:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await http.get("/version")
