"""Fault injection on the embedded API server: failing writes, dropped watches, compaction; in
process and over HTTP."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from lbipam.apiserver.server import EmbeddedAPIServer
from tests.helpers import api_client, eventually

CMS = "/api/v1/namespaces/default/configmaps"
FAULTS = "/debug/lbipam/faults"


@pytest.fixture
async def apiserver() -> AsyncIterator[EmbeddedAPIServer]:
    """The shared fixture's server, with /debug/lbipam/faults served (it is off by default)."""
    server = EmbeddedAPIServer(db=":memory:", port=0, bookmark_interval=0.5, enable_fault_injection=True)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def core(kubeconfig: Path) -> AsyncIterator[Any]:
    async with api_client(kubeconfig) as api:
        yield client.CoreV1Api(api)


@pytest.mark.parametrize(
    ("code", "reason"), [(409, "Conflict"), (429, "TooManyRequests"), (500, "InternalError")]
)
async def test_next_writes_fail_then_succeed(
    core: Any, apiserver: EmbeddedAPIServer, code: int, reason: str
) -> None:
    apiserver.faults.fail_next_writes(2, code=code)
    before = apiserver.store.rv
    for _ in range(2):
        with pytest.raises(ApiException) as info:
            await core.create_namespaced_config_map("default", {"metadata": {"name": "cm"}})
        assert info.value.status == code
        status = json.loads(info.value.body)
        assert (status["reason"], status["code"]) == (reason, code)
        if code == 429:
            assert info.value.headers["Retry-After"] == "1"
    assert apiserver.store.rv == before, "a failed write writes nothing"
    made = await core.create_namespaced_config_map("default", {"metadata": {"name": "cm"}})
    assert made.metadata.name == "cm"


async def test_faults_for_one_resource_leave_others_alone(core: Any, apiserver: EmbeddedAPIServer) -> None:
    apiserver.faults.fail_next_writes(1, code=500, resource="services")
    await core.create_namespaced_config_map("default", {"metadata": {"name": "fine"}})
    with pytest.raises(ApiException) as info:
        await core.create_namespaced_service(
            "default", {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}}
        )
    assert info.value.status == 500
    await core.create_namespaced_service(
        "default", {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}}
    )


async def test_reads_are_never_failed(core: Any, apiserver: EmbeddedAPIServer) -> None:
    apiserver.faults.fail_next_writes(1, code=500)
    assert (await core.list_namespaced_config_map("default")).items == []
    with pytest.raises(ApiException):
        await core.create_namespaced_config_map("default", {"metadata": {"name": "cm"}})


async def test_faults_over_http(apiserver: EmbeddedAPIServer) -> None:
    async with apiserver.session() as http:
        async with http.post(FAULTS, json={"action": "fail_next_writes", "n": 1, "code": 429}) as response:
            assert response.status == 200
            assert (await response.json())["pending"] == [{"remaining": 1, "code": 429, "resource": None}]
        async with http.post(CMS, json={"metadata": {"name": "a"}}) as response:
            assert response.status == 429
        async with http.post(CMS, json={"metadata": {"name": "a"}}) as response:
            made = await response.json()
            assert response.status == 201
        watch = await http.get(
            CMS, params={"watch": "true", "resourceVersion": made["metadata"]["resourceVersion"]}
        )
        await eventually(lambda: apiserver.hub.count() == 1)
        async with http.post(FAULTS, json={"action": "drop_watches"}) as response:
            assert (await response.json())["dropped"] == 1
        assert await watch.content.read() == b""
        async with http.post(FAULTS, json={"action": "compact"}) as response:
            assert response.status == 200
        params = {"watch": "true", "resourceVersion": str(int(made["metadata"]["resourceVersion"]) - 1)}
        async with http.get(CMS, params=params) as response:
            event = json.loads(await response.content.readline())
        assert (event["type"], event["object"]["code"]) == ("ERROR", 410)
        async with http.post(FAULTS, json={"action": "fail_next_writes", "code": 418}) as response:
            assert response.status == 400
        async with http.post(FAULTS, json={"action": "explode"}) as response:
            assert (response.status, (await response.json())["reason"]) == (400, "BadRequest")
    async with (
        aiohttp.ClientSession(
            apiserver.url, connector=aiohttp.TCPConnector(ssl=apiserver.ssl_context())
        ) as anonymous,
        anonymous.post(FAULTS, json={"action": "drop_watches"}) as response,
    ):
        assert response.status == 401, "fault injection needs the token too"


async def test_fault_injection_is_off_by_default() -> None:
    server = EmbeddedAPIServer(port=0)
    await server.start()
    try:
        async with server.session() as http:
            for method in ("GET", "POST"):
                async with http.request(method, FAULTS, json={"action": "drop_watches"}) as response:
                    assert response.status in (404, 405), await response.text()
    finally:
        await server.stop()


def test_fault_codes_are_checked() -> None:
    from lbipam.apiserver.storage.store import Store
    from lbipam.apiserver.storage.watch import WatchHub
    from lbipam.apiserver.wire.faults import Faults

    faults = Faults(WatchHub(), Store(":memory:"))
    with pytest.raises(ValueError, match="code must be one of"):
        faults.fail_next_writes(1, code=404)
