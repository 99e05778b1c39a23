"""Watching the embedded API server while a test attacks it, and checking what the attack left.

- `healthz_meanwhile(server)`: an async context manager that asks `/healthz` every 50 ms on
  connections of its own while the block runs, then asserts that every answer (and a request
  still waiting when the block ends) took less than `HEALTHZ_BOUND` seconds. This is the issue's
  correctness bound on a concurrent probe ("answers within a second"), kept generous: a stalled
  event loop takes many seconds.
- `lists_parse_and_objects_yield(server, collections)`: every list of those collections answers 200
  with JSON, and every object listed can be read, patched (a merge patch of a label) and deleted.

Used by test_apiserver_attacks.py and test_apiserver_fuzz.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

import aiohttp

from lbipam.apiserver.server import EmbeddedAPIServer

HEALTHZ_BOUND = 1.0  # seconds
PROTECTED = {"/api/v1/namespaces": {"default", "kube-system", "kube-public", "kube-node-lease"}}


@contextlib.asynccontextmanager
async def healthz_meanwhile(server: EmbeddedAPIServer) -> AsyncIterator[list[float]]:
    """Probe /healthz while the block runs; yields the list of answer times (seconds)."""
    times: list[float] = []
    asked_at: list[float] = []
    connector = aiohttp.TCPConnector(ssl=server.ssl_context() or False, force_close=True)
    async with aiohttp.ClientSession(server.url, connector=connector) as http:
        answered = asyncio.Event()

        async def probe() -> None:
            while True:
                asked_at.append(time.monotonic())
                async with http.get("/healthz") as response:
                    assert response.status == 200, await response.text()
                    await response.read()
                times.append(time.monotonic() - asked_at.pop())
                answered.set()
                await asyncio.sleep(0.05)

        task = asyncio.create_task(probe())
        try:
            yield times
        finally:
            with contextlib.suppress(TimeoutError):  # a short attack: wait for one answer at least
                await asyncio.wait_for(answered.wait(), HEALTHZ_BOUND)
            waiting = [time.monotonic() - t for t in asked_at]
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    slowest = max([*times, *waiting], default=0.0)
    assert times, "/healthz never answered while the attack ran"
    assert slowest < HEALTHZ_BOUND, f"/healthz took {slowest:.2f}s while the attack ran"


async def lists_parse_and_objects_yield(server: EmbeddedAPIServer, collections: Iterable[str]) -> None:
    """Every list parses; every listed object can be read, patched and deleted."""
    async with server.session() as http:
        for collection in collections:
            items = await _list(http, collection)
            for item in items:
                name = item["metadata"]["name"]
                if name in PROTECTED.get(collection, ()):
                    continue
                path = _object_path(collection, item)
                async with http.get(path) as response:
                    assert response.status == 200, (path, await response.text())
                    json.loads(await response.text())
                patch = {"metadata": {"labels": {"probed": "yes"}}}
                headers = {"Content-Type": "application/merge-patch+json"}
                async with http.patch(path, data=json.dumps(patch), headers=headers) as response:
                    assert response.status == 200, (path, await response.text())
                async with http.delete(path) as response:
                    assert response.status in (200, 202), (path, await response.text())
            await _list(http, collection)


async def _list(http: aiohttp.ClientSession, collection: str) -> list[dict[str, Any]]:
    async with http.get(collection) as response:
        text = await response.text()
        assert response.status == 200, (collection, text)
    items: list[dict[str, Any]] = json.loads(text)["items"]
    return items


def _object_path(collection: str, item: dict[str, Any]) -> str:
    """The object's URL: for an all-namespaces list, through its namespace."""
    name, namespace = item["metadata"]["name"], item["metadata"].get("namespace")
    group_version, _, plural = collection.rpartition("/")
    if namespace and "/namespaces/" not in collection:
        return f"{group_version}/namespaces/{namespace}/{plural}/{name}"
    return f"{collection}/{name}"
