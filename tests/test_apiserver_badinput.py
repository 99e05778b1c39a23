"""Bad input to the embedded API server: the right 4xx Status, never a 500, never a partial write.

A table of malformed requests, each asserting code, reason and that the resourceVersion did not
move. The seeded fuzzers are in test_apiserver_fuzz.py.
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from lbipam.apiserver.server import EmbeddedAPIServer

SVCS = "/api/v1/namespaces/default/services"
JSON = "application/json"
VALID_SVC = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web"},
    "spec": {"ports": [{"port": 80}]},
}


def body(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def svc(**changes: Any) -> bytes:
    obj = json.loads(json.dumps(VALID_SVC))
    obj.update(changes)
    return body(obj)


CASES = [
    # (id, method, path, data, content type, query, code, reason)
    ("malformed-json", "POST", SVCS, b'{"metadata": ', JSON, {}, 400, "BadRequest"),
    ("invalid-utf8", "POST", SVCS, b'{"metadata": {"name": "\xff"}}', JSON, {}, 400, "BadRequest"),
    ("empty-body", "POST", SVCS, b"", JSON, {}, 400, "BadRequest"),
    ("json-array", "POST", SVCS, b"[1, 2]", JSON, {}, 400, "BadRequest"),
    ("malformed-yaml", "POST", SVCS, b"metadata: {name: [", "application/yaml", {}, 400, "BadRequest"),
    ("two-yaml-docs", "POST", SVCS, b"a: 1\n---\nb: 2\n", "application/yaml", {}, 400, "BadRequest"),
    ("yaml-scalar", "POST", SVCS, b"just text", "application/yaml", {}, 400, "BadRequest"),
    ("text-plain", "POST", SVCS, svc(), "text/plain", {}, 415, "UnsupportedMediaType"),
    ("unknown-resource", "GET", "/api/v1/foos", b"", JSON, {}, 404, "NotFound"),
    ("unknown-resource-post", "POST", "/api/v1/namespaces/default/foos", svc(), JSON, {}, 404, "NotFound"),
    ("unknown-group", "GET", "/apis/nope.example.com/v1/things", b"", JSON, {}, 404, "NotFound"),
    ("unknown-version", "GET", "/apis/discovery.k8s.io/v9/endpointslices", b"", JSON, {}, 404, "NotFound"),
    ("unknown-subresource", "GET", f"{SVCS}/web/scale", b"", JSON, {}, 404, "NotFound"),
    (
        "cluster-kind-in-namespace",
        "POST",
        "/api/v1/namespaces/default/nodes",
        svc(),
        JSON,
        {},
        404,
        "NotFound",
    ),
    ("not-an-api-path", "GET", "/nothing/here", b"", JSON, {}, 404, "NotFound"),
    ("invalid-name", "POST", SVCS, svc(metadata={"name": "Web_1"}), JSON, {}, 422, "Invalid"),
    ("missing-name", "POST", SVCS, svc(metadata={}), JSON, {}, 422, "Invalid"),
    ("long-name", "POST", SVCS, svc(metadata={"name": "a" * 64}), JSON, {}, 422, "Invalid"),
    (
        "bad-label-value",
        "POST",
        SVCS,
        svc(metadata={"name": "w", "labels": {"a": "b c"}}),
        JSON,
        {},
        422,
        "Invalid",
    ),
    (
        "labels-not-a-map",
        "POST",
        SVCS,
        svc(metadata={"name": "w", "labels": ["a"]}),
        JSON,
        {},
        400,
        "BadRequest",
    ),
    ("metadata-not-an-object", "POST", SVCS, svc(metadata="web"), JSON, {}, 400, "BadRequest"),
    ("name-not-a-string", "POST", SVCS, svc(metadata={"name": 5}), JSON, {}, 400, "BadRequest"),
    ("port-as-string", "POST", SVCS, svc(spec={"ports": [{"port": "80"}]}), JSON, {}, 400, "BadRequest"),
    ("ports-not-a-list", "POST", SVCS, svc(spec={"ports": {"port": 80}}), JSON, {}, 400, "BadRequest"),
    ("spec-not-an-object", "POST", SVCS, svc(spec=[]), JSON, {}, 400, "BadRequest"),
    ("wrong-api-version", "POST", SVCS, svc(apiVersion="apps/v1"), JSON, {}, 400, "BadRequest"),
    ("wrong-kind", "POST", SVCS, svc(kind="Pod"), JSON, {}, 400, "BadRequest"),
    (
        "rv-on-create",
        "POST",
        SVCS,
        svc(metadata={"name": "w", "resourceVersion": "5"}),
        JSON,
        {},
        400,
        "BadRequest",
    ),
    (
        "namespace-mismatch",
        "POST",
        SVCS,
        svc(metadata={"name": "w", "namespace": "kube-system"}),
        JSON,
        {},
        400,
        "BadRequest",
    ),
    ("name-mismatch-put", "PUT", f"{SVCS}/web", svc(metadata={"name": "other"}), JSON, {}, 400, "BadRequest"),
    ("post-to-object", "POST", f"{SVCS}/web", svc(), JSON, {}, 405, "MethodNotAllowed"),
    ("put-on-collection", "PUT", SVCS, svc(), JSON, {}, 405, "MethodNotAllowed"),
    ("delete-subresource", "DELETE", f"{SVCS}/web/status", b"", JSON, {}, 405, "MethodNotAllowed"),
    ("post-all-namespaces", "POST", "/api/v1/services", svc(), JSON, {}, 405, "MethodNotAllowed"),
    ("post-discovery", "POST", "/api/v1", svc(), JSON, {}, 405, "MethodNotAllowed"),
    (
        "oversized-body",
        "POST",
        SVCS,
        b'{"x": "' + b"a" * (4 * 1024 * 1024) + b'"}',
        JSON,
        {},
        413,
        "RequestEntityTooLarge",
    ),
    (
        "patch-unknown-type",
        "PATCH",
        f"{SVCS}/web",
        b"{}",
        "application/x-nonsense",
        {},
        415,
        "UnsupportedMediaType",
    ),
    (
        "json-patch-not-a-list",
        "PATCH",
        f"{SVCS}/web",
        b"{}",
        "application/json-patch+json",
        {},
        400,
        "BadRequest",
    ),
    (
        "json-patch-failed-test",
        "PATCH",
        f"{SVCS}/web",
        body([{"op": "test", "path": "/spec/type", "value": "NodePort"}]),
        "application/json-patch+json",
        {},
        422,
        "Invalid",
    ),
    (
        "merge-patch-malformed",
        "PATCH",
        f"{SVCS}/web",
        b"{",
        "application/merge-patch+json",
        {},
        400,
        "BadRequest",
    ),
    (
        "apply-without-manager",
        "PATCH",
        f"{SVCS}/web",
        svc(),
        "application/apply-patch+yaml",
        {},
        422,
        "Invalid",
    ),
    (
        "patch-missing-object",
        "PATCH",
        f"{SVCS}/nothere",
        b"{}",
        "application/merge-patch+json",
        {},
        404,
        "NotFound",
    ),
    ("bad-label-selector", "GET", SVCS, b"", JSON, {"labelSelector": "a in"}, 400, "BadRequest"),
    ("bad-field-selector", "GET", SVCS, b"", JSON, {"fieldSelector": "spec.type=x"}, 400, "BadRequest"),
    ("garbled-field-selector", "GET", SVCS, b"", JSON, {"fieldSelector": "nonsense"}, 400, "BadRequest"),
    ("bad-limit", "GET", SVCS, b"", JSON, {"limit": "many"}, 400, "BadRequest"),
    ("bad-continue", "GET", SVCS, b"", JSON, {"limit": "1", "continue": "!!"}, 400, "BadRequest"),
    ("bad-watch-rv", "GET", SVCS, b"", JSON, {"watch": "true", "resourceVersion": "abc"}, 400, "BadRequest"),
    ("bad-timeout", "GET", SVCS, b"", JSON, {"watch": "true", "timeoutSeconds": "soon"}, 400, "BadRequest"),
    ("bad-dry-run", "POST", SVCS, svc(), JSON, {"dryRun": "Some"}, 400, "BadRequest"),
    ("bad-field-validation", "POST", SVCS, svc(), JSON, {"fieldValidation": "Loose"}, 400, "BadRequest"),
    ("bad-delete-options", "DELETE", f"{SVCS}/web", b"[", JSON, {}, 400, "BadRequest"),
    (
        "secret-not-base64",
        "POST",
        "/api/v1/namespaces/default/secrets",
        body({"metadata": {"name": "s"}, "data": {"k": "not base64!"}}),
        JSON,
        {},
        400,
        "BadRequest",
    ),
]


@pytest.fixture
async def http(apiserver: EmbeddedAPIServer) -> AsyncIterator[aiohttp.ClientSession]:
    async with apiserver.session() as session:
        async with session.post(SVCS, data=svc(), headers={"Content-Type": JSON}) as response:
            assert response.status == 201
        yield session


@pytest.mark.parametrize(
    ("method", "path", "data", "ctype", "query", "code", "reason"),
    [pytest.param(*c[1:], id=c[0]) for c in CASES],
)
async def test_bad_request_gets_the_right_status_and_writes_nothing(
    http: aiohttp.ClientSession,
    apiserver: EmbeddedAPIServer,
    method: str,
    path: str,
    data: bytes,
    ctype: str,
    query: dict[str, str],
    code: int,
    reason: str,
) -> None:
    before = apiserver.store.rv
    headers = {"Content-Type": ctype}
    payload = io.BytesIO(data) if len(data) > 1024 * 1024 else data  # aiohttp warns on big raw bytes
    async with http.request(method, path, data=payload, headers=headers, params=query) as response:
        text = await response.text()
        if "watch" in query and response.status == 200:
            pytest.fail(f"a watch with bad parameters was accepted: {text}")
    assert response.status == code, text
    status = json.loads(text)
    assert (status["kind"], status["status"], status["code"], status["reason"]) == (
        "Status",
        "Failure",
        code,
        reason,
    )
    assert status["message"]
    assert apiserver.store.rv == before, "nothing was written"
