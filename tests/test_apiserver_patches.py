"""Unit tests of the embedded API server's patch, apply, discovery, OpenAPI and table functions.

Expectations are what kube-apiserver 1.32 answers: its messages word for word, the patches kubectl
sends, and the managedFields a real cluster shows for the same writes.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from lbipam.apiserver import discovery, openapi, tables
from lbipam.apiserver.errors import StatusError
from lbipam.apiserver.patches import (
    apply_patch,
    force_without_apply,
    manager_from_user_agent,
    missing_field_manager,
    record_update,
    server_side_apply,
)
from lbipam.apiserver.registry import BUILTIN_TYPES, ResourceType
from lbipam.apiserver.strategic import BUILTIN_SHAPES

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)
BY_KIND = {(t.group, t.kind): t for t in BUILTIN_TYPES}
SERVICE, NODE = BY_KIND[("", "Service")], BY_KIND[("", "Node")]
ENDPOINTSLICE = BY_KIND[("discovery.k8s.io", "EndpointSlice")]
JSON, MERGE, SMP = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)


def crd_type(file: str = "lbipam.io_loadbalancerippools.yaml") -> ResourceType:
    crd = yaml.safe_load((ROOT / "crds" / file).read_text())
    version = crd["spec"]["versions"][0]
    names = crd["spec"]["names"]
    return ResourceType(
        crd["spec"]["group"],
        version["name"],
        names["plural"],
        names["kind"],
        crd["spec"]["scope"] == "Namespaced",
        singular=names["singular"],
        short_names=tuple(names.get("shortNames", ())),
        categories=tuple(names.get("categories", ())),
        subresources=frozenset(version.get("subresources", {})),
        builtin=False,
        schema=version["schema"]["openAPIV3Schema"],
        printer_columns=tuple(version.get("additionalPrinterColumns", ())),
    )


POOL = crd_type()


def service(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "default", "uid": "u-1", "resourceVersion": "7"},
        "spec": {
            "type": "LoadBalancer",
            "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}],
            **spec,
        },
    }


def patch(rtype: ResourceType, ctype: str, original: dict[str, Any], body: Any) -> dict[str, Any]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return apply_patch(rtype, ctype, original, raw)


# --- JSON merge patch (RFC 7386) -------------------------------------------------------------------

MERGE_CASES = [
    ("replace-scalar", {"a": "b"}, {"a": "c"}, {"a": "c"}),
    ("add-key", {"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ("null-deletes", {"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ("list-replaced", {"a": ["b"]}, {"a": ["c", "d"]}, {"a": ["c", "d"]}),
    ("nested", {"a": {"b": "c", "d": 1}}, {"a": {"b": "x", "d": None}}, {"a": {"b": "x"}}),
    ("null-unknown-ignored", {"a": 1}, {"z": None}, {"a": 1}),
    ("object-over-scalar", {"a": 1}, {"a": {"b": 2}}, {"a": {"b": 2}}),
]


@pytest.mark.parametrize(
    ("original", "body", "expected"), [c[1:] for c in MERGE_CASES], ids=[c[0] for c in MERGE_CASES]
)
def test_merge_patch(original: dict[str, Any], body: Any, expected: dict[str, Any]) -> None:
    assert patch(POOL, MERGE, original, body) == expected


def test_merge_patch_rejects_a_non_object_body_with_400() -> None:
    with pytest.raises(StatusError) as err:
        patch(POOL, MERGE, {"a": 1}, [1])
    assert (err.value.code, err.value.message) == (400, "Invalid JSON Patch")


def test_patch_ignores_content_type_parameters() -> None:
    assert apply_patch(POOL, MERGE + "; charset=utf-8", {"a": 1}, b'{"a": 2}') == {"a": 2}


# --- JSON patch (RFC 6902) ---------------------------------------------------------------------------


def test_json_patch_applies_operations_and_leaves_the_original_alone() -> None:
    original = service()
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "7"},
        {"op": "replace", "path": "/spec/ports/0/port", "value": 81},
        {"op": "add", "path": "/metadata/labels", "value": {"app": "web"}},
    ]
    out = patch(SERVICE, JSON, original, ops)
    assert out["spec"]["ports"][0]["port"] == 81
    assert out["metadata"]["labels"] == {"app": "web"}
    assert original["spec"]["ports"][0]["port"] == 80


JSON_PATCH_ERRORS = [
    (
        "object-body",
        {"op": "add"},
        400,
        "json: cannot unmarshal object into Go value of type jsonpatch.Patch",
    ),
    ("string-body", "x", 400, "json: cannot unmarshal string into Go value of type jsonpatch.Patch"),
    ("non-object-op", [1], 400, "json: cannot unmarshal number into Go value of type jsonpatch.Operation"),
    ("bad-json", b"[{", 400, None),
    (
        "failed-test",
        [{"op": "test", "path": "/metadata/resourceVersion", "value": "6"}],
        422,
        "the server rejected our request due to an error in our request",
    ),
    (
        "missing-path",
        [{"op": "remove", "path": "/spec/nothere"}],
        422,
        "the server rejected our request due to an error in our request",
    ),
    ("unknown-op", [{"op": "frobnicate", "path": "/a"}], 422, None),
]


@pytest.mark.parametrize(
    ("body", "code", "message"), [c[1:] for c in JSON_PATCH_ERRORS], ids=[c[0] for c in JSON_PATCH_ERRORS]
)
def test_json_patch_errors(body: Any, code: int, message: str | None) -> None:
    with pytest.raises(StatusError) as err:
        patch(SERVICE, JSON, service(), body)
    assert err.value.code == code
    assert err.value.reason == {400: "BadRequest", 422: "Invalid"}[code]
    if message:
        assert err.value.message == message


def test_json_patch_failed_test_says_why_in_a_cause() -> None:
    with pytest.raises(StatusError) as err:
        patch(SERVICE, JSON, service(), [{"op": "test", "path": "/spec/type", "value": "ClusterIP"}])
    assert err.value.causes[0].field == "patch"
    assert "ClusterIP" in err.value.causes[0].message or "not equal" in err.value.causes[0].message


def test_json_patch_with_too_many_operations_is_413() -> None:
    ops = [{"op": "test", "path": "/kind", "value": "Service"}] * 10001
    with pytest.raises(StatusError) as err:
        patch(SERVICE, JSON, service(), ops)
    assert err.value.code == 413
    assert err.value.message.endswith("The allowed maximum operations in a JSON patch is 10000, got 10001")


# --- strategic merge patch ----------------------------------------------------------------------------


def test_strategic_merge_on_a_custom_resource_is_415_with_the_real_message() -> None:
    with pytest.raises(StatusError) as err:
        patch(POOL, SMP, {"spec": {}}, {"spec": {"disabled": True}})
    assert err.value.code == 415
    assert err.value.reason == "UnsupportedMediaType"
    assert err.value.message == (
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    )


def svc_obj(**kw: Any) -> dict[str, Any]:
    return {"metadata": {"name": "web"}, "spec": {}, "status": {}, **kw}


def node_obj(spec: dict[str, Any] | None = None, status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "n1"}, "spec": spec or {}, "status": status or {}}


OWNER_A = {"apiVersion": "v1", "kind": "ConfigMap", "name": "a", "uid": "ua"}
OWNER_B = {"apiVersion": "v1", "kind": "ConfigMap", "name": "b", "uid": "ub"}
P80 = {"port": 80, "protocol": "TCP", "targetPort": 8080}
P443 = {"port": 443, "protocol": "TCP", "targetPort": 8443}
COND = {"type": "Ready", "status": "False"}

# (id, kind, original, patch, expected): patches as kubectl and controllers send them.
SMP_CASES: list[tuple[str, ResourceType, dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    (
        "ports-merge-by-port-setElementOrder",
        SERVICE,
        svc_obj(spec={"ports": [P80, P443]}),
        {
            "spec": {
                "$setElementOrder/ports": [{"port": 80}, {"port": 443}],
                "ports": [{"port": 80, "targetPort": 9090}],
            }
        },
        svc_obj(spec={"ports": [{**P80, "targetPort": 9090}, P443]}),
    ),
    (
        "ports-delete-item",
        SERVICE,
        svc_obj(spec={"ports": [P80, P443]}),
        {"spec": {"$setElementOrder/ports": [{"port": 443}], "ports": [{"$patch": "delete", "port": 80}]}},
        svc_obj(spec={"ports": [P443]}),
    ),
    (
        "ports-add-item-ordered-first",
        SERVICE,
        svc_obj(spec={"ports": [P80]}),
        {"spec": {"$setElementOrder/ports": [{"port": 443}, {"port": 80}], "ports": [P443]}},
        svc_obj(spec={"ports": [P443, P80]}),
    ),
    (
        "ports-list-replace-directive",
        SERVICE,
        svc_obj(spec={"ports": [P80, P443]}),
        {"spec": {"ports": [{"$patch": "replace"}, {"port": 53, "protocol": "UDP"}]}},
        svc_obj(spec={"ports": [{"port": 53, "protocol": "UDP"}]}),
    ),
    (
        "ipFamilies-atomic",
        SERVICE,
        svc_obj(spec={"ipFamilies": ["IPv4", "IPv6"]}),
        {"spec": {"ipFamilies": ["IPv6"]}},
        svc_obj(spec={"ipFamilies": ["IPv6"]}),
    ),
    (
        "clusterIPs-atomic",
        SERVICE,
        svc_obj(spec={"clusterIPs": ["10.96.0.1", "fd00::1"]}),
        {"spec": {"clusterIPs": ["10.96.0.2"]}},
        svc_obj(spec={"clusterIPs": ["10.96.0.2"]}),
    ),
    (
        "lb-ingress-atomic",
        SERVICE,
        svc_obj(status={"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}, {"ip": "2001:db8::1"}]}}),
        {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.9"}]}}},
        svc_obj(status={"loadBalancer": {"ingress": [{"ip": "192.0.2.9"}]}}),
    ),
    (
        "service-conditions-by-type",
        SERVICE,
        svc_obj(status={"conditions": [COND, {"type": "Other", "status": "True"}]}),
        {"status": {"conditions": [{"type": "Ready", "status": "True"}]}},
        svc_obj(
            status={"conditions": [{"type": "Ready", "status": "True"}, {"type": "Other", "status": "True"}]}
        ),
    ),
    (
        "ownerReferences-by-uid",
        SERVICE,
        svc_obj(metadata={"name": "web", "ownerReferences": [OWNER_A]}),
        {"metadata": {"ownerReferences": [{"uid": "ua", "name": "a2"}, OWNER_B]}},
        svc_obj(metadata={"name": "web", "ownerReferences": [{**OWNER_A, "name": "a2"}, OWNER_B]}),
    ),
    (
        "finalizers-set-union",
        SERVICE,
        svc_obj(metadata={"name": "web", "finalizers": ["a", "b"]}),
        {"metadata": {"finalizers": ["b", "c"]}},
        svc_obj(metadata={"name": "web", "finalizers": ["a", "b", "c"]}),
    ),
    (
        "finalizers-deleteFromPrimitiveList",
        SERVICE,
        svc_obj(metadata={"name": "web", "finalizers": ["a", "b", "c"]}),
        {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}},
        svc_obj(metadata={"name": "web", "finalizers": ["a", "c"]}),
    ),
    (
        "finalizers-setElementOrder",
        SERVICE,
        svc_obj(metadata={"name": "web", "finalizers": ["a", "b"]}),
        {"metadata": {"$setElementOrder/finalizers": ["b", "a"]}},
        svc_obj(metadata={"name": "web", "finalizers": ["b", "a"]}),
    ),
    (
        "map-replace-directive",
        SERVICE,
        svc_obj(metadata={"name": "web", "labels": {"a": "1", "b": "2"}}),
        {"metadata": {"labels": {"$patch": "replace", "c": "3"}}},
        svc_obj(metadata={"name": "web", "labels": {"c": "3"}}),
    ),
    (
        "map-delete-directive",
        SERVICE,
        svc_obj(metadata={"name": "web", "labels": {"a": "1"}}),
        {"metadata": {"labels": {"$patch": "delete"}}},
        svc_obj(metadata={"name": "web", "labels": {}}),
    ),
    (
        "retainKeys",
        SERVICE,
        svc_obj(
            spec={"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 5}}}
        ),
        {"spec": {"$retainKeys": ["sessionAffinity"], "sessionAffinity": "None"}},
        svc_obj(spec={"sessionAffinity": "None"}),
    ),
    (
        "null-deletes-key",
        SERVICE,
        svc_obj(spec={"loadBalancerClass": "x", "type": "LoadBalancer"}),
        {"spec": {"loadBalancerClass": None}},
        svc_obj(spec={"type": "LoadBalancer"}),
    ),
    (
        "node-conditions-by-type",
        NODE,
        node_obj(status={"conditions": [COND]}),
        {
            "status": {
                "conditions": [
                    {"type": "Ready", "status": "True"},
                    {"type": "DiskPressure", "status": "False"},
                ]
            }
        },
        node_obj(
            status={
                "conditions": [
                    {"type": "Ready", "status": "True"},
                    {"type": "DiskPressure", "status": "False"},
                ]
            }
        ),
    ),
    (
        "node-addresses-by-type",
        NODE,
        node_obj(
            status={
                "addresses": [
                    {"type": "InternalIP", "address": "192.0.2.10"},
                    {"type": "Hostname", "address": "n1"},
                ]
            }
        ),
        {"status": {"addresses": [{"type": "InternalIP", "address": "192.0.2.11"}]}},
        node_obj(
            status={
                "addresses": [
                    {"type": "InternalIP", "address": "192.0.2.11"},
                    {"type": "Hostname", "address": "n1"},
                ]
            }
        ),
    ),
    (
        "node-podCIDRs-merge",
        NODE,
        node_obj(spec={"podCIDRs": ["10.244.1.0/24"]}),
        {"spec": {"podCIDRs": ["fd00:10:244:1::/64"]}},
        node_obj(spec={"podCIDRs": ["10.244.1.0/24", "fd00:10:244:1::/64"]}),
    ),
    (
        # Kubernetes declares no merge key on taints: a patch replaces the list.
        "node-taints-atomic",
        NODE,
        node_obj(spec={"taints": [{"key": "a", "effect": "NoSchedule"}]}),
        {"spec": {"taints": [{"key": "b", "effect": "NoExecute"}]}},
        node_obj(spec={"taints": [{"key": "b", "effect": "NoExecute"}]}),
    ),
    (
        "endpointslice-endpoints-atomic",
        ENDPOINTSLICE,
        {"endpoints": [{"addresses": ["192.0.2.1"]}, {"addresses": ["192.0.2.2"]}]},
        {"endpoints": [{"addresses": ["192.0.2.3"]}]},
        {"endpoints": [{"addresses": ["192.0.2.3"]}]},
    ),
]


@pytest.mark.parametrize(
    ("rtype", "original", "body", "expected"), [c[1:] for c in SMP_CASES], ids=[c[0] for c in SMP_CASES]
)
def test_strategic_merge_patch(rtype: ResourceType, original: Any, body: Any, expected: Any) -> None:
    assert patch(rtype, SMP, original, body) == expected


SMP_ERRORS = [
    ("unknown-directive", {"metadata": {"labels": {"$patch": "explode"}}}, 400),
    ("merge-key-missing-on-delete", {"spec": {"ports": [{"$patch": "delete", "name": "http"}]}}, 400),
    ("retainKeys-not-a-list", {"spec": {"$retainKeys": "type"}}, 400),
    ("content-not-in-retainKeys", {"spec": {"$retainKeys": ["type"], "clusterIP": "None"}}, 422),
    ("not-an-object", [1, 2], 400),
]


@pytest.mark.parametrize(("body", "code"), [c[1:] for c in SMP_ERRORS], ids=[c[0] for c in SMP_ERRORS])
def test_strategic_merge_errors(body: Any, code: int) -> None:
    with pytest.raises(StatusError) as err:
        patch(SERVICE, SMP, svc_obj(spec={"ports": [P80]}), body)
    assert err.value.code == code


def test_builtin_merge_shapes_match_kubernetes_1_32_openapi() -> None:
    """Every list this server knows for built-in kinds has Kubernetes' own strategy and keys."""
    upstream = openapi._upstream()
    roots = {
        "Service": "io.k8s.api.core.v1.Service",
        "Node": "io.k8s.api.core.v1.Node",
        "Namespace": "io.k8s.api.core.v1.Namespace",
        "EndpointSlice": "io.k8s.api.discovery.v1.EndpointSlice",
        "CustomResourceDefinition": "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1."
        "CustomResourceDefinition",
    }

    def prop(definition: str, path: tuple[str, ...]) -> dict[str, Any]:
        node: dict[str, Any] = upstream[definition]
        for name in path:
            node = node["properties"][name]
            ref = node.get("$ref") or node.get("items", {}).get("$ref")
            if ref and name != path[-1]:
                node = upstream[ref.rsplit("/", 1)[-1]]
        return node

    for kind, shapes in BUILTIN_SHAPES.items():
        for path, shape in shapes.items():
            real = prop(roots[kind], path)
            assert shape.list_type == real.get("x-kubernetes-list-type", "atomic"), (kind, path)
            assert list(shape.keys) == real.get("x-kubernetes-list-map-keys", []), (kind, path)
            assert shape.smp_merge == ("merge" in real.get("x-kubernetes-patch-strategy", "")), (kind, path)
            assert shape.smp_key == real.get("x-kubernetes-patch-merge-key", ""), (kind, path)


# --- server-side apply -------------------------------------------------------------------------------


def entries(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{e['manager']}/{e['operation']}": e for e in obj["metadata"].get("managedFields", [])}


def pool_config(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "lbipam.io/v1alpha1",
        "kind": "LoadBalancerIPPool",
        "metadata": {"name": "blue", "labels": {"team": "a"}},
        "spec": {"blocks": [{"cidr": "192.0.2.0/24"}], **spec},
    }


def stored(obj: dict[str, Any]) -> dict[str, Any]:
    """What the server core adds on create."""
    out: dict[str, Any] = json.loads(json.dumps(obj))
    out["metadata"].update(
        uid="u-1", resourceVersion="1", creationTimestamp="2025-01-02T03:04:05Z", generation=1
    )
    return out


def test_apply_creates_and_records_the_real_managed_fields_encoding() -> None:
    obj = server_side_apply(POOL, None, pool_config(disabled=False), "kubectl", False, now=T0)
    assert obj["spec"] == {"blocks": [{"cidr": "192.0.2.0/24"}], "disabled": False}
    assert obj["metadata"]["managedFields"] == [
        {
            "manager": "kubectl",
            "operation": "Apply",
            "apiVersion": "lbipam.io/v1alpha1",
            "time": "2025-01-02T03:04:05Z",
            "fieldsType": "FieldsV1",
            # blocks is an atomic list in the CRD schema: owned whole.
            "fieldsV1": {
                "f:metadata": {"f:labels": {"f:team": {}}},
                "f:spec": {"f:blocks": {}, "f:disabled": {}},
            },
        }
    ]


def test_reapplying_the_same_configuration_changes_nothing() -> None:
    first = stored(server_side_apply(POOL, None, pool_config(), "kubectl", False, now=T0))
    again = server_side_apply(POOL, first, pool_config(), "kubectl", False, now=T1)
    assert again == first


def test_a_field_dropped_from_the_configuration_is_removed() -> None:
    first = stored(
        server_side_apply(
            POOL, None, pool_config(disabled=True, avoidBuggyIPs=True), "kubectl", False, now=T0
        )
    )
    second = server_side_apply(POOL, first, pool_config(avoidBuggyIPs=True), "kubectl", False, now=T1)
    assert "disabled" not in second["spec"]
    assert second["metadata"]["uid"] == "u-1"
    assert entries(second)["kubectl/Apply"]["fieldsV1"]["f:spec"] == {"f:avoidBuggyIPs": {}, "f:blocks": {}}
    assert entries(second)["kubectl/Apply"]["time"] == "2025-01-02T03:09:05Z"


def test_a_dropped_field_another_manager_also_owns_stays() -> None:
    first = stored(server_side_apply(POOL, None, pool_config(disabled=True), "kubectl", False, now=T0))
    shared = server_side_apply(POOL, first, pool_config(disabled=True), "other", False, now=T0)
    second = server_side_apply(POOL, shared, pool_config(), "kubectl", False, now=T1)
    assert second["spec"]["disabled"] is True
    assert "f:disabled" in entries(second)["other/Apply"]["fieldsV1"]["f:spec"]


def test_two_managers_applying_equal_values_share_the_field() -> None:
    first = stored(server_side_apply(POOL, None, pool_config(disabled=True), "a", False, now=T0))
    second = server_side_apply(POOL, first, pool_config(disabled=True), "b", False, now=T1)
    assert entries(second)["a/Apply"]["fieldsV1"] == entries(second)["b/Apply"]["fieldsV1"]


def test_conflict_with_a_client_side_apply_manager_has_the_real_message() -> None:
    created = stored(record_update(SERVICE, None, service(), "kubectl-client-side-apply", now=T0))
    config = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"type": "ClusterIP"},
    }
    with pytest.raises(StatusError) as err:
        server_side_apply(SERVICE, created, config, "kubectl", False, now=T1)
    assert err.value.code == 409
    assert err.value.reason == "Conflict"
    assert (
        err.value.message
        == 'Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using v1: .spec.type'
    )
    status = err.value.to_status()
    assert status["details"]["causes"] == [
        {
            "reason": "FieldManagerConflict",
            "message": 'conflict with "kubectl-client-side-apply" using v1',
            "field": ".spec.type",
        }
    ]


def test_several_conflicts_are_listed_per_manager() -> None:
    created = stored(record_update(SERVICE, None, service(), "kubectl-client-side-apply", now=T0))
    config = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"type": "ClusterIP", "ports": [{"port": 80, "targetPort": 9090}]},
    }
    with pytest.raises(StatusError) as err:
        server_side_apply(SERVICE, created, config, "kubectl", False, now=T1)
    assert err.value.message == (
        'Apply failed with 2 conflicts: conflicts with "kubectl-client-side-apply" using v1:\n'
        '- .spec.ports[port=80,protocol="TCP"].targetPort\n'
        "- .spec.type"
    )


def test_force_takes_ownership_from_the_other_manager() -> None:
    created = stored(record_update(SERVICE, None, service(), "kubectl-client-side-apply", now=T0))
    config = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"type": "ClusterIP"},
    }
    out = server_side_apply(SERVICE, created, config, "kubectl", True, now=T1)
    assert out["spec"]["type"] == "ClusterIP"
    assert out["spec"]["ports"] == [P80]
    assert entries(out)["kubectl/Apply"]["fieldsV1"] == {"f:spec": {"f:type": {}}}
    assert "f:type" not in entries(out)["kubectl-client-side-apply/Update"]["fieldsV1"]["f:spec"]


def test_apply_keys_service_ports_by_port_and_defaulted_protocol() -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53}]},
    }
    out = server_side_apply(SERVICE, None, config, "m", False, now=T0)
    assert entries(out)["m/Apply"]["fieldsV1"]["f:spec"]["f:ports"] == {
        'k:{"port":53,"protocol":"TCP"}': {".": {}, "f:port": {}},
        'k:{"port":53,"protocol":"UDP"}': {".": {}, "f:port": {}, "f:protocol": {}},
    }


def test_apply_merges_map_lists_by_key_and_sets_by_value() -> None:
    live = stored(
        record_update(
            SERVICE, None, {**service(), "metadata": {"name": "web", "finalizers": ["a"]}}, "ctl", now=T0
        )
    )
    config = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "finalizers": ["b"]},
        "spec": {"ports": [{"port": 443, "protocol": "TCP"}]},
    }
    out = server_side_apply(SERVICE, live, config, "m", False, now=T1)
    assert out["metadata"]["finalizers"] == ["a", "b"]
    assert [p["port"] for p in out["spec"]["ports"]] == [80, 443]
    assert entries(out)["m/Apply"]["fieldsV1"]["f:metadata"] == {"f:finalizers": {'v:"b"': {}}}


APPLY_ERRORS = [
    (
        "managedFields-set",
        {**pool_config(), "metadata": {"name": "blue", "managedFields": []}},
        400,
        "metadata.managedFields must be nil",
    ),
    (
        "wrong-version",
        {**pool_config(), "apiVersion": "lbipam.io/v1"},
        400,
        "Incorrect version specified in apply patch. "
        "Specified patch version: lbipam.io/v1, expected: lbipam.io/v1alpha1",
    ),
    ("not-an-object", ["x"], 400, None),
]


@pytest.mark.parametrize(
    ("config", "code", "message"), [c[1:] for c in APPLY_ERRORS], ids=[c[0] for c in APPLY_ERRORS]
)
def test_apply_rejects_bad_configurations(config: Any, code: int, message: str | None) -> None:
    with pytest.raises(StatusError) as err:
        server_side_apply(POOL, None, config, "m", False, now=T0)
    assert err.value.code == code
    if message:
        assert err.value.message == message


def test_apply_on_the_main_resource_owns_no_status_and_on_status_only_status() -> None:
    config = {**pool_config(), "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    main = server_side_apply(POOL, None, config, "m", False, now=T0)
    assert "f:status" not in entries(main)["m/Apply"]["fieldsV1"]
    status = server_side_apply(POOL, stored(main), config, "s", False, "status", now=T1)
    status_entry = next(e for e in status["metadata"]["managedFields"] if e["manager"] == "s")
    assert status_entry["subresource"] == "status"
    assert list(status_entry["fieldsV1"]) == ["f:status"]


def test_patch_option_errors_are_the_real_422s() -> None:
    missing = missing_field_manager().to_status()
    assert missing["code"] == 422
    assert (
        missing["message"]
        == 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch'
    )
    assert missing["details"]["causes"] == [
        {
            "reason": "FieldValueRequired",
            "message": "Required value: is required for apply patch",
            "field": "fieldManager",
        }
    ]
    assert force_without_apply().message == (
        'PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be specified for non-apply patch'
    )


@pytest.mark.parametrize(
    ("field_manager", "agent", "expected"),
    [
        ("kubectl-patch", "kubectl/v1.32.4 (linux/amd64)", "kubectl-patch"),
        ("", "OpenAPI-Generator/36.1.0/python", "OpenAPI-Generator"),
    ],
    ids=["explicit", "from-user-agent"],
)
def test_manager_from_user_agent(field_manager: str, agent: str, expected: str) -> None:
    assert manager_from_user_agent(field_manager, agent) == expected


# --- managedFields of ordinary writes -----------------------------------------------------------------


def test_client_side_create_records_what_a_real_cluster_shows() -> None:
    body = service()
    body["metadata"]["labels"] = {"app": "web"}
    body["metadata"]["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": "{}"}
    out = record_update(SERVICE, None, body, "kubectl-client-side-apply", now=T0)
    assert out["metadata"]["managedFields"] == [
        {
            "manager": "kubectl-client-side-apply",
            "operation": "Update",
            "apiVersion": "v1",
            "time": "2025-01-02T03:04:05Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {
                    "f:annotations": {".": {}, "f:kubectl.kubernetes.io/last-applied-configuration": {}},
                    "f:labels": {".": {}, "f:app": {}},
                },
                "f:spec": {
                    "f:ports": {
                        ".": {},
                        'k:{"port":80,"protocol":"TCP"}': {
                            ".": {},
                            "f:port": {},
                            "f:protocol": {},
                            "f:targetPort": {},
                        },
                    },
                    "f:type": {},
                },
            },
        }
    ]


def test_status_writes_are_recorded_under_the_status_subresource() -> None:
    created = stored(record_update(SERVICE, None, service(), "ctl", now=T0))
    new = json.loads(json.dumps(created))
    new["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}
    out = record_update(SERVICE, created, new, "lbipam", subresource="status", now=T1)
    status_entry = entries(out)["lbipam/Update"]
    assert status_entry["subresource"] == "status"
    assert status_entry["fieldsV1"] == {"f:status": {"f:loadBalancer": {"f:ingress": {}}}}


def test_an_update_that_changes_nothing_keeps_managed_fields() -> None:
    created = stored(record_update(SERVICE, None, service(), "ctl", now=T0))
    assert record_update(SERVICE, created, json.loads(json.dumps(created)), "other", now=T1) == created


def test_an_update_takes_the_fields_it_changes() -> None:
    created = stored(record_update(SERVICE, None, service(), "ctl", now=T0))
    new = json.loads(json.dumps(created))
    new["spec"]["type"] = "ClusterIP"
    out = record_update(SERVICE, created, new, "kubectl-edit", now=T1)
    assert entries(out)["kubectl-edit/Update"]["fieldsV1"] == {"f:spec": {"f:type": {}}}
    assert "f:type" not in entries(out)["ctl/Update"]["fieldsV1"]["f:spec"]


def test_managed_fields_sent_by_the_client_are_kept() -> None:
    """kubectl's client-side-apply upgrade rewrites managedFields with a JSON patch."""
    created = stored(record_update(SERVICE, None, service(), "kubectl-client-side-apply", now=T0))
    new = json.loads(json.dumps(created))
    new["metadata"]["managedFields"][0].update(manager="kubectl", operation="Apply")
    out = record_update(SERVICE, created, new, "kubectl", now=T1)
    assert [(e["manager"], e["operation"]) for e in out["metadata"]["managedFields"]] == [
        ("kubectl", "Apply")
    ]


# --- tables --------------------------------------------------------------------------------------------

KUBECTL_GET_ACCEPT = ",".join(
    [
        "application/json;as=Table;v=v1;g=meta.k8s.io",
        "application/json;as=Table;v=v1beta1;g=meta.k8s.io",
        "application/json",
    ]
)


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (KUBECTL_GET_ACCEPT, True),
        ("application/json", False),
        (None, False),
        ("application/json;as=Table;v=v1beta1;g=meta.k8s.io", False),
    ],
    ids=["kubectl-get", "json", "none", "v1beta1-only"],
)
def test_wants_table(accept: str | None, expected: bool) -> None:
    assert tables.wants_table(accept) is expected


def test_service_table_has_kubectls_columns_and_cells() -> None:
    svc = service(clusterIP="10.96.0.10", selector={"app": "web"})
    svc["metadata"]["creationTimestamp"] = "2025-01-02T03:04:05Z"
    svc["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}
    table = tables.render_table(
        SERVICE, [svc], list_meta={"resourceVersion": "9"}, now=T0 + timedelta(minutes=5, seconds=3)
    )
    assert [c["name"] for c in table["columnDefinitions"]] == [
        "Name",
        "Type",
        "Cluster-IP",
        "External-IP",
        "Port(s)",
        "Age",
        "Selector",
    ]
    assert table["columnDefinitions"][-1]["priority"] == 1
    assert table["rows"][0]["cells"] == [
        "web",
        "LoadBalancer",
        "10.96.0.10",
        "192.0.2.1",
        "80/TCP",
        "5m3s",
        "app=web",
    ]
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    assert table["metadata"] == {"resourceVersion": "9"}


def test_pending_load_balancer_and_node_ports() -> None:
    svc = service()
    svc["spec"]["ports"] = [{"port": 80, "protocol": "TCP", "nodePort": 30080}]
    cells = tables.render_table(SERVICE, [svc], list_meta={}, now=T0)["rows"][0]["cells"]
    assert cells[3:5] == ["<pending>", "80:30080/TCP"]


def test_custom_resource_table_uses_the_printer_columns() -> None:
    pool = stored(pool_config(disabled=True))
    pool["spec"]["blocks"].append({"cidr": "198.51.100.0/24"})
    pool["status"] = {
        "conditions": [
            {"type": "Conflict", "status": "False", "reason": "NoOverlap"},
            {"type": "Ready", "status": "True", "reason": "Valid"},
        ],
        "ipv4": {"total": "508", "used": 3, "available": 505},
        "blocks": "192.0.2.0/24, 198.51.100.0/24",
    }
    table = tables.render_table(
        POOL, [pool], list_meta={}, include_object="Object", now=T0 + timedelta(hours=3)
    )
    names = [c["name"] for c in table["columnDefinitions"]]
    assert names == [
        "Name",
        "Ready",
        "Disabled",
        "Blocks",
        "IPv4 Total",
        "IPv4 Used",
        "IPv4 Available",
        "IPv6 Total",
        "IPv6 Used",
        "IPv6 Available",
        "Age",
    ]
    # Ready through a filter on the conditions; numbers in string columns printed as Go prints them.
    assert table["rows"][0]["cells"] == [
        "blue",
        "True",
        True,
        "192.0.2.0/24, 198.51.100.0/24",
        "508",
        "3",
        "505",
        None,
        None,
        None,
        "3h",
    ]
    assert table["rows"][0]["object"] == pool


def test_a_column_of_a_list_shows_its_first_item_as_go_prints_it() -> None:
    """Like apiextensions' table convertor: `[*]` yields every item, the cell is the first, and a
    map prints as Go prints one (why the lbpool column reads `status.blocks`, a string)."""
    blocks = [{"cidr": "192.0.2.0/24"}, {"start": "198.51.100.1", "stop": "198.51.100.9"}]
    found = tables.find({"spec": {"blocks": blocks}}, tables.parse_jsonpath(".spec.blocks[*]"))
    assert found == blocks
    assert tables.go_print(found[0]) == "map[cidr:192.0.2.0/24]"


def test_watch_tables_can_leave_out_the_headers() -> None:
    table = tables.render_table(
        POOL, [stored(pool_config())], list_meta={}, no_headers=True, include_object="None"
    )
    assert "columnDefinitions" not in table
    assert "object" not in table["rows"][0]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "<invalid>"),
        (-1, "0s"),
        (59, "59s"),
        (119, "119s"),
        (125, "2m5s"),
        (600, "10m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 60, "3h1m"),
        (9 * 3600, "9h"),
        (50 * 3600, "2d2h"),
        (10 * 86400, "10d"),
        (800 * 86400, "2y70d"),
        (9 * 365 * 86400, "9y"),
    ],
)
def test_human_duration_matches_apimachinery(seconds: int, text: str) -> None:
    assert tables.human_duration(timedelta(seconds=seconds)) == text


def test_jsonpath_subset() -> None:
    obj = {"a": {"b": [{"c": 1}, {"c": 2}], "m": {"x": "y"}}}
    assert tables.find(obj, tables.parse_jsonpath(".a.b[*].c")) == [1, 2]
    assert tables.find(obj, tables.parse_jsonpath(".a.b[-1].c")) == [2]
    assert tables.find(obj, tables.parse_jsonpath("{.a['m'].x}")) == ["y"]
    assert tables.find(obj, tables.parse_jsonpath(".a.missing")) == []


@pytest.mark.parametrize(
    ("path", "found"),
    [
        pytest.param('.c[?(@.type=="Ready")].status', ["True"], id="equal"),
        pytest.param(".c[?(@.type!='Ready')].status", ["False", "Unknown"], id="not-equal"),
        pytest.param('.c[?(@.type=="Gone")].status', [], id="no-match"),
        pytest.param(".c[?(@.n==2)].type", ["Conflict"], id="number"),
        pytest.param(".c[?(@.on==true)].type", ["Ready"], id="boolean"),
        pytest.param('.c[?(@.meta.kind=="x")].type', ["Exhausted"], id="nested-field"),
        pytest.param('.missing[?(@.type=="Ready")].status', [], id="no-list"),
    ],
)
def test_jsonpath_filters(path: str, found: list[Any]) -> None:
    """`[?(@.field==literal)]`, as printer columns read a condition (kube-apiserver's jsonpath)."""
    obj = {
        "c": [
            {"type": "Ready", "status": "True", "on": True},
            {"type": "Conflict", "status": "False", "n": 2},
            {"type": "Exhausted", "status": "Unknown", "meta": {"kind": "x"}},
        ]
    }
    assert tables.find(obj, tables.parse_jsonpath(path)) == found


# --- discovery and OpenAPI ---------------------------------------------------------------------------------

ALL_TYPES = [*BUILTIN_TYPES, POOL]


def test_version_maps_to_kubectl_1_32() -> None:
    info = discovery.version_info()
    assert (info["major"], info["minor"]) == ("1", "32")
    assert info["gitVersion"].startswith("v1.32.")
    assert set(info) >= {"gitCommit", "gitTreeState", "buildDate", "goVersion", "compiler", "platform"}


def test_group_list_orders_groups_and_names_preferred_versions() -> None:
    groups = discovery.api_group_list(ALL_TYPES)["groups"]
    assert [g["name"] for g in groups] == [
        "events.k8s.io",
        "apiextensions.k8s.io",
        "coordination.k8s.io",
        "discovery.k8s.io",
        "lbipam.io",
    ]
    assert groups[-1]["preferredVersion"] == {"groupVersion": "lbipam.io/v1alpha1", "version": "v1alpha1"}


def test_resource_list_has_status_subresources_and_short_names() -> None:
    doc = discovery.api_resource_list("lbipam.io/v1alpha1", ALL_TYPES)
    assert doc["kind"] == "APIResourceList"
    by_name = {r["name"]: r for r in doc["resources"]}
    assert by_name["loadbalancerippools"]["shortNames"] == ["lbpool"]
    assert by_name["loadbalancerippools"]["namespaced"] is False
    assert by_name["loadbalancerippools/status"]["verbs"] == ["get", "patch", "update"]
    core = {r["name"] for r in discovery.api_resource_list("v1", ALL_TYPES)["resources"]}
    assert {"services", "services/status", "nodes/status", "namespaces"} <= core


def test_aggregated_discovery_document() -> None:
    assert discovery.wants_aggregated(
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;"
        "g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
    )
    assert not discovery.wants_aggregated("application/json, */*")
    doc = discovery.aggregated_discovery(ALL_TYPES, core=False)
    assert doc["apiVersion"] == "apidiscovery.k8s.io/v2"
    lbipam = next(i for i in doc["items"] if i["metadata"]["name"] == "lbipam.io")
    pool = next(r for r in lbipam["versions"][0]["resources"] if r["resource"] == "loadbalancerippools")
    assert pool["scope"] == "Cluster"
    assert pool["responseKind"] == {"group": "lbipam.io", "version": "v1alpha1", "kind": "LoadBalancerIPPool"}
    assert pool["subresources"][0]["subresource"] == "status"
    core = discovery.aggregated_discovery(ALL_TYPES, core=True)["items"]
    assert [v["version"] for v in core[0]["versions"]] == ["v1"]


def test_openapi_v3_lets_kubectl_validate_on_the_server_and_explain() -> None:
    index = openapi.openapi_v3_index(ALL_TYPES)["paths"]
    assert {"api/v1", "apis/lbipam.io/v1alpha1"} <= set(index)
    assert index["apis/lbipam.io/v1alpha1"]["serverRelativeURL"].startswith(
        "/openapi/v3/apis/lbipam.io/v1alpha1?hash="
    )
    doc = openapi.openapi_v3_group("lbipam.io/v1alpha1", ALL_TYPES)
    assert doc is not None
    op = doc["paths"]["/apis/lbipam.io/v1alpha1/loadbalancerippools/{name}"]["patch"]
    assert op["x-kubernetes-group-version-kind"] == {
        "group": "lbipam.io",
        "kind": "LoadBalancerIPPool",
        "version": "v1alpha1",
    }
    assert "fieldValidation" in [p["name"] for p in op["parameters"]]
    assert "application/strategic-merge-patch+json" not in op["requestBody"]["content"]
    schema = doc["components"]["schemas"]["io.lbipam.v1alpha1.LoadBalancerIPPool"]
    assert schema["x-kubernetes-group-version-kind"] == [
        {"group": "lbipam.io", "kind": "LoadBalancerIPPool", "version": "v1alpha1"}
    ]
    assert "blocks" in schema["properties"]["spec"]["properties"]
    assert openapi.openapi_v3_group("nothere/v1", ALL_TYPES) is None


def test_openapi_built_in_schemas_carry_the_patch_strategies() -> None:
    doc = openapi.openapi_v3_group("v1", ALL_TYPES)
    assert doc is not None
    ports = doc["components"]["schemas"]["io.k8s.api.core.v1.ServiceSpec"]["properties"]["ports"]
    assert (ports["x-kubernetes-patch-merge-key"], ports["x-kubernetes-patch-strategy"]) == ("port", "merge")
    op = doc["paths"]["/api/v1/namespaces/{namespace}/services/{name}"]["patch"]
    assert "application/strategic-merge-patch+json" in op["requestBody"]["content"]
    for name, schema in doc["components"]["schemas"].items():
        if name.startswith("io.k8s.api.core.v1.") and name.rsplit(".", 1)[-1] in {
            "Service",
            "Node",
            "Namespace",
        }:
            assert schema["x-kubernetes-group-version-kind"][0]["kind"] == name.rsplit(".", 1)[-1]


def test_openapi_v2_is_swagger_with_every_kind() -> None:
    doc = openapi.openapi_v2(ALL_TYPES)
    assert doc["swagger"] == "2.0"
    assert "io.lbipam.v1alpha1.LoadBalancerIPPool" in doc["definitions"]
    pool = doc["definitions"]["io.lbipam.v1alpha1.LoadBalancerIPPool"]
    assert "oneOf" not in json.dumps(pool)  # v2 cannot say oneOf: the real server drops it too
    assert "/api/v1/namespaces/{namespace}/services/{name}/status" in doc["paths"]
