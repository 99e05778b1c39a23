"""Events on the embedded API server: one object seen through events.k8s.io/v1 and core/v1."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from tests.helpers import api_client

NS = "default"


@pytest.fixture
async def api(kubeconfig: Path) -> AsyncIterator[Any]:
    async with api_client(kubeconfig) as api:
        yield api


def new_event(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": name},
        "eventTime": "2024-05-01T10:00:00.000001Z",
        "reportingController": "lbipam.io/controller",
        "reportingInstance": "controller-0",
        "action": "Allocate",
        "reason": "IPAllocated",
        "type": "Normal",
        "note": "192.0.2.10 from pool p",
        "regarding": {"apiVersion": "v1", "kind": "Service", "namespace": NS, "name": "web", "uid": "u1"},
        **extra,
    }


async def test_an_events_v1_event_is_a_core_v1_event(api: Any) -> None:
    events, core = client.EventsV1Api(api), client.CoreV1Api(api)
    made = await events.create_namespaced_event(NS, new_event("web.1"))
    assert made.note == "192.0.2.10 from pool p"
    legacy = await core.read_namespaced_event("web.1", NS)
    assert legacy.message == "192.0.2.10 from pool p"
    assert legacy.involved_object.name == "web"
    assert legacy.reporting_component == "lbipam.io/controller"
    assert legacy.metadata.resource_version == made.metadata.resource_version
    by_field = await core.list_namespaced_event(
        NS, field_selector="involvedObject.name=web,reason=IPAllocated"
    )
    assert [e.metadata.name for e in by_field.items] == ["web.1"]
    listed = await events.list_namespaced_event(NS)
    assert [(e.regarding.kind, e.reason) for e in listed.items] == [("Service", "IPAllocated")]


async def test_a_core_v1_event_reads_through_events_v1(api: Any) -> None:
    core = client.CoreV1Api(api)
    legacy = {
        "metadata": {"name": "old.1"},
        "involvedObject": {"kind": "Service", "namespace": NS, "name": "web"},
        "reason": "Scheduled",
        "message": "hello",
        "type": "Normal",
        "count": 3,
        "source": {"component": "tester"},
        "firstTimestamp": "2024-05-01T10:00:00Z",
    }
    await core.create_namespaced_event(NS, legacy)
    raw = await client.EventsV1Api(api).read_namespaced_event("old.1", NS, _preload_content=False)
    seen = json.loads(await raw.read())
    assert seen["apiVersion"] == "events.k8s.io/v1"
    assert seen["note"] == "hello"
    assert seen["deprecatedCount"] == 3
    assert seen["deprecatedSource"] == {"component": "tester"}
    assert seen["regarding"]["name"] == "web"
    assert "message" not in seen
    assert "involvedObject" not in seen


@pytest.mark.parametrize(
    ("drop", "field"),
    [
        pytest.param("eventTime", "eventTime", id="event-time"),
        pytest.param("reportingController", "reportingController", id="controller"),
        pytest.param("reportingInstance", "reportingInstance", id="instance"),
        pytest.param("action", "action", id="action"),
        pytest.param("reason", "reason", id="reason"),
    ],
)
async def test_events_v1_required_fields(api: Any, drop: str, field: str) -> None:
    body = new_event("bad")
    del body[drop]
    with pytest.raises(ApiException) as info:
        await client.EventsV1Api(api).create_namespaced_event(NS, body)
    assert info.value.status == 422
    assert field in [c["field"] for c in json.loads(info.value.body)["details"]["causes"]]


async def test_core_event_namespace_must_match_the_involved_object(api: Any) -> None:
    body = {
        "metadata": {"name": "x"},
        "involvedObject": {"kind": "Service", "namespace": "kube-system", "name": "w"},
    }
    with pytest.raises(ApiException) as info:
        await client.CoreV1Api(api).create_namespaced_event(NS, body)
    assert json.loads(info.value.body)["details"]["causes"][0]["field"] == "involvedObject.namespace"


async def test_events_about_cluster_scoped_objects_live_in_default(api: Any) -> None:
    body = new_event(
        "pool.1", regarding={"apiVersion": "lbipam.io/v1alpha1", "kind": "LoadBalancerIPPool", "name": "p"}
    )
    made = await client.EventsV1Api(api).create_namespaced_event(NS, body)
    assert made.regarding.namespace is None
