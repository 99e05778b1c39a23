"""EventRecorder against the embedded API server: Events through events.k8s.io/v1 (also seen
through core/v1), repeats folded into a series, and recording that never fails the caller."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from lbipam.k8s.client import Kube, connect
from lbipam.k8s.events import CONTROLLER, EventRecorder
from lbipam.k8s.resources import CORE_EVENTS, EVENTS, LBPOOLS, SERVICES


@pytest.fixture
async def kube(apiserver: Any, kubeconfig: Path) -> AsyncIterator[Kube]:
    client = await connect(str(kubeconfig))
    yield client
    await client.close()


@pytest.fixture
async def web(kube: Kube) -> dict[str, Any]:
    body = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
    }
    return await kube.create(SERVICES, body)


class Clock:
    """A settable clock for the recorder (series windows are minutes long)."""

    def __init__(self) -> None:
        self.now = datetime(2024, 5, 1, 10, 0, 0, 250000, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


async def events_about(kube: Kube, name: str) -> list[dict[str, Any]]:
    listing = await kube.list_all(EVENTS, namespace="default")
    return [e for e in listing.items if e["regarding"]["name"] == name]


async def test_an_event_is_written_through_events_k8s_io(kube: Kube, web: dict[str, Any]) -> None:
    clock = Clock()
    recorder = EventRecorder(kube, CONTROLLER, "controller-0", clock=clock)
    written = await recorder.record(web, "IPAllocated", "192.0.2.7 from pool blue", action="Allocate")
    assert written is not None
    [event] = await events_about(kube, "web")
    assert event["reason"] == "IPAllocated"
    assert event["note"] == "192.0.2.7 from pool blue"
    assert event["type"] == "Normal"
    assert event["action"] == "Allocate"
    assert event["reportingController"] == "lbipam.io/controller"
    assert event["reportingInstance"] == "controller-0"
    assert event["eventTime"] == "2024-05-01T10:00:00.250000Z"
    assert event["regarding"]["kind"] == "Service"
    assert event["regarding"]["uid"] == web["metadata"]["uid"]
    assert "series" not in event


async def test_the_same_event_is_visible_through_core_v1(kube: Kube, web: dict[str, Any]) -> None:
    recorder = EventRecorder(kube, CONTROLLER, "controller-0")
    await recorder.record(web, "AllocationFailed", "no pool matches", type="Warning")
    listing = await kube.list_all(CORE_EVENTS, namespace="default")
    [event] = [e for e in listing.items if e.get("involvedObject", {}).get("name") == "web"]
    assert (event["reason"], event["message"], event["type"]) == (
        "AllocationFailed",
        "no pool matches",
        "Warning",
    )


async def test_a_repeat_becomes_a_series(kube: Kube, web: dict[str, Any]) -> None:
    clock = Clock()
    recorder = EventRecorder(kube, CONTROLLER, "controller-0", clock=clock)
    await recorder.record(web, "AllocationFailed", "pool blue is exhausted", type="Warning")
    clock.now += timedelta(seconds=30)
    await recorder.record(web, "AllocationFailed", "pool blue is exhausted", type="Warning")
    clock.now += timedelta(seconds=30)
    await recorder.record(web, "AllocationFailed", "pool blue is exhausted", type="Warning")
    [event] = await events_about(kube, "web")
    assert event["series"]["count"] == 3
    assert event["series"]["lastObservedTime"] == "2024-05-01T10:01:00.250000Z"
    assert event["eventTime"] == "2024-05-01T10:00:00.250000Z"


async def test_a_different_note_or_an_old_series_starts_a_new_event(kube: Kube, web: dict[str, Any]) -> None:
    clock = Clock()
    recorder = EventRecorder(kube, CONTROLLER, "controller-0", clock=clock)
    await recorder.record(web, "IPAllocated", "192.0.2.7")
    await recorder.record(web, "IPAllocated", "192.0.2.8")
    clock.now += timedelta(minutes=7)
    await recorder.record(web, "IPAllocated", "192.0.2.7")
    notes = sorted(e["note"] for e in await events_about(kube, "web"))
    assert notes == ["192.0.2.7", "192.0.2.7", "192.0.2.8"]


async def test_events_about_cluster_scoped_objects_go_to_default(kube: Kube, lbipam_crds: Any) -> None:
    pool = await kube.create(
        LBPOOLS,
        {
            "apiVersion": "lbipam.io/v1alpha1",
            "kind": "LoadBalancerIPPool",
            "metadata": {"name": "blue"},
            "spec": {"blocks": [{"cidr": "192.0.2.0/24"}]},
        },
    )
    recorder = EventRecorder(kube, CONTROLLER, "controller-0")
    assert await recorder.record(pool, "PoolOverlap", "overlaps pool red", type="Warning") is not None
    [event] = await events_about(kube, "blue")
    assert event["regarding"]["kind"] == "LoadBalancerIPPool"
    assert event["regarding"]["apiVersion"] == "lbipam.io/v1alpha1"


async def test_recording_never_fails_the_caller(tmp_path: Path, web: dict[str, Any]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = tmp_path / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: c, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n"
        "users: [{name: u, user: {}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    async with await connect(str(config)) as unreachable:
        recorder = EventRecorder(unreachable, CONTROLLER, "controller-0")
        assert await recorder.record(web, "IPAllocated", "192.0.2.7") is None
        assert await recorder.record(web, "IPAllocated", "x", type="Fatal") is None
        assert await recorder.record({"metadata": {}}, "IPAllocated", "no name") is None


async def test_a_rejected_event_is_logged_not_raised(kube: Kube, web: dict[str, Any], apiserver: Any) -> None:
    recorder = EventRecorder(kube, CONTROLLER, "controller-0")
    apiserver.faults.fail_next_writes(1, code=500)
    assert await recorder.record(web, "IPAllocated", "192.0.2.7") is None
    assert await recorder.record(web, "IPAllocated", "192.0.2.7") is not None
