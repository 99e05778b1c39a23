"""Watches on the embedded API server: initial state, resume from a resourceVersion, 410 Expired
and relist, BOOKMARKs, timeoutSeconds, selectors (leaving is DELETED), dropped and slow watchers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

from lbipam.apiserver.server import EmbeddedAPIServer
from lbipam.apiserver.storage.store import Change
from lbipam.apiserver.storage.watch import Watcher
from tests.helpers import api_client, eventually

CMS = "/api/v1/namespaces/default/configmaps"


@pytest.fixture
async def http(apiserver: EmbeddedAPIServer) -> AsyncIterator[aiohttp.ClientSession]:
    async with apiserver.session() as session:
        yield session


async def make(
    http: aiohttp.ClientSession, name: str, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    body = {"metadata": {"name": name, "labels": labels or {}}, "data": {"v": "1"}}
    async with http.post(CMS, json=body) as response:
        assert response.status == 201, await response.text()
        made: dict[str, Any] = await response.json()
        return made


async def patch(http: aiohttp.ClientSession, name: str, body: dict[str, Any]) -> dict[str, Any]:
    headers = {"Content-Type": "application/merge-patch+json"}
    async with http.patch(f"{CMS}/{name}", data=json.dumps(body), headers=headers) as response:
        assert response.status == 200, await response.text()
        patched: dict[str, Any] = await response.json()
        return patched


class Stream:
    """A raw watch: the events as the wire carries them."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    async def next(self, seconds: float = 10.0) -> dict[str, Any]:
        line = await asyncio.wait_for(self.response.content.readline(), seconds)
        assert line, "the stream ended"
        event: dict[str, Any] = json.loads(line)
        return event

    async def ended(self, seconds: float = 10.0) -> bool:
        return await asyncio.wait_for(self.response.content.readline(), seconds) == b""


async def open_watch(http: aiohttp.ClientSession, **params: str) -> Stream:
    response = await http.get(CMS, params={"watch": "true", **params})
    assert response.status == 200
    return Stream(response)


async def test_watch_without_resource_version_starts_with_the_current_objects(
    http: aiohttp.ClientSession,
) -> None:
    await make(http, "a")
    await make(http, "b")
    stream = await open_watch(http)
    first, second = await stream.next(), await stream.next()
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in (first, second)] == [
        ("ADDED", "a"),
        ("ADDED", "b"),
    ]
    await make(http, "c")
    assert (await stream.next())["object"]["metadata"]["name"] == "c"
    stream.response.close()


async def test_watch_resumes_from_a_resource_version(http: aiohttp.ClientSession) -> None:
    made = await make(http, "a")
    await patch(http, "a", {"data": {"v": "2"}})
    async with http.delete(f"{CMS}/a") as response:
        assert response.status == 200
    stream = await open_watch(http, resourceVersion=made["metadata"]["resourceVersion"])
    events = [await stream.next(), await stream.next()]
    assert [e["type"] for e in events] == ["MODIFIED", "DELETED"]
    assert events[0]["object"]["data"] == {"v": "2"}
    assert int(events[1]["object"]["metadata"]["resourceVersion"]) > int(
        events[0]["object"]["metadata"]["resourceVersion"]
    )
    stream.response.close()


async def test_too_old_resource_version_is_an_expired_error_event(
    http: aiohttp.ClientSession, apiserver: EmbeddedAPIServer
) -> None:
    made = await make(http, "a")
    await patch(http, "a", {"data": {"v": "2"}})
    apiserver.faults.compact()
    stream = await open_watch(http, resourceVersion=made["metadata"]["resourceVersion"])
    error = await stream.next()
    assert error["type"] == "ERROR"
    assert error["object"]["code"] == 410
    assert error["object"]["reason"] == "Expired"
    rv = made["metadata"]["resourceVersion"]
    assert error["object"]["message"] == f"too old resource version: {rv} ({apiserver.store.rv})"
    assert await stream.ended()


async def test_410_then_relist_with_the_real_client(apiserver: EmbeddedAPIServer, kubeconfig: Path) -> None:
    async with api_client(kubeconfig) as api:
        core = client.CoreV1Api(api)
        old = await core.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
        await core.patch_namespaced_config_map("a", "default", {"data": {"x": "1"}})
        apiserver.faults.compact()
        stream = watch.Watch().stream(
            core.list_namespaced_config_map,
            "default",
            resource_version=old.metadata.resource_version,
            timeout_seconds=5,
        )
        with pytest.raises(ApiException) as info:
            async for _ in stream:
                pass
        assert info.value.status == 410
        assert "Expired" in str(info.value.reason)
        relisted = await core.list_namespaced_config_map("default")
        assert relisted.items[0].data == {"x": "1"}
        resumed = watch.Watch().stream(
            core.list_namespaced_config_map,
            "default",
            resource_version=relisted.metadata.resource_version,
            timeout_seconds=5,
        )
        await core.patch_namespaced_config_map("a", "default", {"data": {"x": "2"}})
        async for event in resumed:
            assert (event["type"], event["object"].data) == ("MODIFIED", {"x": "2"})
            break
        await resumed.close()


async def test_bookmarks_carry_the_current_resource_version(http: aiohttp.ClientSession) -> None:
    made = await make(http, "a")
    stream = await open_watch(
        http, resourceVersion=made["metadata"]["resourceVersion"], allowWatchBookmarks="true"
    )
    bookmark = await stream.next()
    assert bookmark["type"] == "BOOKMARK"
    assert bookmark["object"] == {
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": made["metadata"]["resourceVersion"]},
    }
    stream.response.close()


async def test_send_initial_events_ends_with_a_marked_bookmark(http: aiohttp.ClientSession) -> None:
    await make(http, "a")
    params = {
        "sendInitialEvents": "true",
        "resourceVersionMatch": "NotOlderThan",
        "allowWatchBookmarks": "true",
    }
    stream = await open_watch(http, **params)
    assert (await stream.next())["type"] == "ADDED"
    marker = await stream.next()
    assert marker["type"] == "BOOKMARK"
    assert marker["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    stream.response.close()


async def test_timeout_seconds_ends_the_stream(http: aiohttp.ClientSession) -> None:
    stream = await open_watch(http, resourceVersion="0", timeoutSeconds="1")
    assert await stream.ended(seconds=10)


async def test_label_selector_watch_sees_objects_enter_and_leave(http: aiohttp.ClientSession) -> None:
    await make(http, "a", {"tier": "back"})
    stream = await open_watch(http, labelSelector="tier=front")
    await patch(http, "a", {"metadata": {"labels": {"tier": "front"}}})
    entered = await stream.next()
    assert (entered["type"], entered["object"]["metadata"]["name"]) == ("ADDED", "a")
    await patch(http, "a", {"data": {"v": "2"}})
    assert (await stream.next())["type"] == "MODIFIED"
    await patch(http, "a", {"metadata": {"labels": {"tier": "back"}}})
    left = await stream.next()
    assert left["type"] == "DELETED"
    assert left["object"]["metadata"]["labels"] == {"tier": "back"}
    await make(http, "b", {"tier": "back"})
    await make(http, "c", {"tier": "front"})
    assert (await stream.next())["object"]["metadata"]["name"] == "c", "b never matched"
    stream.response.close()


async def test_field_selector_watch_of_one_object_and_legacy_path(http: aiohttp.ClientSession) -> None:
    await make(http, "a")
    await make(http, "b")
    response = await http.get("/api/v1/watch/namespaces/default/configmaps/b")
    stream = Stream(response)
    assert (await stream.next())["object"]["metadata"]["name"] == "b"
    await patch(http, "a", {"data": {"v": "9"}})
    await patch(http, "b", {"data": {"v": "9"}})
    event = await stream.next()
    assert (event["type"], event["object"]["metadata"]["name"]) == ("MODIFIED", "b")
    response.close()


async def test_drop_watches_ends_every_stream(
    http: aiohttp.ClientSession, apiserver: EmbeddedAPIServer
) -> None:
    streams = [await open_watch(http, resourceVersion="0") for _ in range(3)]
    await eventually(lambda: apiserver.hub.count() == 3)
    assert apiserver.faults.drop_watches() == 3
    for stream in streams:
        assert await stream.ended()


def test_a_watcher_too_far_behind_is_closed_instead_of_blocking_writers() -> None:
    watcher = Watcher("/configmaps", None, lambda obj: True, limit=5)
    for rv in range(1, 11):
        obj = {"metadata": {"name": f"cm{rv}", "resourceVersion": str(rv)}}
        watcher.offer(Change("ADDED", "/configmaps", "default", f"cm{rv}", obj, None, rv))
    assert watcher.closed
    assert len(watcher.take(100)) == 5, "what was queued is still sent, then the stream ends"


async def test_too_large_resource_version_is_an_error_event(http: aiohttp.ClientSession) -> None:
    stream = await open_watch(http, resourceVersion="999999")
    error = await stream.next()
    assert error["type"] == "ERROR"
    assert error["object"]["code"] == 504
    assert await stream.ended()


async def test_watch_with_the_real_client_sees_typed_events(kubeconfig: Path) -> None:
    async with api_client(kubeconfig) as api:
        core = client.CoreV1Api(api)
        events = watch.Watch().stream(core.list_namespaced_service, "default", timeout_seconds=5)
        body = {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}}
        await core.create_namespaced_service("default", body)
        async for event in events:
            assert event["type"] == "ADDED"
            assert event["object"].spec.cluster_ip.startswith("10.96.")
            break
        await events.close()
