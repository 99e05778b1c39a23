"""The embedded API server through the real kubernetes_asyncio client: CRUD of every kind and the
metadata rules (uid, generation, resourceVersion, conflicts, /status, finalizers, namespaces)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from lbipam.apiserver.server import EmbeddedAPIServer
from tests.helpers import api_client, eventually

NS = "default"


@pytest.fixture
async def api(kubeconfig: Path) -> AsyncIterator[Any]:
    async with api_client(kubeconfig) as api:
        yield api


def status_of(exc: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.body)
    return body


def svc(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"ports": [{"port": 80}], **spec},
    }


async def test_namespaces_a_cluster_starts_with_exist(api: Any) -> None:
    names = {ns.metadata.name for ns in (await client.CoreV1Api(api).list_namespace()).items}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names
    default = await client.CoreV1Api(api).read_namespace("default")
    assert default.status.phase == "Active"
    assert default.metadata.labels["kubernetes.io/metadata.name"] == "default"


async def test_service_crud_sets_server_fields(api: Any) -> None:
    core = client.CoreV1Api(api)
    created = await core.create_namespaced_service(NS, svc("web"))
    assert created.metadata.uid
    assert created.metadata.generation == 1
    assert int(created.metadata.resource_version) > 0
    assert created.metadata.creation_timestamp is not None
    read = await core.read_namespaced_service("web", NS)
    assert read.metadata.uid == created.metadata.uid
    read.metadata.labels["tier"] = "front"
    updated = await core.replace_namespaced_service("web", NS, read)
    assert updated.metadata.labels == {"app": "web", "tier": "front"}
    assert updated.metadata.generation == 1, "a label change is no spec change"
    assert int(updated.metadata.resource_version) > int(created.metadata.resource_version)
    await core.delete_namespaced_service("web", NS)
    with pytest.raises(ApiException) as info:
        await core.read_namespaced_service("web", NS)
    assert info.value.status == 404
    assert status_of(info.value)["details"] == {"name": "web", "kind": "services"}
    assert status_of(info.value)["message"] == 'services "web" not found'


async def test_generation_bumps_on_spec_changes_only(api: Any) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespaced_service(NS, svc("gen"))
    patched = await core.patch_namespaced_service("gen", NS, {"metadata": {"annotations": {"a": "b"}}})
    assert patched.metadata.generation == 1
    patched = await core.patch_namespaced_service("gen", NS, {"spec": {"selector": {"app": "gen"}}})
    assert patched.metadata.generation == 2
    status = {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}}
    await core.patch_namespaced_service("gen", NS, {"spec": {"type": "LoadBalancer"}})
    after_status = await core.patch_namespaced_service_status("gen", NS, status)
    assert after_status.metadata.generation == 3, "the type change bumped it, the status write did not"


async def test_stale_update_is_409_and_create_of_existing_is_409(api: Any) -> None:
    core = client.CoreV1Api(api)
    first = await core.create_namespaced_service(NS, svc("race"))
    await core.patch_namespaced_service("race", NS, {"metadata": {"labels": {"x": "1"}}})
    first.metadata.labels["y"] = "2"
    with pytest.raises(ApiException) as info:
        await core.replace_namespaced_service("race", NS, first)
    assert info.value.status == 409
    body = status_of(info.value)
    assert body["reason"] == "Conflict"
    assert "the object has been modified; please apply your changes to the latest version" in body["message"]
    with pytest.raises(ApiException) as info:
        await core.create_namespaced_service(NS, svc("race"))
    assert (info.value.status, status_of(info.value)["reason"]) == (409, "AlreadyExists")


async def test_patch_carrying_a_stale_resource_version_is_409(api: Any) -> None:
    core = client.CoreV1Api(api)
    created = await core.create_namespaced_service(NS, svc("rvpatch"))
    await core.patch_namespaced_service("rvpatch", NS, {"metadata": {"labels": {"x": "1"}}})
    stale = {"metadata": {"resourceVersion": created.metadata.resource_version, "labels": {"x": "2"}}}
    with pytest.raises(ApiException) as info:
        await core.patch_namespaced_service("rvpatch", NS, stale)
    assert info.value.status == 409
    assert (await core.read_namespaced_service("rvpatch", NS)).metadata.labels["x"] == "1"


async def test_an_update_that_changes_nothing_writes_nothing(api: Any) -> None:
    core = client.CoreV1Api(api)
    created = await core.create_namespaced_service(NS, svc("same"))
    again = await core.patch_namespaced_service("same", NS, {"metadata": {"labels": {"app": "same"}}})
    assert again.metadata.resource_version == created.metadata.resource_version


async def test_main_resource_ignores_status_and_status_takes_only_status(api: Any) -> None:
    core = client.CoreV1Api(api)
    body = svc("st", type="LoadBalancer")
    body["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.9"}]}}
    created = await core.create_namespaced_service(NS, body)
    assert not created.status.load_balancer.ingress, "create drops .status of a kind with /status"
    patch = {
        "spec": {"selector": {"app": "a"}},
        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}},
    }
    after = await core.patch_namespaced_service("st", NS, patch)
    assert after.spec.selector == {"app": "a"}
    assert not after.status.load_balancer.ingress
    status_patch = {
        "metadata": {"labels": {"sneaky": "yes"}},
        "spec": {"selector": {"app": "b"}},
        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.11"}]}},
    }
    after = await core.patch_namespaced_service_status("st", NS, status_patch)
    assert after.status.load_balancer.ingress[0].ip == "192.0.2.11"
    assert after.spec.selector == {"app": "a"}
    assert "sneaky" not in after.metadata.labels


async def test_nodes_may_be_created_with_status(api: Any) -> None:
    core = client.CoreV1Api(api)
    node = {
        "metadata": {"name": "n1"},
        "status": {"addresses": [{"type": "InternalIP", "address": "192.0.2.5"}]},
    }
    created = await core.create_node(node)
    assert created.status.addresses[0].address == "192.0.2.5"
    await core.patch_node("n1", {"status": {"addresses": []}, "metadata": {"labels": {"a": "b"}}})
    read = await core.read_node("n1")
    assert read.status.addresses[0].address == "192.0.2.5"
    assert read.metadata.labels == {"a": "b"}
    await core.delete_node("n1")


async def test_secrets_configmaps_and_base64(api: Any) -> None:
    core = client.CoreV1Api(api)
    secret = {"metadata": {"name": "s"}, "stringData": {"password": "hunter2"}}
    created = await core.create_namespaced_secret(NS, secret)
    assert created.data == {"password": "aHVudGVyMg=="}
    assert created.type == "Opaque"
    cm = await core.create_namespaced_config_map(NS, {"metadata": {"name": "c"}, "data": {"k": "v"}})
    assert cm.data == {"k": "v"}
    await core.delete_namespaced_secret("s", NS)
    await core.delete_namespaced_config_map("c", NS)
    assert (await core.list_namespaced_secret(NS)).items == []


async def test_leases(api: Any) -> None:
    coord = client.CoordinationV1Api(api)
    lease = {
        "metadata": {"name": "lbipam-controller"},
        "spec": {
            "holderIdentity": "a",
            "leaseDurationSeconds": 15,
            "renewTime": "2024-01-01T00:00:00.5+00:00",
        },
    }
    created = await coord.create_namespaced_lease("kube-system", lease)
    assert created.spec.holder_identity == "a"
    raw = await coord.read_namespaced_lease("lbipam-controller", "kube-system", _preload_content=False)
    assert json.loads(await raw.read())["spec"]["renewTime"] == "2024-01-01T00:00:00.500000Z"
    created.spec.holder_identity = "b"
    replaced = await coord.replace_namespaced_lease("lbipam-controller", "kube-system", created)
    assert replaced.spec.holder_identity == "b"
    await coord.delete_namespaced_lease("lbipam-controller", "kube-system")


async def test_endpointslices(api: Any) -> None:
    disco = client.DiscoveryV1Api(api)
    slice_ = {
        "metadata": {"name": "web-abc", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.0.0.5"], "conditions": {"ready": True}, "nodeName": "n1"}],
        "ports": [{"port": 8080}],
    }
    created = await disco.create_namespaced_endpoint_slice(NS, slice_)
    assert created.ports[0].protocol == "TCP"
    assert created.metadata.generation == 1
    listed = await disco.list_namespaced_endpoint_slice(NS, label_selector="kubernetes.io/service-name=web")
    assert [s.metadata.name for s in listed.items] == ["web-abc"]
    await disco.delete_namespaced_endpoint_slice("web-abc", NS)


async def test_namespaced_create_needs_the_namespace(api: Any) -> None:
    with pytest.raises(ApiException) as info:
        await client.CoreV1Api(api).create_namespaced_service("nowhere", svc("web"))
    assert info.value.status == 404
    assert status_of(info.value)["message"] == 'namespaces "nowhere" not found'


async def test_deleting_a_namespace_deletes_its_objects(api: Any) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespace({"metadata": {"name": "team"}})
    await core.create_namespaced_service("team", svc("web"))
    deleted = await core.delete_namespace("team", _preload_content=False)
    assert json.loads(await deleted.read())["status"]["phase"] == "Terminating"

    async def gone() -> bool:
        names = {ns.metadata.name for ns in (await core.list_namespace()).items}
        return "team" not in names

    await eventually(gone)
    assert (await core.list_service_for_all_namespaces()).items == []
    with pytest.raises(ApiException) as info:
        await core.delete_namespace("default")
    assert info.value.status == 403


async def test_finalizers_hold_deletion_until_removed(api: Any) -> None:
    core = client.CoreV1Api(api)
    body = {"metadata": {"name": "held", "finalizers": ["example.com/keep"]}, "data": {"a": "b"}}
    await core.create_namespaced_config_map(NS, body)
    await core.delete_namespaced_config_map("held", NS)
    held = await core.read_namespaced_config_map("held", NS)
    assert held.metadata.deletion_timestamp is not None
    with pytest.raises(ApiException) as info:
        await core.patch_namespaced_config_map(
            "held", NS, {"metadata": {"finalizers": ["a.io/x", "example.com/keep"]}}
        )
    assert info.value.status == 422
    await core.patch_namespaced_config_map("held", NS, {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as info:
        await core.read_namespaced_config_map("held", NS)
    assert info.value.status == 404


async def test_generate_name_and_dry_run(api: Any) -> None:
    core = client.CoreV1Api(api)
    made = await core.create_namespaced_config_map(NS, {"metadata": {"generateName": "cm-"}})
    assert made.metadata.name.startswith("cm-")
    assert len(made.metadata.name) == 8
    dry = await core.create_namespaced_config_map(NS, {"metadata": {"name": "dry"}}, dry_run="All")
    assert dry.metadata.name == "dry"
    names = [c.metadata.name for c in (await core.list_namespaced_config_map(NS)).items]
    assert names == [made.metadata.name]


async def test_delete_preconditions(api: Any) -> None:
    core = client.CoreV1Api(api)
    made = await core.create_namespaced_config_map(NS, {"metadata": {"name": "pre"}})
    wrong = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid="not-the-uid"))
    with pytest.raises(ApiException) as info:
        await core.delete_namespaced_config_map("pre", NS, body=wrong)
    assert info.value.status == 409
    right = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=made.metadata.uid))
    await core.delete_namespaced_config_map("pre", NS, body=right)


async def test_delete_collection_with_a_selector(api: Any) -> None:
    core = client.CoreV1Api(api)
    for name, team in (("a", "x"), ("b", "x"), ("c", "y")):
        await core.create_namespaced_config_map(NS, {"metadata": {"name": name, "labels": {"team": team}}})
    await core.delete_collection_namespaced_config_map(NS, label_selector="team=x")
    names = [c.metadata.name for c in (await core.list_namespaced_config_map(NS)).items]
    assert names == ["c"]


async def test_resource_versions_are_global_and_increasing(api: Any, apiserver: EmbeddedAPIServer) -> None:
    core = client.CoreV1Api(api)
    seen = []
    for index in range(5):
        made = await core.create_namespaced_config_map(NS, {"metadata": {"name": f"rv{index}"}})
        seen.append(int(made.metadata.resource_version))
    assert seen == sorted(seen)
    assert len(set(seen)) == 5
    listed = await core.list_namespaced_config_map(NS)
    assert int(listed.metadata.resource_version) == seen[-1] == apiserver.store.rv


async def test_a_write_that_changes_only_managed_fields_is_kept(api: Any) -> None:
    core = client.CoreV1Api(api)
    made = await core.create_namespaced_config_map(NS, {"metadata": {"name": "mf"}, "data": {"a": "b"}})
    entry = {"manager": "someone", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1"}
    entry["fieldsV1"] = {"f:data": {"f:a": {}}}
    patch = [{"op": "replace", "path": "/metadata/managedFields", "value": [entry]}]
    after = await core.patch_namespaced_config_map(
        "mf", NS, patch, _content_type="application/json-patch+json"
    )
    assert int(after.metadata.resource_version) > int(made.metadata.resource_version)
    assert [e.manager for e in after.metadata.managed_fields] == ["someone"]
    fresh = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="mf"), data={"a": "b"})
    same = await core.replace_namespaced_config_map("mf", NS, fresh)
    assert same.metadata.resource_version == after.metadata.resource_version, (
        "no managedFields: kept as stored"
    )
