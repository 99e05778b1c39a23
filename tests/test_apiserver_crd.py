"""CustomResourceDefinitions on the embedded API server: registration and removal of kinds, schema
validation with Kubernetes field causes (the bad manifests of tests/data), defaulting, pruning."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from lbipam.apiserver.server import EmbeddedAPIServer
from tests.conftest import CRD_PATH, crd_documents
from tests.helpers import api_client, eventually

BAD = sorted((Path(__file__).parent / "data" / "bad-manifests").glob("*.yaml"))
PLURALS = {
    "LoadBalancerIPPool": "loadbalancerippools",
    "PodCIDRPool": "podcidrpools",
    "BGPPeer": "bgppeers",
    "BGPAdvertisement": "bgpadvertisements",
    "BGPNodeState": "bgpnodestates",
}
FIELD = re.compile(r"(spec|status|metadata)(\.[A-Za-z0-9]+|\[\d+\])*(?=[:\s]|$)")
MERGE = "application/merge-patch+json"
POOLS = "/apis/lbipam.io/v1alpha1/loadbalancerippools"


@pytest.fixture
async def http(apiserver: EmbeddedAPIServer) -> AsyncIterator[aiohttp.ClientSession]:
    async with apiserver.session() as session:
        yield session


def pool(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "lbipam.io/v1alpha1",
        "kind": "LoadBalancerIPPool",
        "metadata": {"name": name},
        "spec": {"blocks": [{"cidr": "192.0.2.0/24"}], **spec},
    }


async def test_registering_a_crd_serves_its_kind_and_deleting_removes_it(kubeconfig: Path) -> None:
    (crd,) = [d for d in crd_documents() if d["spec"]["names"]["kind"] == "LoadBalancerIPPool"]
    async with api_client(kubeconfig) as api:
        ext, custom = client.ApiextensionsV1Api(api), client.CustomObjectsApi(api)
        with pytest.raises(ApiException) as info:
            await custom.list_cluster_custom_object("lbipam.io", "v1alpha1", "loadbalancerippools")
        assert info.value.status == 404
        await ext.create_custom_resource_definition(crd)
        groups = await client.ApisApi(api).get_api_versions()
        assert "lbipam.io" in [g.name for g in groups.groups]
        resources = await client.CustomObjectsApi(api).get_api_resources("lbipam.io", "v1alpha1")
        assert {"loadbalancerippools", "loadbalancerippools/status"} <= {r.name for r in resources.resources}
        await custom.create_cluster_custom_object("lbipam.io", "v1alpha1", "loadbalancerippools", pool("p1"))
        await ext.delete_custom_resource_definition(crd["metadata"]["name"])
        with pytest.raises(ApiException) as info:
            await custom.get_cluster_custom_object("lbipam.io", "v1alpha1", "loadbalancerippools", "p1")
        assert info.value.status == 404
        groups = await client.ApisApi(api).get_api_versions()
        assert "lbipam.io" not in [g.name for g in groups.groups]
        await ext.create_custom_resource_definition(crd)
        listed = await custom.list_cluster_custom_object("lbipam.io", "v1alpha1", "loadbalancerippools")
        assert listed["items"] == [], "the objects went with the CRD"


async def test_crds_are_established_with_accepted_names(
    http: aiohttp.ClientSession, lbipam_crds: list[str]
) -> None:
    async with http.get(f"{CRD_PATH}/loadbalancerippools.lbipam.io") as response:
        crd = await response.json()
    conditions = {c["type"]: c for c in crd["status"]["conditions"]}
    assert conditions["Established"]["status"] == "True"
    assert conditions["NamesAccepted"]["reason"] == "NoConflicts"
    assert crd["status"]["acceptedNames"]["shortNames"] == ["lbpool"]
    assert crd["status"]["storedVersions"] == ["v1alpha1"]


def bad_manifest_cases() -> list[Any]:
    cases = []
    for path in BAD:
        text = path.read_text()
        expects = [
            line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("# expect:")
        ]
        rejects = "# schema: rejects" in text
        cases.append(pytest.param(yaml.safe_load(text), rejects, expects, id=path.stem))
    return cases


@pytest.mark.parametrize(("doc", "rejects", "expects"), bad_manifest_cases())
async def test_bad_manifests_are_rejected_with_field_causes(
    http: aiohttp.ClientSession,
    lbipam_crds: list[str],
    doc: dict[str, Any],
    rejects: bool,
    expects: list[str],
) -> None:
    group_version = doc["apiVersion"]
    path = f"/apis/{group_version}/{PLURALS[doc['kind']]}"
    async with http.post(path, json=doc) as response:
        body = await response.json()
    if not rejects:
        assert response.status == 201, body  # the model rejects it; the schema cannot
        return
    assert response.status == 422, body
    assert body["reason"] == "Invalid"
    fields = [c["field"] for c in body["details"]["causes"]]
    paths = [m.group(0) for m in (FIELD.match(e) for e in expects) if m]
    assert paths, "every rejected manifest names the field at fault"
    for expected in paths:
        assert any(f == expected or f.startswith(expected) for f in fields), (expected, fields)
    async with http.get(path) as response:
        assert (await response.json())["items"] == [], "nothing was written"


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        pytest.param(
            {"blocks": [{"cidr": "192.0.2.0/33"}]},
            "spec.blocks[0].cidr",
            'Invalid value: "192.0.2.0/33": spec.blocks[0].cidr in body must be of type cidr: "192.0.2.0/33"',
            id="malformed-cidr",
        ),
        pytest.param(
            {"blocks": []},
            "spec.blocks",
            "Invalid value: 0: spec.blocks in body should have at least 1 items",
            id="no-blocks",
        ),
        pytest.param(
            {"blocks": [{"cidr": "192.0.2.0/24"}], "priority": "high"},
            "spec.priority",
            'Invalid value: "string": spec.priority in body must be of type integer: "string"',
            id="wrong-type",
        ),
    ],
)
async def test_schema_causes_read_like_the_real_server(
    http: aiohttp.ClientSession, lbipam_crds: list[str], spec: dict[str, Any], field: str, message: str
) -> None:
    body = pool("bad")
    body["spec"] = spec
    async with http.post(POOLS, json=body) as response:
        status = await response.json()
    assert response.status == 422
    assert {"field": field, "message": message, "reason": "FieldValueInvalid"} in status["details"]["causes"]
    assert status["details"]["kind"] == "LoadBalancerIPPool"
    assert status["details"]["group"] == "lbipam.io"
    assert status["message"].startswith('LoadBalancerIPPool.lbipam.io "bad" is invalid: ')


async def test_community_with_a_trailing_newline_is_rejected_as_go_would(
    http: aiohttp.ClientSession, lbipam_crds: list[str]
) -> None:
    adv = {"apiVersion": "lbipam.io/v1alpha1", "kind": "BGPAdvertisement", "metadata": {"name": "a"}}
    adv["spec"] = {"communities": ["64512:100\n"]}
    async with http.post("/apis/lbipam.io/v1alpha1/bgpadvertisements", json=adv) as response:
        status = await response.json()
    assert response.status == 422
    messages = [c["message"] for c in status["details"]["causes"] if c["field"] == "spec.communities[0]"]
    assert any(
        m.startswith('Invalid value: "64512:100\\n": spec.communities[0] in body should match')
        for m in messages
    )


async def test_asn_zero_is_rejected(http: aiohttp.ClientSession, lbipam_crds: list[str]) -> None:
    peer = {"apiVersion": "lbipam.io/v1alpha1", "kind": "BGPPeer", "metadata": {"name": "p"}}
    peer["spec"] = {"peerAddress": "192.0.2.1", "peerASN": 0, "localASN": 64513}
    async with http.post("/apis/lbipam.io/v1alpha1/bgppeers", json=peer) as response:
        status = await response.json()
    assert response.status == 422
    cause = status["details"]["causes"][0]
    assert cause["field"] == "spec.peerASN"
    assert "should be greater than or equal to 1" in cause["message"]


async def test_defaults_are_applied_and_unknown_fields_pruned(
    http: aiohttp.ClientSession, lbipam_crds: list[str]
) -> None:
    body = pool("p")
    body["spec"]["autoAsign"] = False
    async with http.post(POOLS, json=body) as response:
        made = await response.json()
        warnings = response.headers.getall("Warning", [])
    assert response.status == 201
    assert made["spec"]["autoAssign"] is True
    assert made["spec"]["allowFirstLastIPs"] is False
    assert "autoAsign" not in made["spec"]
    assert warnings == ['299 - "unknown field \\"spec.autoAsign\\""']
    strict = pool("q")
    strict["spec"]["autoAsign"] = False
    async with http.post(POOLS, json=strict, params={"fieldValidation": "Strict"}) as response:
        assert response.status == 400
        assert (await response.json())["message"] == 'strict decoding error: unknown field "spec.autoAsign"'


async def test_custom_objects_status_subresource_and_generation(
    kubeconfig: Path, lbipam_crds: list[str]
) -> None:
    async with api_client(kubeconfig) as api:
        custom = client.CustomObjectsApi(api)
        args = ("lbipam.io", "v1alpha1", "loadbalancerippools")
        body = pool("p")
        body["status"] = {"observedGeneration": 7}
        made = await custom.create_cluster_custom_object(*args, body)
        assert "status" not in made
        assert made["metadata"]["generation"] == 1
        status = {
            "status": {"observedGeneration": 1, "ipv4": {"total": "254", "used": "0", "available": "254"}}
        }
        after = await custom.patch_cluster_custom_object_status(*args, "p", status, _content_type=MERGE)
        assert after["status"]["ipv4"]["total"] == "254"
        assert after["metadata"]["generation"] == 1
        after = await custom.patch_cluster_custom_object(
            *args, "p", {"spec": {"priority": 5}}, _content_type=MERGE
        )
        assert after["metadata"]["generation"] == 2
        assert after["status"]["ipv4"]["total"] == "254", "the main resource keeps the status"
        bad_status = {"status": {"ipv4": {"total": "-1"}}}
        with pytest.raises(ApiException) as info:
            await custom.patch_cluster_custom_object_status(*args, "p", bad_status, _content_type=MERGE)
        assert info.value.status == 422
        assert json.loads(info.value.body)["details"]["causes"][0]["field"] == "status.ipv4.total"


async def test_put_of_a_custom_object_needs_a_resource_version(
    http: aiohttp.ClientSession, lbipam_crds: list[str]
) -> None:
    async with http.post(POOLS, json=pool("p")) as response:
        assert response.status == 201
    async with http.put(f"{POOLS}/p", json=pool("p")) as response:
        status = await response.json()
    assert response.status == 422
    assert status["details"]["causes"][0]["field"] == "metadata.resourceVersion"


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        pytest.param(
            lambda c: c["spec"]["versions"][0].update(storage=False), "spec.versions", id="no-storage-version"
        ),
        pytest.param(lambda c: c["spec"].update(group="nodots"), "spec.group", id="group-without-dot"),
        pytest.param(
            lambda c: c["metadata"].update(name="wrong.lbipam.io"), "metadata.name", id="wrong-name"
        ),
        pytest.param(lambda c: c["spec"].update(scope="Global"), "spec.scope", id="bad-scope"),
        pytest.param(
            lambda c: c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"].pop("type"),
            "spec.versions[0].schema.openAPIV3Schema.properties[spec].type",
            id="not-structural",
        ),
        pytest.param(
            lambda c: c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"].update(
                pattern="(?=x)"
            ),
            "spec.versions[0].schema.openAPIV3Schema.properties[spec].pattern",
            id="perl-lookahead",
        ),
        pytest.param(
            lambda c: c["spec"]["versions"][0].pop("schema"),
            "spec.versions[0].schema.openAPIV3Schema",
            id="no-schema",
        ),
    ],
)
async def test_invalid_crds_are_422(http: aiohttp.ClientSession, mutate: Any, field: str) -> None:
    (crd,) = [d for d in crd_documents() if d["spec"]["names"]["kind"] == "LoadBalancerIPPool"]
    crd = copy.deepcopy(crd)
    mutate(crd)
    async with http.post(CRD_PATH, json=crd) as response:
        status = await response.json()
    assert response.status == 422, status
    assert field in [c["field"] for c in status["details"]["causes"]]
    async with http.get(CRD_PATH) as response:
        assert (await response.json())["items"] == []


async def test_crds_survive_a_restart(tmp_path: Path) -> None:
    db = str(tmp_path / "api.db")
    first = EmbeddedAPIServer(db=db, port=0)
    await first.start()
    async with first.session() as http:
        for doc in crd_documents():
            async with http.post(CRD_PATH, json=doc) as response:
                assert response.status == 201
        async with http.post(POOLS, json=pool("p")) as response:
            assert response.status == 201
    await first.stop()
    second = EmbeddedAPIServer(db=db, port=0)
    await second.start()
    try:
        async with second.session() as http:

            async def served() -> bool:
                async with http.get(f"{POOLS}/p") as response:
                    return response.status == 200

            assert await eventually(served)
    finally:
        await second.stop()


async def test_deleting_a_crd_ends_the_watches_of_its_kind(
    http: aiohttp.ClientSession, lbipam_crds: list[str]
) -> None:
    async with http.post(POOLS, json=pool("p")) as response:
        assert response.status == 201
    watch = await http.get(POOLS, params={"watch": "true"})
    assert json.loads(await watch.content.readline())["type"] == "ADDED"
    async with http.delete(f"{CRD_PATH}/loadbalancerippools.lbipam.io") as response:
        assert response.status == 200
    event = json.loads(await watch.content.readline())
    assert (event["type"], event["object"]["metadata"]["name"]) == ("DELETED", "p")
    assert await watch.content.readline() == b"", "the stream ends with the kind"
    async with http.get(POOLS) as response:
        assert response.status == 404
