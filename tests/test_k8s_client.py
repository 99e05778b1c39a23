"""Kube, the real kubernetes_asyncio client over real HTTP, against the embedded API server:
CRUD for built-in and custom kinds, every typed error, patches (the CustomObjectsApi trap),
paging, watches, configuration sources, and the session's trust_env."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path
from typing import Any

import pytest

from lbipam.apiserver.server import EmbeddedAPIServer
from lbipam.k8s.client import Kube, connect
from lbipam.k8s.errors import (
    AlreadyExists,
    BadRequest,
    Conflict,
    Expired,
    Invalid,
    KubeConfigError,
    NotFound,
    PermanentError,
    TemporaryError,
    Unauthorized,
)
from lbipam.k8s.resources import (
    ENDPOINTSLICES,
    LBPOOLS,
    LEASES,
    NAMESPACES,
    NODES,
    SECRETS,
    SERVICES,
    Resource,
)

PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture
async def kube(apiserver: Any, kubeconfig: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Kube]:
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    client = await connect(str(kubeconfig))
    yield client
    await client.close()


def service(name: str, namespace: str = "default", **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": name},
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
        },
    }


def pool(name: str, cidr: str = "192.0.2.0/24") -> dict[str, Any]:
    return {
        "apiVersion": "lbipam.io/v1alpha1",
        "kind": "LoadBalancerIPPool",
        "metadata": {"name": name},
        "spec": {"blocks": [{"cidr": cidr}]},
    }


def secret(name: str, namespace: str = "default", **labels: str) -> dict[str, Any]:
    meta = {"name": name, "namespace": namespace, "labels": labels}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "stringData": {"k": "v"}}


def rv(obj: dict[str, Any]) -> str:
    return str(obj["metadata"]["resourceVersion"])


# -- CRUD ----------------------------------------------------------------------------------------


async def test_service_crud(kube: Kube) -> None:
    created = await kube.create(SERVICES, service("web", team="a"))
    assert created["metadata"]["uid"]
    assert created["spec"]["ipFamilies"] == ["IPv4"]  # server-side defaulting reached us as JSON

    fetched = await kube.get(SERVICES, "web", namespace="default")
    assert fetched["metadata"]["labels"] == {"team": "a"}

    fetched["metadata"]["labels"]["team"] = "b"
    replaced = await kube.replace(SERVICES, fetched)
    assert replaced["metadata"]["labels"]["team"] == "b"
    assert int(rv(replaced)) > int(rv(created))

    patched = await kube.patch(
        SERVICES, "web", {"metadata": {"annotations": {"x": "1"}}}, namespace="default"
    )
    assert patched["metadata"]["annotations"] == {"x": "1"}

    ports = {"spec": {"ports": [{"name": "https", "port": 443, "protocol": "TCP"}]}}
    merged = await kube.patch(SERVICES, "web", ports, namespace="default", patch_type="strategic")
    assert sorted(p["port"] for p in merged["spec"]["ports"]) == [80, 443]  # merged by key, not replaced

    status = {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.7"}]}}}
    written = await kube.patch(SERVICES, "web", status, namespace="default", subresource="status")
    assert [i["ip"] for i in written["status"]["loadBalancer"]["ingress"]] == ["192.0.2.7"]

    await kube.delete(SERVICES, "web", namespace="default")
    with pytest.raises(NotFound):
        await kube.get(SERVICES, "web", namespace="default")


@pytest.mark.parametrize(
    ("resource", "obj"),
    [
        (NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}),
        (
            NODES,
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": "node-a"},
                "spec": {"podCIDR": "10.0.1.0/24"},
            },
        ),
        (SECRETS, secret("creds")),
        (
            ENDPOINTSLICES,
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": "web-abc",
                    "namespace": "default",
                    "labels": {"kubernetes.io/service-name": "web"},
                },
                "addressType": "IPv4",
                "endpoints": [
                    {"addresses": ["10.0.1.5"], "conditions": {"ready": True}, "nodeName": "node-a"}
                ],
                "ports": [{"port": 8080, "protocol": "TCP"}],
            },
        ),
        (
            LEASES,
            {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": "lock", "namespace": "default"},
                "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15},
            },
        ),
    ],
    ids=lambda v: v.kind if isinstance(v, Resource) else "",
)
async def test_crud_for_more_builtin_kinds(kube: Kube, resource: Resource, obj: dict[str, Any]) -> None:
    namespace = "default" if resource.namespaced else None
    name = obj["metadata"]["name"]
    created = await kube.create(resource, obj)
    assert created["kind"] == resource.kind
    patched = await kube.patch(
        resource, name, {"metadata": {"labels": {"touched": "yes"}}}, namespace=namespace
    )
    assert patched["metadata"]["labels"]["touched"] == "yes"
    listing = await kube.list_all(resource, namespace=namespace, label_selector={"touched": "yes"})
    assert [item["metadata"]["name"] for item in listing.items] == [name]
    assert all(item["kind"] == resource.kind for item in listing.items)
    await kube.delete(resource, name, namespace=namespace)
    if resource is NAMESPACES:  # a Namespace may linger, Terminating, until it is finalized
        with contextlib.suppress(NotFound):
            assert (await kube.get(resource, name))["status"]["phase"] == "Terminating"
        return
    with pytest.raises(NotFound):
        await kube.get(resource, name, namespace=namespace)


async def test_custom_object_crud_and_merge_patch(kube: Kube, lbipam_crds: Any) -> None:
    created = await kube.create(LBPOOLS, pool("blue"))
    assert created["metadata"]["generation"] == 1
    # The CustomObjectsApi trap: a dict body must go out as a merge patch, not a JSON patch.
    patched = await kube.patch(LBPOOLS, "blue", {"spec": {"disabled": True}})
    assert patched["spec"]["disabled"] is True
    assert patched["spec"]["blocks"] == [{"cidr": "192.0.2.0/24"}]
    assert patched["metadata"]["generation"] == 2

    ops = [{"op": "replace", "path": "/spec/priority", "value": 5}]
    json_patched = await kube.patch(LBPOOLS, "blue", ops, patch_type="json")
    assert json_patched["spec"]["priority"] == 5

    status = {"status": {"ipv4": {"total": "254", "used": "0", "available": "254"}}}
    with_status = await kube.patch(LBPOOLS, "blue", status, subresource="status")
    assert with_status["status"]["ipv4"]["total"] == "254"
    assert json_patched["metadata"]["generation"] == 3
    assert with_status["metadata"]["generation"] == 3  # status writes do not bump generation

    applied = await kube.patch(
        LBPOOLS, "blue", {**pool("blue"), "spec": {"blocks": [{"cidr": "192.0.2.0/24"}], "priority": 7}},
        patch_type="apply", field_manager="lbipam-test", force=True,
    )  # fmt: skip
    assert applied["spec"]["priority"] == 7

    await kube.delete(LBPOOLS, "blue")
    with pytest.raises(NotFound):
        await kube.get(LBPOOLS, "blue")


async def test_strategic_merge_on_a_custom_object_is_415(kube: Kube, lbipam_crds: Any) -> None:
    await kube.create(LBPOOLS, pool("green"))
    with pytest.raises(PermanentError) as info:
        await kube.patch(LBPOOLS, "green", {"spec": {"priority": 1}}, patch_type="strategic")
    assert info.value.code == 415


@pytest.mark.parametrize(
    ("patch_type", "body", "message"),
    [
        ("json", {"spec": {}}, "list of operations"),
        ("merge", [{"op": "add"}], "is an object"),
        ("apply", {"spec": {}}, "field manager"),
        ("yaml", {}, "unknown patch type"),
    ],
    ids=["json-needs-list", "merge-needs-object", "apply-needs-manager", "unknown-type"],
)
async def test_patch_arguments_are_checked_before_sending(
    kube: Kube, patch_type: Any, body: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        await kube.patch(LBPOOLS, "any", body, patch_type=patch_type)


# -- typed errors --------------------------------------------------------------------------------


async def test_not_found(kube: Kube) -> None:
    with pytest.raises(NotFound) as info:
        await kube.get(SERVICES, "nope", namespace="default")
    assert info.value.code == 404
    assert info.value.status["reason"] == "NotFound"


async def test_already_exists(kube: Kube) -> None:
    await kube.create(SECRETS, secret("twice"))
    with pytest.raises(AlreadyExists) as info:
        await kube.create(SECRETS, secret("twice"))
    assert info.value.code == 409


async def test_conflict_on_a_stale_replace(kube: Kube) -> None:
    first = await kube.create(SECRETS, secret("raced"))
    await kube.patch(SECRETS, "raced", {"metadata": {"labels": {"x": "1"}}}, namespace="default")
    first["metadata"]["labels"] = {"x": "2"}
    with pytest.raises(Conflict) as info:
        await kube.replace(SECRETS, first)
    assert info.value.reason == "Conflict"


async def test_invalid_custom_object_carries_field_causes(kube: Kube, lbipam_crds: Any) -> None:
    bad = pool("broken")
    bad["spec"]["priority"] = "high"
    with pytest.raises(Invalid) as info:
        await kube.create(LBPOOLS, bad)
    assert info.value.code == 422
    assert any("priority" in cause.get("field", "") for cause in info.value.causes), info.value.causes
    with pytest.raises(NotFound):
        await kube.get(LBPOOLS, "broken")


async def test_unsupported_field_selector_is_a_bad_request(kube: Kube) -> None:
    with pytest.raises(BadRequest) as info:
        await kube.list(SERVICES, field_selector="spec.type=LoadBalancer")
    assert info.value.code == 400


async def test_a_refused_connection_is_a_temporary_error(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on: bind, note it, close
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = tmp_path / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: c, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n"
        "users: [{name: u, user: {}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    async with await connect(str(config)) as client:
        with pytest.raises(TemporaryError) as info:
            await client.get(SERVICES, "x", namespace="default")
    assert info.value.reason == "ConnectionError"


# -- lists and watches ---------------------------------------------------------------------------


async def test_list_pages_follow_continue(kube: Kube) -> None:
    for n in range(7):
        await kube.create(SECRETS, secret(f"page-{n}", paged="yes"))
    first = await kube.list(SECRETS, namespace="default", label_selector="paged=yes", limit=3)
    assert len(first["items"]) == 3
    assert first["metadata"]["continue"]
    second = await kube.list(
        SECRETS,
        namespace="default",
        label_selector="paged=yes",
        limit=3,
        continue_=first["metadata"]["continue"],
    )
    assert len(second["items"]) == 3
    listing = await kube.list_all(SECRETS, namespace="default", label_selector="paged=yes", page_size=3)
    assert sorted(i["metadata"]["name"] for i in listing.items) == [f"page-{n}" for n in range(7)]
    assert int(listing.resource_version) >= max(int(rv(i)) for i in listing.items)


async def test_watch_streams_changes_from_a_resource_version(kube: Kube) -> None:
    listing = await kube.list_all(SECRETS, namespace="default")
    await kube.create(SECRETS, secret("watched"))
    await kube.patch(SECRETS, "watched", {"metadata": {"labels": {"v": "2"}}}, namespace="default")
    await kube.delete(SECRETS, "watched", namespace="default")
    seen: list[tuple[str, str]] = []
    stream = kube.watch(
        SECRETS, namespace="default", resource_version=listing.resource_version, timeout_seconds=5
    )
    async with aclosing(stream) as events:
        async for event_type, obj in events:
            if event_type != "BOOKMARK":
                seen.append((event_type, obj["metadata"]["name"]))
            if event_type == "DELETED":
                break
    assert seen == [("ADDED", "watched"), ("MODIFIED", "watched"), ("DELETED", "watched")]


async def test_watch_ends_when_the_server_times_it_out(kube: Kube) -> None:
    listing = await kube.list_all(NAMESPACES)
    events = [
        e async for e in kube.watch(NAMESPACES, resource_version=listing.resource_version, timeout_seconds=1)
    ]
    assert all(event_type == "BOOKMARK" for event_type, _ in events)


async def test_watch_from_a_compacted_resource_version_raises_expired(kube: Kube, apiserver: Any) -> None:
    old = await kube.list_all(SECRETS, namespace="default")
    await kube.create(SECRETS, secret("after"))
    apiserver.faults.compact()
    with pytest.raises(Expired) as info:
        async for _ in kube.watch(SECRETS, namespace="default", resource_version=old.resource_version):
            pass
    assert info.value.code == 410
    assert info.value.message


# -- configuration -------------------------------------------------------------------------------


async def test_the_session_skips_the_environment_without_a_proxy(kube: Kube) -> None:
    assert kube.trust_env is False
    await kube.get(NAMESPACES, "default")  # and it works


async def test_kubeconfig_comes_from_the_environment(
    apiserver: Any, kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    async with await connect() as client:
        assert (await client.get(NAMESPACES, "default"))["metadata"]["name"] == "default"


async def test_a_missing_kubeconfig_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KubeConfigError, match="no such file"):
        await connect(str(tmp_path / "absent"))


async def test_tls_and_a_bearer_token_from_the_kubeconfig(tmp_path: Path) -> None:
    server = EmbeddedAPIServer(port=0)
    await server.start()
    try:
        config = server.write_kubeconfig(tmp_path / "kubeconfig")
        async with await connect(str(config)) as client:
            assert client.host.startswith("https://")
            assert client.trust_env is False  # the swapped session kept the TLS connector
            assert (await client.get(NAMESPACES, "default"))["metadata"]["name"] == "default"
        bad = config.read_text().replace(str(server.token), "wrong-token")
        (tmp_path / "bad").write_text(bad)
        async with await connect(str(tmp_path / "bad")) as client:
            with pytest.raises(Unauthorized):
                await client.get(NAMESPACES, "default")
    finally:
        await server.stop()
