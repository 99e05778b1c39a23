"""Where clients look: protobuf bodies over HTTP, the fields Go's types always write, event
field selectors on watches, and a seeded fuzz of protobuf bodies (never a 5xx, everything stored
can be listed and deleted). Raw HTTP goes through `EmbeddedAPIServer.session()`; the Python client
is the real kubernetes-asyncio one.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client

from lbipam.apiserver.kinds import gotypes
from lbipam.apiserver.server import EmbeddedAPIServer
from lbipam.apiserver.wire import protobuf
from tests.helpers import api_client
from tests.protobuf_harness import CORE, GOLDEN, body

NS = "/api/v1/namespaces/default"
PROTOBUF = {"Content-Type": protobuf.MEDIA_TYPE, "Accept": f"{protobuf.MEDIA_TYPE}, application/json"}


@pytest.fixture
async def http(apiserver: EmbeddedAPIServer) -> AsyncIterator[aiohttp.ClientSession]:
    async with apiserver.session() as session:
        yield session


async def send(
    http: aiohttp.ClientSession, method: str, path: str, data: bytes, ctype: str = protobuf.MEDIA_TYPE
) -> tuple[int, Any]:
    headers = {**PROTOBUF, "Content-Type": ctype}
    async with http.request(method, path, data=data, headers=headers) as response:
        assert response.headers["Content-Type"].startswith("application/json")
        return response.status, await response.json()


async def test_protobuf_create_update_and_delete(http: aiohttp.ClientSession) -> None:
    status, secret = await send(http, "POST", f"{NS}/secrets", (GOLDEN / "secret-generic.pb").read_bytes())
    assert status == 201, secret
    assert secret["data"] == {"password": "aHVudGVyMg==", "user": "YWRtaW4="}

    meta = {"name": "bgp-md5", "resourceVersion": secret["metadata"]["resourceVersion"]}
    changed = body(CORE + "Secret", {"metadata": meta, "stringData": {"password": "new"}})
    status, secret = await send(http, "PUT", f"{NS}/secrets/bgp-md5", changed)
    assert status == 200, secret
    assert secret["data"] == {"password": "bmV3"}

    stale = body(gotypes.DELETE_OPTIONS, {"preconditions": {"uid": "not-this-one"}}, kind="DeleteOptions")
    status, answer = await send(http, "DELETE", f"{NS}/secrets/bgp-md5", stale)
    assert (status, answer["reason"]) == (409, "Conflict")
    assert "Precondition failed: UID in precondition: not-this-one" in answer["message"]
    uid = secret["metadata"]["uid"]
    matching = body(gotypes.DELETE_OPTIONS, {"preconditions": {"uid": uid}}, kind="DeleteOptions")
    status, answer = await send(http, "DELETE", f"{NS}/secrets/bgp-md5", matching)
    assert (status, answer["status"]) == (200, "Success")


BAD_BODIES = [
    pytest.param(b"", "cannot be handled|unrecognized", id="empty"),
    pytest.param(b"garbage", "does not appear to be a protobuf message", id="no magic"),
    pytest.param(protobuf.MAGIC + b"\x0a\xff", "unable to decode Unknown", id="broken envelope"),
    pytest.param((GOLDEN / "configmap.pb").read_bytes()[:-40], "unable to decode Unknown", id="truncated"),
    pytest.param((GOLDEN / "configmap.pb").read_bytes(), "cannot be handled as a Secret", id="another kind"),
]


@pytest.mark.parametrize(("data", "message"), BAD_BODIES)
async def test_undecodable_protobuf_is_a_400_saying_why(
    http: aiohttp.ClientSession, data: bytes, message: str
) -> None:
    status, answer = await send(http, "POST", f"{NS}/secrets", data)
    assert status == 400, answer
    assert answer["kind"] == "Status"
    assert answer["reason"] == "BadRequest"
    assert re.search(message, answer["message"]), answer["message"]


async def test_custom_resources_have_no_protobuf_form(
    http: aiohttp.ClientSession, lbipam_crds: list[str]
) -> None:
    path = "/apis/lbipam.io/v1alpha1/loadbalancerippools"
    status, answer = await send(http, "POST", path, (GOLDEN / "namespace.pb").read_bytes())
    assert (status, answer["reason"]) == (415, "UnsupportedMediaType")
    assert answer["message"].endswith("accepted media types include: application/json, application/yaml")
    status, answer = await send(http, "POST", f"{NS}/secrets", b"a=b", "text/plain")
    assert status == 415
    assert answer["message"].endswith(f"application/json, application/yaml, {protobuf.MEDIA_TYPE}")


NODE_INFO = dict.fromkeys(
    ("machineID", "systemUUID", "bootID", "kernelVersion", "osImage", "containerRuntimeVersion",
     "kubeletVersion", "kubeProxyVersion", "operatingSystem", "architecture"),
    "",
)  # fmt: skip
# What kube-apiserver writes back for a minimal object of each kind (Go's encoding/json of its types).
MINIMAL = [
    pytest.param(
        "/api/v1/nodes", {"metadata": {"name": "n1"}},
        {"spec": {}, "status": {"daemonEndpoints": {"kubeletEndpoint": {"Port": 0}}, "nodeInfo": NODE_INFO}},
        id="node",
    ),
    pytest.param(
        "/api/v1/namespaces", {"metadata": {"name": "team-a"}},
        {"spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}},
        id="namespace",
    ),
    pytest.param(
        f"{NS}/services", {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}},
        {"status": {"loadBalancer": {}}},
        id="service",
    ),
    pytest.param(
        "/apis/coordination.k8s.io/v1/namespaces/default/leases", {"metadata": {"name": "l"}}, {"spec": {}},
        id="lease",
    ),
    pytest.param(
        f"{NS}/events", {"metadata": {"name": "e"}, "involvedObject": {"kind": "Node", "name": "n1"}},
        {"source": {}, "reportingComponent": "", "reportingInstance": ""},
        id="core event",
    ),
    pytest.param(
        "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
        {"metadata": {"name": "s"}, "addressType": "IPv4", "endpoints": [{"addresses": ["192.0.2.1"]}]},
        {"endpoints": [{"addresses": ["192.0.2.1"], "conditions": {}}]},
        id="endpointslice",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("path", "obj", "written"), MINIMAL)
async def test_objects_carry_what_go_always_writes(
    http: aiohttp.ClientSession, path: str, obj: dict[str, Any], written: dict[str, Any]
) -> None:
    status, made = await send(http, "POST", path, json.dumps(obj).encode(), "application/json")
    assert status == 201, made
    async with http.get(f"{path}/{obj['metadata']['name']}") as response:
        got = await response.json()
    for key, value in written.items():
        assert got[key] == value, key
    status, again = await send(
        http, "PUT", f"{path}/{obj['metadata']['name']}", json.dumps(got).encode(), "application/json"
    )
    assert status == 200
    assert again["metadata"]["resourceVersion"] == got["metadata"]["resourceVersion"]  # nothing changed


async def test_the_python_client_reads_a_node_created_with_only_a_name(
    http: aiohttp.ClientSession, kubeconfig: Path
) -> None:
    await send(http, "POST", "/api/v1/nodes", b'{"metadata":{"name":"n1"}}', "application/json")
    async with api_client(kubeconfig) as api:
        node = await client.CoreV1Api(api).read_node("n1")
    assert node.spec.pod_cidr is None
    assert node.status.node_info.machine_id == ""


async def test_events_k8s_io_watch_with_a_field_selector(http: aiohttp.ClientSession) -> None:
    path = "/apis/events.k8s.io/v1/namespaces/default/events"
    query = "?watch=true&timeoutSeconds=30&fieldSelector=regarding.name%3Dweb,type%3DNormal"
    async with http.get(path + query) as watch:
        assert watch.status == 200
        for name, regarding, kind in (
            ("db.1", "db", "Normal"),
            ("web.0", "web", "Warning"),
            ("web.1", "web", "Normal"),
        ):
            event = {
                "metadata": {"name": name}, "eventTime": "2024-05-01T10:00:00.000001Z", "type": kind,
                "reportingController": "lbipam.io/controller", "reportingInstance": "c-0",
                "action": "Allocate", "reason": "IPAllocated",
                "regarding": {"kind": "Service", "namespace": "default", "name": regarding},
            }  # fmt: skip
            status, made = await send(http, "POST", path, json.dumps(event).encode(), "application/json")
            assert status == 201, made
        line = await asyncio.wait_for(watch.content.readline(), 30)
    seen = json.loads(line)
    assert (seen["type"], seen["object"]["metadata"]["name"]) == ("ADDED", "web.1")
    assert seen["object"]["regarding"]["name"] == "web"


def _mutated(data: bytes, rng: random.Random) -> bytes:
    """A golden body with a few bytes flipped, cut, repeated or inserted."""
    out = bytearray(data)
    for _ in range(rng.randrange(1, 4)):
        where = rng.randrange(len(out))
        action = rng.randrange(4)
        if action == 0:
            out[where] = rng.randrange(256)
        elif action == 1:
            del out[where:]
        elif action == 2:
            out[where:where] = out[rng.randrange(len(out)) :][:8]
        else:
            out.insert(where, rng.choice([0x00, 0x7F, 0x80, 0xFF, 0x0A, 0x12]))
        if not out:
            break
    return bytes(out)


FUZZ_TARGETS = {
    "secret-generic": f"{NS}/secrets",
    "secret-from-file": f"{NS}/secrets",
    "configmap": f"{NS}/configmaps",
    "namespace": "/api/v1/namespaces",
    "service-loadbalancer": f"{NS}/services",
    "service-nodeport": f"{NS}/services",
    "service-externalname": f"{NS}/services",
}


async def test_fuzzed_protobuf_bodies_never_break_the_server(http: aiohttp.ClientSession) -> None:
    rng = random.Random(11)  # fixed seed: the same 400 bodies every run
    codes: dict[int, int] = {}
    for _ in range(400):
        case = rng.choice(sorted(FUZZ_TARGETS))
        data = _mutated((GOLDEN / f"{case}.pb").read_bytes(), rng)
        status, answer = await send(http, "POST", FUZZ_TARGETS[case], data)
        codes[status] = codes.get(status, 0) + 1
        assert status < 500, (case, data, answer)
        if status >= 400:
            assert answer["kind"] == "Status", answer
            assert answer["code"] == status
    assert codes.get(400, 0) > 100  # most mutations break the body
    for path in sorted(set(FUZZ_TARGETS.values())):
        async with http.get(path) as response:
            assert response.status == 200
            items = (await response.json())["items"]
        for item in items:
            name = item["metadata"]["name"]
            if name in ("default", "kube-system", "kube-public", "kube-node-lease"):
                continue
            async with http.delete(f"{path}/{name}") as response:
                assert response.status == 200, (path, name, await response.text())
