"""The protobuf body decoder (`wire/protobuf.py`): kubectl's own bytes and every served kind.

The golden files in tests/data/kubectl-protobuf/ were captured from the stock kubectl (see
capture.py there): each `.pb` is a body kubectl sent, each `.json` is the same Go object written by
Go's encoding/json, so the decoder must produce exactly that. The other kinds are built here with
the decoder's own message classes, and the expected JSON is what Go's types would write.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from lbipam.apiserver.kinds import gotypes
from lbipam.apiserver.wire import protobuf
from tests.protobuf_harness import CORE, GOLDEN, body, message


@pytest.mark.parametrize("case", sorted(p.stem for p in GOLDEN.glob("*.pb")))
def test_kubectl_bodies_decode_to_the_json_go_writes(case: str) -> None:
    expected = json.loads((GOLDEN / f"{case}.json").read_text())
    decoded = protobuf.decode((GOLDEN / f"{case}.pb").read_bytes(), "", "v1", expected["kind"])
    assert decoded == expected


def test_secret_bytes_are_base64_and_not_utf8_bytes_survive() -> None:
    decoded = protobuf.decode((GOLDEN / "secret-from-file.pb").read_bytes(), "", "v1", "Secret")
    assert decoded["type"] == "example.com/blob"
    assert base64.b64decode(decoded["data"]["key.bin"]) == bytes(range(256))


KINDS = [
    pytest.param(
        CORE + "Node",
        {
            "metadata": {"name": "n1", "creationTimestamp": {}},
            "spec": {
                "podCIDRs": ["10.244.1.0/24"],
                "unschedulable": False,
                "taints": [{"key": "k", "effect": "NoSchedule", "timeAdded": {"seconds": 1700000000}}],
            },
            "status": {
                "addresses": [{"type": "InternalIP", "address": "192.0.2.10"}],
                "capacity": {"cpu": {"string": "4"}, "memory": {"string": "8Gi"}},
                "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": {}}],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "n1", "creationTimestamp": None},
            "spec": {
                "podCIDRs": ["10.244.1.0/24"],
                "taints": [{"key": "k", "effect": "NoSchedule", "timeAdded": "2023-11-14T22:13:20Z"}],
            },
            "status": {
                "addresses": [{"type": "InternalIP", "address": "192.0.2.10"}],
                "capacity": {"cpu": "4", "memory": "8Gi"},
                "conditions": [
                    {"type": "Ready", "status": "True", "lastHeartbeatTime": None, "lastTransitionTime": None}
                ],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
                "nodeInfo": dict.fromkeys(
                    (
                        "machineID",
                        "systemUUID",
                        "bootID",
                        "kernelVersion",
                        "osImage",
                        "containerRuntimeVersion",
                        "kubeletVersion",
                        "kubeProxyVersion",
                        "operatingSystem",
                        "architecture",
                    ),
                    "",
                ),
            },
        },
        id="node: quantities, times, structs always written",
    ),
    pytest.param(
        CORE + "Service",
        {
            "metadata": {"name": "web"},
            "spec": {
                "type": "LoadBalancer",
                "allocateLoadBalancerNodePorts": False,
                "healthCheckNodePort": 0,
                "ports": [
                    {"port": 80, "targetPort": {"type": 0, "intVal": 8080}},
                    {"name": "h", "port": 81, "targetPort": {"type": 1, "strVal": "http"}},
                ],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "creationTimestamp": None},
            "spec": {
                "type": "LoadBalancer",
                "allocateLoadBalancerNodePorts": False,
                "ports": [{"port": 80, "targetPort": 8080}, {"name": "h", "port": 81, "targetPort": "http"}],
            },
            "status": {"loadBalancer": {}},
        },
        id="service: a pointer false is kept, int-or-string both ways",
    ),
    pytest.param(
        CORE + "Event",
        {
            "metadata": {"name": "e1", "namespace": "default"},
            "involvedObject": {"kind": "Service", "name": "web"},
            "reason": "Allocated",
            "message": "got 192.0.2.1",
            "count": 2,
            "type": "Normal",
            "firstTimestamp": {"seconds": 1700000000},
            "eventTime": {"seconds": 1700000000, "nanos": 123456789},
            "series": {"count": 2, "lastObservedTime": {"seconds": 1700000001}},
        },
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "e1", "namespace": "default", "creationTimestamp": None},
            "involvedObject": {"kind": "Service", "name": "web"},
            "reason": "Allocated",
            "message": "got 192.0.2.1",
            "source": {},
            "firstTimestamp": "2023-11-14T22:13:20Z",
            "lastTimestamp": None,
            "count": 2,
            "type": "Normal",
            "eventTime": "2023-11-14T22:13:20.123456Z",
            "series": {"count": 2, "lastObservedTime": "2023-11-14T22:13:21.000000Z"},
            "reportingComponent": "",
            "reportingInstance": "",
        },
        id="core event: micro times, fields without omitempty",
    ),
    pytest.param(
        "k8s.io.api.events.v1.Event",
        {
            "metadata": {"name": "e2"},
            "regarding": {"kind": "Node", "name": "n1"},
            "note": "hi",
            "reportingController": "lbipam.io/controller",
            "deprecatedCount": 0,
        },
        {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": "e2", "creationTimestamp": None},
            "eventTime": None,
            "reportingController": "lbipam.io/controller",
            "regarding": {"kind": "Node", "name": "n1"},
            "note": "hi",
            "deprecatedSource": {},
            "deprecatedFirstTimestamp": None,
            "deprecatedLastTimestamp": None,
        },
        id="events.k8s.io event",
    ),
    pytest.param(
        "k8s.io.api.discovery.v1.EndpointSlice",
        {
            "metadata": {"name": "web-1"},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["192.0.2.5"], "conditions": {"ready": False}, "nodeName": "n1"}],
            "ports": [{"name": "", "port": 80, "protocol": "TCP"}],
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": "web-1", "creationTimestamp": None},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["192.0.2.5"], "conditions": {"ready": False}, "nodeName": "n1"}],
            "ports": [{"name": "", "port": 80, "protocol": "TCP"}],
        },
        id="endpointslice: ready false and an empty port name kept (pointers)",
    ),
    pytest.param(
        "k8s.io.api.coordination.v1.Lease",
        {
            "metadata": {"name": "lbipam"},
            "spec": {
                "holderIdentity": "a",
                "leaseDurationSeconds": 15,
                "renewTime": {"seconds": 1700000000, "nanos": 5000},
            },
        },
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "lbipam", "creationTimestamp": None},
            "spec": {
                "holderIdentity": "a",
                "leaseDurationSeconds": 15,
                "renewTime": "2023-11-14T22:13:20.000005Z",
            },
        },
        id="lease",
    ),
    pytest.param(
        gotypes.DELETE_OPTIONS,
        {
            "gracePeriodSeconds": 0,
            "propagationPolicy": "Foreground",
            "dryRun": ["All"],
            "preconditions": {"uid": "u-1"},
        },
        {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "gracePeriodSeconds": 0,
            "propagationPolicy": "Foreground",
            "dryRun": ["All"],
            "preconditions": {"uid": "u-1"},
        },
        id="delete options: grace period zero kept",
    ),
]


@pytest.mark.parametrize(("name", "fields", "expected"), KINDS)
def test_each_served_kind_decodes_as_go_writes_it(name: str, fields: dict[str, Any], expected: Any) -> None:
    api_version, kind = expected["apiVersion"], expected["kind"]
    group, _, version = api_version.rpartition("/")
    assert protobuf.decode(body(name, fields, api_version, kind), group, version, kind) == expected


def test_custom_resource_definition_schema_types() -> None:
    crd = gotypes.CRD + "CustomResourceDefinition"
    schema = {
        "type": "object",
        "ref": "#/x",
        "xKubernetesPreserveUnknownFields": True,
        "properties": {
            "size": {"type": "integer", "maximum": 10.0, "default": {"raw": "NQ=="}},
            "tags": {"type": "array", "items": {"schema": {"type": "string"}}},
            "labels": {"type": "object", "additionalProperties": {"allows": True}},
        },
    }
    fields = {
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [
                {"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": schema}}
            ],
        },
    }
    decoded = protobuf.decode(body(crd, fields, "apiextensions.k8s.io/v1"), "apiextensions.k8s.io", "v1", "")
    got = decoded["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert got == {
        "type": "object",
        "$ref": "#/x",
        "x-kubernetes-preserve-unknown-fields": True,
        "properties": {
            "size": {"type": "integer", "maximum": 10.0, "default": 5},
            "tags": {"type": "array", "items": {"type": "string"}},
            "labels": {"type": "object", "additionalProperties": True},
        },
    }
    assert decoded["spec"]["names"] == {"plural": "widgets", "kind": "Widget"}


def test_the_url_names_the_kind_when_the_envelope_does_not() -> None:
    raw = message(CORE + "ConfigMap", {"metadata": {"name": "c"}, "data": {"a": "b"}}).SerializeToString()
    envelope = protobuf.message_class(protobuf.UNKNOWN)()
    envelope.raw = raw
    decoded = protobuf.decode(protobuf.MAGIC + envelope.SerializeToString(), "", "v1", "ConfigMap")
    assert decoded == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "creationTimestamp": None},
        "data": {"a": "b"},
    }
