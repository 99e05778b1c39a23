"""The embedded API server tried as a hostile client would: one test per attack of issue 11.

Each asserts the status code the attack gets, that `/healthz` answered within a second while it
ran (`apiserver_probe.healthz_meanwhile`), and that the lists of the kind still parse and every
object in them can be read, patched and deleted afterwards. Connection attacks (half-sent
requests, slow bodies, too many watches) and a full disk are here too; the table of ordinary
malformed requests is test_apiserver_badinput.py, the fuzzers test_apiserver_fuzz.py.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from lbipam.apiserver.server import EmbeddedAPIServer
from lbipam.apiserver.storage.jsonsafe import MAX_DEPTH
from tests.apiserver_probe import healthz_meanwhile, lists_parse_and_objects_yield

SVCS = "/api/v1/namespaces/default/services"
CMS = "/api/v1/namespaces/default/configmaps"
JSON = "application/json"
YAML = "application/yaml"
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY = "application/apply-patch+yaml"

# The 374-byte body: nine levels of nine aliases, 9**9 strings once expanded.
BILLION_LAUGHS = (
    b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: laughs}\n"
    b'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    + b"".join(
        f"{c}: &{c} [{','.join(['*' + p] * 9)}]\n".encode()
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    + b"data: {k: *i}\n"
)


def service(name: str = "web", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"ports": [{"port": 80}], **spec}}


def warning_header(text: str) -> str:
    """A Warning header as kube-apiserver writes one: code 299, the text quoted."""
    return '299 - "' + text.replace('"', '\\"') + '"'


def nested(depth: int) -> Any:
    value: Any = "deep"
    for _ in range(depth):
        value = {"x": value}
    return value


async def send(
    server: EmbeddedAPIServer,
    method: str,
    path: str,
    data: bytes,
    ctype: str = JSON,
    params: dict[str, str] | None = None,
) -> tuple[int, Any, list[str]]:
    """One request; (status, parsed body, Warning headers)."""
    async with (
        server.session() as http,
        http.request(method, path, data=data, headers={"Content-Type": ctype}, params=params) as response,
    ):
        text = await response.text()
        return response.status, json.loads(text), response.headers.getall("Warning", [])


async def create_web(server: EmbeddedAPIServer) -> None:
    status, body, _ = await send(server, "POST", SVCS, json.dumps(service()).encode())
    assert status == 201, body


# ---- YAML aliases ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "ctype", "params"),
    [
        pytest.param("POST", CMS, YAML, None, id="create"),
        pytest.param("PATCH", f"{CMS}/laughs", APPLY, {"fieldManager": "t"}, id="apply"),
    ],
)
async def test_yaml_aliases_are_refused(
    apiserver: EmbeddedAPIServer, method: str, path: str, ctype: str, params: dict[str, str] | None
) -> None:
    assert len(BILLION_LAUGHS) < 512, "a few hundred bytes"
    async with healthz_meanwhile(apiserver):
        status, body, _ = await send(apiserver, method, path, BILLION_LAUGHS, ctype, params)
    assert (status, body["reason"]) == (400, "BadRequest")
    assert "aliases are not allowed" in body["message"]
    await lists_parse_and_objects_yield(apiserver, [CMS])


# ---- nesting -----------------------------------------------------------------------------------

DEEP = 900  # as in the issue: an unknown field nested ~900 deep


def _json_patch_deep() -> str:
    return json.dumps([{"op": "add", "path": "/metadata/labels", "value": nested(DEEP)}])


@pytest.mark.parametrize(
    ("method", "path", "ctype", "params", "data"),
    [
        pytest.param(
            "POST", SVCS, JSON, None, lambda: json.dumps(service("deep", x=nested(DEEP))), id="json"
        ),
        pytest.param("POST", SVCS, YAML, None, lambda: "metadata: {name: deep}\nx: " + "[" * DEEP, id="yaml"),
        pytest.param(
            "PATCH", f"{SVCS}/web", MERGE, None, lambda: json.dumps({"spec": nested(DEEP)}), id="merge-patch"
        ),
        pytest.param(
            "PATCH",
            f"{SVCS}/web",
            STRATEGIC,
            None,
            lambda: json.dumps({"spec": nested(DEEP)}),
            id="strategic-patch",
        ),
        pytest.param("PATCH", f"{SVCS}/web", JSON_PATCH, None, _json_patch_deep, id="json-patch"),
        pytest.param(
            "PATCH",
            f"{SVCS}/web",
            APPLY,
            {"fieldManager": "t"},
            lambda: json.dumps({"apiVersion": "v1", "kind": "Service", **service(), "x": nested(DEEP)}),
            id="apply-json",
        ),
        pytest.param(
            "PATCH",
            f"{SVCS}/web",
            APPLY,
            {"fieldManager": "t"},
            lambda: (
                "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nx:\n"
                + "".join("  " * (i + 1) + "x:\n" for i in range(DEEP))
            ),
            id="apply-yaml",
        ),
    ],
)
async def test_nesting_beyond_the_limit_is_refused(
    apiserver: EmbeddedAPIServer,
    method: str,
    path: str,
    ctype: str,
    params: dict[str, str] | None,
    data: Any,
) -> None:
    await create_web(apiserver)
    payload = data()
    async with healthz_meanwhile(apiserver):
        status, body, _ = await send(apiserver, method, path, payload.encode(), ctype, params)
    assert (status, body["reason"]) == (400, "BadRequest"), body
    assert f"deeper than {MAX_DEPTH} levels" in body["message"]
    await lists_parse_and_objects_yield(apiserver, [SVCS])


async def test_nesting_within_the_limit_is_kept_and_pruned_as_unknown(apiserver: EmbeddedAPIServer) -> None:
    data = json.dumps(service("fine", x=nested(MAX_DEPTH - 4))).encode()
    status, body, warnings = await send(apiserver, "POST", SVCS, data)
    assert status == 201, body
    assert "x" not in body["spec"]
    assert warnings == [warning_header('unknown field "spec.x"')]
    await lists_parse_and_objects_yield(apiserver, [SVCS])


# ---- invalid Unicode, NaN, integer ranges ------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "ctype", "field"),
    [
        pytest.param(b'"web-\\ud800"', JSON, "metadata.labels.app", id="json-lone-surrogate-escape"),
        pytest.param(b'"web-\\udfff\\ud800"', JSON, "metadata.labels.app", id="json-reversed-pair"),
        pytest.param(b'"web-\xed\xa0\x80"', JSON, None, id="json-surrogate-bytes"),
        pytest.param(b'"web-\xff"', JSON, None, id="json-invalid-utf8"),
        pytest.param(b'"web-\\ud800"', YAML, "metadata.labels.app", id="yaml-lone-surrogate-escape"),
    ],
)
async def test_invalid_unicode_is_refused(
    apiserver: EmbeddedAPIServer, data: bytes, ctype: str, field: str | None
) -> None:
    if ctype == JSON:
        body = (
            b'{"metadata": {"name": "u", "labels": {"app": '
            + data
            + b'}}, "spec": {"ports": [{"port": 80}]}}'
        )
    else:
        body = b"metadata:\n  name: u\n  labels:\n    app: " + data + b"\nspec:\n  ports: [{port: 80}]\n"
    async with healthz_meanwhile(apiserver):
        status, reply, _ = await send(apiserver, "POST", SVCS, body, ctype)
    assert (status, reply["reason"]) == (400, "BadRequest"), reply
    if field is not None:
        assert field in reply["message"]
        assert "surrogate" in reply["message"]
    await lists_parse_and_objects_yield(apiserver, [SVCS])


@pytest.mark.parametrize(
    ("data", "ctype"),
    [
        pytest.param(b'{"metadata": {"name": "n"}, "spec": {"ports": [{"port": NaN}]}}', JSON, id="json-nan"),
        pytest.param(b'{"metadata": {"name": "n"}, "x": Infinity}', JSON, id="json-infinity"),
        pytest.param(b'{"metadata": {"name": "n"}, "x": -Infinity}', JSON, id="json-minus-infinity"),
        pytest.param(b'{"metadata": {"name": "n"}, "x": 1e400}', JSON, id="json-overflowing-float"),
        pytest.param(b"metadata: {name: n}\nx: .nan\n", YAML, id="yaml-nan"),
        pytest.param(b"metadata: {name: n}\nx: -.inf\n", YAML, id="yaml-minus-infinity"),
    ],
)
async def test_nan_and_infinity_are_refused(apiserver: EmbeddedAPIServer, data: bytes, ctype: str) -> None:
    async with healthz_meanwhile(apiserver):
        status, reply, _ = await send(apiserver, "POST", SVCS, data, ctype)
    assert (status, reply["reason"]) == (400, "BadRequest"), reply
    assert any(word in reply["message"] for word in ("NaN", "nan", "inf", "Infinity")), reply["message"]
    await create_web(apiserver)
    patch = b'{"spec": {"ports": [{"port": 80, "x": NaN}]}}'
    status, reply, _ = await send(apiserver, "PATCH", f"{SVCS}/web", patch, MERGE)
    assert status == 400, reply
    await lists_parse_and_objects_yield(apiserver, [SVCS])


@pytest.mark.parametrize(
    ("path", "obj", "field", "go_type"),
    [
        pytest.param(
            SVCS, service("big", ports=[{"port": 2**40}]), "Service.spec.ports.port", "int32", id="port"
        ),
        pytest.param(
            SVCS,
            service("big", ports=[{"port": 80, "targetPort": 2**31}]),
            "Service.spec.ports.targetPort",
            "intstr.IntOrString",
            id="target-port",
        ),
        pytest.param(
            "/apis/coordination.k8s.io/v1/namespaces/default/leases",
            {"metadata": {"name": "big"}, "spec": {"leaseDurationSeconds": -(2**31) - 1}},
            "Lease.spec.leaseDurationSeconds",
            "int32",
            id="lease-duration",
        ),
        pytest.param(SVCS, service("big", x=2**64), "spec.x", "64-bit", id="beyond-int64-anywhere"),
        pytest.param(
            SVCS, service("big", ports=[{"port": 80.5}]), "Service.spec.ports.port", "int32", id="float"
        ),
    ],
)
async def test_integers_outside_their_range_are_refused(
    apiserver: EmbeddedAPIServer, path: str, obj: dict[str, Any], field: str, go_type: str
) -> None:
    async with healthz_meanwhile(apiserver):
        status, reply, _ = await send(apiserver, "POST", path, json.dumps(obj).encode())
    assert (status, reply["reason"]) == (400, "BadRequest"), reply
    assert field in reply["message"], reply["message"]
    assert go_type in reply["message"], reply["message"]
    await lists_parse_and_objects_yield(apiserver, [path])


# ---- unknown fields of built-in kinds ----------------------------------------------------------


@pytest.mark.parametrize(
    ("validation", "status", "warnings"),
    [
        pytest.param(None, 201, ['unknown field "spec.foo"', 'unknown field "spec.ports[0].bar"'], id="warn"),
        pytest.param(
            "Warn", 201, ['unknown field "spec.foo"', 'unknown field "spec.ports[0].bar"'], id="Warn"
        ),
        pytest.param("Ignore", 201, [], id="Ignore"),
        pytest.param("Strict", 400, [], id="Strict"),
    ],
)
async def test_unknown_fields_of_builtin_kinds(
    apiserver: EmbeddedAPIServer, validation: str | None, status: int, warnings: list[str]
) -> None:
    obj = {"metadata": {"name": "u"}, "spec": {"foo": {"a": 1}, "ports": [{"port": 80, "bar": True}]}}
    params = {"fieldValidation": validation} if validation else None
    async with healthz_meanwhile(apiserver):
        got, reply, headers = await send(apiserver, "POST", SVCS, json.dumps(obj).encode(), params=params)
    assert got == status, reply
    if status == 400:
        assert reply["message"] == (
            'Service in version "v1" cannot be handled as a Service: strict decoding error: '
            'unknown field "spec.foo", unknown field "spec.ports[0].bar"'
        )
    else:
        assert "foo" not in reply["spec"]
        assert "bar" not in reply["spec"]["ports"][0]
        assert headers == [warning_header(w) for w in warnings]
    await lists_parse_and_objects_yield(apiserver, [SVCS])


# ---- objects an older version stored -----------------------------------------------------------


def _plant(db: Path, rows: list[tuple[str, str, str, str]]) -> None:
    """Write objects into the database behind the server's back, as an older version did."""
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT OR REPLACE INTO objects VALUES (?, ?, ?, 1000, ?)",
            [(k, ns, n, data) for k, ns, n, data in rows],
        )


async def test_bad_objects_stored_by_an_older_version_are_served_and_can_be_removed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "old.db"
    first = EmbeddedAPIServer(db=str(db), port=0)
    await first.start()
    await first.stop()

    def svc(name: str, extra: str) -> str:
        return (
            '{"apiVersion":"v1","kind":"Service","metadata":{"name":"' + name + '","namespace":"default",'
            '"uid":"u-' + name + '","resourceVersion":"1000","creationTimestamp":"2024-01-01T00:00:00Z"},'
            '"spec":{"type":"ClusterIP","ports":[{"port":80,"protocol":"TCP","targetPort":80}]' + extra + "}}"
        )

    deep = json.dumps(nested(DEEP))
    _plant(
        db,
        [
            ("/services", "default", "surrogate", svc("surrogate", ',"x":"\\ud800"')),
            ("/services", "default", "nan", svc("nan", ',"x":NaN')),
            ("/services", "default", "huge", svc("huge", ',"x":' + "9" * 30)),
            ("/services", "default", "deep", svc("deep", ',"x":' + deep)),
            ("/services", "default", "garbage", "{not json"),
        ],
    )
    server = EmbeddedAPIServer(db=str(db), port=0)
    with caplog.at_level("WARNING"):
        await server.start()
    try:
        logged = caplog.text
        for name in ("surrogate", "nan", "huge", "deep"):
            assert f"stored object repaired key=/services namespace=default name={name}" in logged
        assert "stored object left out: not JSON key=/services namespace=default name=garbage" in logged
        async with server.session() as http, http.get(SVCS) as response:
            listed = json.loads(await response.text())
        names = {item["metadata"]["name"] for item in listed["items"]}
        assert names == {"surrogate", "nan", "huge", "deep"}
        by_name = {item["metadata"]["name"]: item for item in listed["items"]}
        assert by_name["surrogate"]["spec"]["x"] == "\ufffd"
        assert by_name["nan"]["spec"]["x"] is None
        async with healthz_meanwhile(server):
            await lists_parse_and_objects_yield(server, [SVCS])
    finally:
        await server.stop()
    reopened = EmbeddedAPIServer(db=str(db), port=0)
    await reopened.start()
    try:
        async with reopened.session() as http, http.get(SVCS) as response:
            assert [i["metadata"]["name"] for i in (await response.json())["items"]] == []
    finally:
        await reopened.stop()
