"""Informer against the embedded API server: the cache converges, handlers see every change,
cached objects carry no managedFields, dropped watches resume without a relist, compaction forces
a relist that synthesizes DELETED, and injected server errors only delay it."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from lbipam.apiserver.server import EmbeddedAPIServer
from lbipam.k8s.client import Kube, connect
from lbipam.k8s.errors import Backoff
from lbipam.k8s.informer import Informer
from lbipam.k8s.resources import LBPOOLS, NAMESPACES, SECRETS
from tests.helpers import eventually


@pytest.fixture
async def kube(apiserver: Any, kubeconfig: Path) -> AsyncIterator[Kube]:
    client = await connect(str(kubeconfig))
    yield client
    await client.close()


class Recorder:
    """A handler keeping every (type, name, old name or None) it is called with."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any] | None]] = []

    def __call__(self, event_type: str, new: dict[str, Any], old: dict[str, Any] | None) -> None:
        self.events.append((event_type, new["metadata"]["name"], old))

    def of(self, name: str) -> list[str]:
        return [t for t, n, _ in self.events if n == name]


async def running(informer: Informer) -> asyncio.Task[None]:
    task = asyncio.create_task(informer.run(), name=f"informer-{informer.resource.plural}")
    await asyncio.wait_for(informer.synced.wait(), timeout=10)
    return task


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def secret(name: str, **labels: str) -> dict[str, Any]:
    meta = {"name": name, "namespace": "default", "labels": labels}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "stringData": {"k": name}}


async def server_state(kube: Kube) -> dict[str, str]:
    listing = await kube.list_all(SECRETS, namespace="default")
    return {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in listing.items}


def cache_state(informer: Informer) -> dict[str, str]:
    return {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in informer.list()}


async def test_the_cache_converges_and_handlers_see_every_change(kube: Kube) -> None:
    for n in range(5):
        await kube.create(SECRETS, secret(f"s{n}"))
    informer = Informer(kube, SECRETS, namespace="default", page_size=2)
    seen = Recorder()
    informer.add_handler(seen)
    task = await running(informer)
    try:
        assert sorted(n for t, n, _ in seen.events if t == "ADDED") == [f"s{n}" for n in range(5)]
        await kube.create(SECRETS, secret("late"))
        await kube.patch(SECRETS, "s1", {"metadata": {"labels": {"v": "2"}}}, namespace="default")
        await kube.delete(SECRETS, "s2", namespace="default")
        expected = await server_state(kube)
        await eventually(lambda: cache_state(informer) == expected, timeout=10)
        assert seen.of("late") == ["ADDED"]
        assert seen.of("s1") == ["ADDED", "MODIFIED"]
        assert seen.of("s2") == ["ADDED", "DELETED"]
        modified = next(old for t, n, old in seen.events if (t, n) == ("MODIFIED", "s1"))
        assert modified is not None
        assert "v" not in (modified["metadata"].get("labels") or {})
        current = informer.get("default", "s1")
        assert current is not None
        assert current["metadata"]["labels"] == {"v": "2"}
        assert informer.get("default", "s2") is None
        assert informer.lists == 1
    finally:
        await stop(task)


async def test_cached_objects_carry_no_managed_fields(kube: Kube) -> None:
    """The server keeps them (a merge patch from the cache leaves them be); the cache drops them,
    from the list and from the watch alike."""
    await kube.create(SECRETS, secret("listed"))
    informer = Informer(kube, SECRETS, namespace="default")
    seen: list[dict[str, Any]] = []
    informer.add_handler(lambda event_type, new, old: seen.append(new))
    task = await running(informer)
    try:
        await kube.create(SECRETS, secret("watched"))
        await kube.patch(SECRETS, "listed", {"metadata": {"labels": {"v": "2"}}}, namespace="default")
        await eventually(lambda: len(seen) == 3, timeout=10)
        assert all("managedFields" not in obj["metadata"] for obj in seen + informer.list())
        on_server = await kube.get(SECRETS, "listed", namespace="default")
        assert on_server["metadata"]["managedFields"]
    finally:
        await stop(task)


async def test_a_label_selector_limits_the_cache(kube: Kube) -> None:
    await kube.create(SECRETS, secret("in", team="a"))
    await kube.create(SECRETS, secret("out", team="b"))
    informer = Informer(kube, SECRETS, namespace="default", label_selector={"team": "a"})
    seen = Recorder()
    informer.add_handler(seen)
    task = await running(informer)
    try:
        assert cache_state(informer).keys() == {"in"}
        await kube.patch(SECRETS, "in", {"metadata": {"labels": {"team": "b"}}}, namespace="default")
        await eventually(lambda: len(informer) == 0, timeout=10)
        assert seen.of("in") == ["ADDED", "DELETED"]  # leaving the selector is a deletion
    finally:
        await stop(task)


async def test_custom_objects_are_cached_too(kube: Kube, lbipam_crds: Any) -> None:
    informer = Informer(kube, LBPOOLS)
    task = await running(informer)
    try:
        body = {
            "apiVersion": "lbipam.io/v1alpha1",
            "kind": "LoadBalancerIPPool",
            "metadata": {"name": "blue"},
        }
        await kube.create(LBPOOLS, {**body, "spec": {"blocks": [{"cidr": "198.51.100.0/24"}]}})
        await eventually(lambda: informer.get(None, "blue") is not None, timeout=10)
    finally:
        await stop(task)


async def test_a_dropped_watch_resumes_without_a_relist(kube: Kube, apiserver: Any) -> None:
    await kube.create(SECRETS, secret("before"))
    informer = Informer(kube, SECRETS, namespace="default")
    seen = Recorder()
    informer.add_handler(seen)
    task = await running(informer)
    try:
        watches = informer.watches
        await eventually(lambda: apiserver.faults.drop_watches() >= 1, timeout=10)  # once it is open
        await kube.create(SECRETS, secret("after-drop"))
        await eventually(lambda: informer.get("default", "after-drop") is not None, timeout=10)
        assert informer.watches > watches, "the stream was reopened"
        assert informer.lists == 1, "resumed from the last resourceVersion, no relist"
        assert seen.of("before") == ["ADDED"], "nothing replayed twice"
        assert seen.of("after-drop") == ["ADDED"]
    finally:
        await stop(task)


@pytest.fixture
async def quiet_kube(tmp_path: Path) -> AsyncIterator[tuple[Kube, EmbeddedAPIServer]]:
    """A server that sends no BOOKMARKs: a bookmark read after the compaction would move the
    informer's resourceVersion past the cut and hide the 410 this test is about."""
    server = EmbeddedAPIServer(db=":memory:", port=0, bookmark_interval=3600)
    await server.start()
    client = await connect(str(server.write_kubeconfig(tmp_path / "quiet-kubeconfig")))
    try:
        yield client, server
    finally:
        await client.close()
        await server.stop()


async def test_compaction_then_a_drop_forces_a_relist(quiet_kube: tuple[Kube, EmbeddedAPIServer]) -> None:
    kube, apiserver = quiet_kube
    await kube.create(SECRETS, secret("kept"))
    informer = Informer(kube, SECRETS, namespace="default")
    task = await running(informer)
    try:
        # Another kind's write moves the server's resourceVersion past the informer's; compacting
        # now leaves the informer's resourceVersion out of the history, so its resumed watch
        # must get 410 and relist.
        ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "elsewhere"}}
        created = await kube.create(NAMESPACES, ns)
        assert int(informer.resource_version) < int(created["metadata"]["resourceVersion"])
        apiserver.faults.compact()
        apiserver.faults.drop_watches()
        await eventually(lambda: informer.lists == 2, timeout=10)
        await kube.create(SECRETS, secret("new"))
        expected = await server_state(kube)
        await eventually(lambda: cache_state(informer) == expected, timeout=10)
    finally:
        await stop(task)


async def test_a_relist_synthesizes_deleted_for_objects_gone_meanwhile(kube: Kube, apiserver: Any) -> None:
    for name in ("stays", "goes", "changes"):
        await kube.create(SECRETS, secret(name))
    informer = Informer(kube, SECRETS, namespace="default")
    seen = Recorder()
    informer.add_handler(seen)
    await stop(await running(informer))  # the informer is away while the world changes
    last_known = informer.get("default", "goes")
    await kube.delete(SECRETS, "goes", namespace="default")
    await kube.patch(SECRETS, "changes", {"metadata": {"labels": {"v": "2"}}}, namespace="default")
    await kube.create(SECRETS, secret("arrives"))
    apiserver.faults.compact()
    task = asyncio.create_task(informer.run())  # resumes from its old resourceVersion: 410
    try:
        await eventually(lambda: informer.lists == 2, timeout=10)
        assert informer.get("default", "goes") is None
        deleted = [(n, old) for t, n, old in seen.events if t == "DELETED"]
        assert deleted == [("goes", last_known)]
        assert seen.of("changes") == ["ADDED", "MODIFIED"]
        assert seen.of("arrives") == ["ADDED"]
        assert seen.of("stays") == ["ADDED"]
    finally:
        await stop(task)


class FlakyProxy:
    """A real HTTP reverse proxy in front of the API server that fails the next N list requests.

    The embedded server injects faults on writes only; this puts 500s and 429s on the informer's
    lists, with the Status body the real server would send, and streams everything else through.
    """

    def __init__(self, upstream: EmbeddedAPIServer, fail_lists: int, code: int) -> None:
        self.upstream = upstream  # reached as its kubeconfig would: HTTPS, its CA, its token
        self.fail_lists = fail_lists
        self.code = code
        self.failed = 0
        self.streams: set[asyncio.Task[Any]] = set()
        self.url = ""

    async def start(self) -> None:
        self.session = self.upstream.session()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(self.runner, sock).start()
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"

    async def close(self) -> None:
        for task in list(self.streams):  # a watch being relayed would hold the shutdown up
            task.cancel()
        await self.session.close()
        await self.runner.cleanup()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.method == "GET" and "watch" not in request.query and self.failed < self.fail_lists:
            self.failed += 1
            reason = {429: "TooManyRequests", 500: "InternalError"}[self.code]
            status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": self.code}
            status.update(reason=reason, message="injected by the test proxy")
            return web.json_response(status, status=self.code)
        task = asyncio.current_task()
        assert task is not None
        self.streams.add(task)
        task.add_done_callback(self.streams.discard)
        keep = ("content-type", "accept", "authorization")
        headers = {k: v for k, v in request.headers.items() if k.lower() in keep}
        async with self.session.request(
            request.method, request.path_qs, headers=headers, data=await request.read()
        ) as upstream:
            response = web.StreamResponse(status=upstream.status)
            response.content_type = upstream.content_type
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response


def kubeconfig_for(url: str, path: Path) -> Path:
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: c, cluster: {{server: '{url}'}}}}]\n"
        "users: [{name: u, user: {}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    return path


@pytest.mark.parametrize("code", [500, 429])
async def test_injected_list_errors_only_delay_the_sync(
    kube: Kube, apiserver: Any, tmp_path: Path, code: int
) -> None:
    await kube.create(SECRETS, secret("x"))
    proxy = FlakyProxy(apiserver, fail_lists=3, code=code)
    await proxy.start()
    try:
        async with await connect(str(kubeconfig_for(proxy.url, tmp_path / "proxied"))) as proxied:
            informer = Informer(proxied, SECRETS, namespace="default", backoff=Backoff(base=0.01, cap=0.05))
            task = asyncio.create_task(informer.run())
            try:
                await asyncio.wait_for(informer.synced.wait(), timeout=10)
                assert proxy.failed == 3
                assert cache_state(informer).keys() == {"x"}
                await kube.create(SECRETS, secret("y"))  # and the watch behind the proxy works
                await eventually(lambda: informer.get("default", "y") is not None, timeout=10)
            finally:
                await stop(task)
    finally:
        await proxy.close()


async def test_a_failing_handler_does_not_stop_the_informer(kube: Kube) -> None:
    informer = Informer(kube, SECRETS, namespace="default")
    seen = Recorder()

    def broken(event_type: str, new: dict[str, Any], old: dict[str, Any] | None) -> None:
        raise RuntimeError("handler bug")

    informer.add_handler(broken)
    informer.add_handler(seen)
    task = await running(informer)
    try:
        await kube.create(SECRETS, secret("one"))
        await kube.create(SECRETS, secret("two"))
        await eventually(lambda: seen.of("two") == ["ADDED"], timeout=10)
        assert seen.of("one") == ["ADDED"]
        assert not task.done()
    finally:
        await stop(task)
