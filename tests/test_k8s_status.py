"""StatusWriter against the embedded API server (writes only when changed, retries through
injected faults), and the pure helpers it relies on: set_condition and the merge-patch check."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from lbipam.core.conditions import ConditionError, find_condition, set_condition
from lbipam.k8s.client import Kube, connect
from lbipam.k8s.errors import TemporaryError
from lbipam.k8s.resources import LBPOOLS, SERVICES
from lbipam.k8s.status import (
    CONTROLLER_FIELD_MANAGER,
    SPEAKER_FIELD_MANAGER,
    StatusWriter,
    changes,
    merge_patch,
)

# ---- pure: set_condition (metav1.Condition semantics) and the merge-patch comparison -----------

T0 = "2024-05-01T10:00:00Z"
T1 = datetime(2024, 5, 1, 11, 0, tzinfo=UTC)
T1_TEXT = "2024-05-01T11:00:00Z"
READY_TRUE = {
    "type": "Ready",
    "status": "True",
    "observedGeneration": 1,
    "reason": "Valid",
    "message": "ok",
    "lastTransitionTime": T0,
}
OTHER = {
    "type": "Conflict",
    "status": "False",
    "reason": "NoOverlap",
    "message": "",
    "lastTransitionTime": T0,
}


@pytest.mark.parametrize(
    ("before", "args", "expected_time", "expected"),
    [
        pytest.param([], ("Ready", "True", "Valid", "ok", 1), T1_TEXT, None, id="new-condition-gets-now"),
        pytest.param(
            [READY_TRUE], ("Ready", "True", "Valid", "ok", 1), T0, [READY_TRUE], id="unchanged-equal"
        ),
        pytest.param(
            [READY_TRUE], ("Ready", "True", "Other", "new words", 2), T0, None, id="same-status-keeps-time"
        ),
        pytest.param(
            [READY_TRUE], ("Ready", "False", "Invalid", "bad", 2), T1_TEXT, None, id="flip-gets-now"
        ),
        pytest.param(
            [READY_TRUE], ("Ready", "Unknown", "Pending", "", 2), T1_TEXT, None, id="to-unknown-gets-now"
        ),
        pytest.param(
            [OTHER, READY_TRUE],
            ("Ready", "True", "Valid", "ok", 1),
            T0,
            [OTHER, READY_TRUE],
            id="keeps-others",
        ),
    ],
)
def test_set_condition_keeps_last_transition_time_unless_status_changes(
    before: list[dict[str, Any]],
    args: tuple[str, str, str, str, int],
    expected_time: str,
    expected: list[dict[str, Any]] | None,
) -> None:
    snapshot = [dict(c) for c in before]
    after = set_condition(before, *args, now=T1)
    assert before == snapshot, "the input list is not modified"
    ready = find_condition(after, args[0])
    assert ready is not None
    assert ready["lastTransitionTime"] == expected_time
    assert (ready["status"], ready["reason"], ready["message"], ready["observedGeneration"]) == args[1:]
    assert [c["type"] for c in after] == [c["type"] for c in before] or not before
    if expected is not None:
        assert after == expected


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("Ready", "Yes", "Valid", "", 1), "status"),
        (("Ready", "True", "", "", 1), "reason"),
        (("Ready", "True", "has space", "", 1), "reason"),
        (("bad type!", "True", "Valid", "", 1), "type"),
        (("Ready", "True", "Valid", "", -1), "observedGeneration"),
    ],
    ids=["status-not-bool", "empty-reason", "reason-with-space", "bad-type", "negative-generation"],
)
def test_set_condition_rejects_what_the_api_server_would(
    args: tuple[str, str, str, str, int], field: str
) -> None:
    with pytest.raises(ConditionError) as info:
        set_condition([], *args, now=T1)
    assert info.value.field == field


def test_set_condition_needs_an_aware_now() -> None:
    with pytest.raises(ConditionError, match="timezone"):
        set_condition([], "Ready", "True", "Valid", "", 1, now=datetime(2024, 1, 1))


@pytest.mark.parametrize(
    ("current", "fragment", "changed"),
    [
        ({"a": 1}, {"a": 1}, False),
        ({"a": 1}, {"a": 2}, True),
        ({"a": {"b": 1, "c": 2}}, {"a": {"b": 1}}, False),
        ({"a": 1}, {"b": None}, False),
        ({"a": 1, "b": 2}, {"b": None}, True),
        ({"l": [1, 2]}, {"l": [1, 2]}, False),
        ({"l": [1, 2]}, {"l": [2, 1]}, True),
        (None, {"a": 1}, True),
        (None, {}, False),
    ],
    ids=[
        "same",
        "differs",
        "nested-subset",
        "delete-absent",
        "delete-present",
        "list-same",
        "list-order",
        "none",
        "empty",
    ],
)
def test_changes_compares_the_merge_patch_result(
    current: Any, fragment: dict[str, Any], changed: bool
) -> None:
    assert changes(current, fragment) is changed


def test_merge_patch_follows_rfc_7386() -> None:
    target = {"a": "b", "c": {"d": "e", "f": "g"}}
    assert merge_patch(target, {"a": "z", "c": {"f": None}}) == {"a": "z", "c": {"d": "e"}}
    assert target == {"a": "b", "c": {"d": "e", "f": "g"}}


# ---- against the embedded API server ------------------------------------------------------------


@pytest.fixture
async def kube(apiserver: Any, kubeconfig: Path) -> AsyncIterator[Kube]:
    client = await connect(str(kubeconfig))
    yield client
    await client.close()


@pytest.fixture
async def blue(kube: Kube, lbipam_crds: Any) -> dict[str, Any]:
    body = {
        "apiVersion": "lbipam.io/v1alpha1",
        "kind": "LoadBalancerIPPool",
        "metadata": {"name": "blue", "labels": {"tier": "gold"}},
        "spec": {"blocks": [{"cidr": "192.0.2.0/24"}]},
    }
    return await kube.create(LBPOOLS, body)


USAGE = {"ipv4": {"total": "254", "used": "1", "available": "253"}}


async def test_a_changed_status_is_written_once_and_then_skipped(kube: Kube, blue: dict[str, Any]) -> None:
    writer = StatusWriter(kube, CONTROLLER_FIELD_MANAGER)
    written = await writer.patch_status(LBPOOLS, blue, USAGE)
    assert written is not None
    assert written["status"]["ipv4"] == USAGE["ipv4"]
    assert (writer.writes, writer.skipped) == (1, 0)

    again = await writer.patch_status(LBPOOLS, written, USAGE)
    assert again is None
    assert (writer.writes, writer.skipped) == (1, 1)
    on_server = await kube.get(LBPOOLS, "blue")
    assert on_server["metadata"]["resourceVersion"] == written["metadata"]["resourceVersion"], (
        "no write reached it"
    )


async def test_conditions_are_rewritten_only_when_they_change(kube: Kube, blue: dict[str, Any]) -> None:
    writer = StatusWriter(kube, CONTROLLER_FIELD_MANAGER)
    conditions = set_condition([], "Ready", "True", "Valid", "", 1, now=T1)
    first = await writer.patch_status(LBPOOLS, blue, {"conditions": conditions})
    assert first is not None
    later = datetime(2024, 5, 2, tzinfo=UTC)
    same = set_condition(first["status"]["conditions"], "Ready", "True", "Valid", "", 1, now=later)
    assert await writer.patch_status(LBPOOLS, first, {"conditions": same}) is None
    flipped = set_condition(
        first["status"]["conditions"], "Ready", "False", "Invalid", "bad block", 2, now=later
    )
    second = await writer.patch_status(LBPOOLS, first, {"conditions": flipped})
    assert second is not None
    ready = find_condition(second["status"]["conditions"], "Ready")
    assert ready is not None
    assert (ready["status"], ready["lastTransitionTime"]) == ("False", "2024-05-02T00:00:00Z")
    assert writer.writes == 2


async def test_the_field_manager_is_recorded(kube: Kube, blue: dict[str, Any]) -> None:
    writer = StatusWriter(kube, SPEAKER_FIELD_MANAGER)
    written = await writer.patch_status(LBPOOLS, blue, USAGE)
    assert written is not None
    managers = {entry.get("manager") for entry in written["metadata"].get("managedFields") or []}
    assert SPEAKER_FIELD_MANAGER in managers


@pytest.mark.parametrize("code", [409, 429, 500])
async def test_status_converges_through_injected_failures(
    kube: Kube, apiserver: Any, blue: dict[str, Any], code: int
) -> None:
    writer = StatusWriter(kube, CONTROLLER_FIELD_MANAGER, backoff_cap=0.05)
    apiserver.faults.fail_next_writes(3, code=code)
    written = await writer.patch_status(LBPOOLS, blue, USAGE)
    assert written is not None
    assert (await kube.get(LBPOOLS, "blue"))["status"]["ipv4"] == USAGE["ipv4"]


async def test_retries_are_bounded(kube: Kube, apiserver: Any, blue: dict[str, Any]) -> None:
    writer = StatusWriter(kube, CONTROLLER_FIELD_MANAGER, attempts=2, backoff_cap=0.05)
    apiserver.faults.fail_next_writes(5, code=500)
    with pytest.raises(TemporaryError):
        await writer.patch_status(LBPOOLS, blue, USAGE)


async def test_metadata_is_patched_only_when_it_changes(kube: Kube, blue: dict[str, Any]) -> None:
    writer = StatusWriter(kube, CONTROLLER_FIELD_MANAGER)
    assert await writer.patch_metadata(LBPOOLS, blue, labels={"tier": "gold"}) is None
    annotated = await writer.patch_metadata(LBPOOLS, blue, annotations={"lbipam.io/allocated-from": "blue"})
    assert annotated is not None
    assert annotated["metadata"]["annotations"] == {"lbipam.io/allocated-from": "blue"}
    assert (
        await writer.patch_metadata(LBPOOLS, annotated, annotations={"lbipam.io/allocated-from": "blue"})
        is None
    )
    removed = await writer.patch_metadata(LBPOOLS, annotated, annotations={"lbipam.io/allocated-from": None})
    assert removed is not None
    assert not removed["metadata"].get("annotations")
    assert writer.writes == 2


async def test_a_service_status_write_through_the_builtin_kind(kube: Kube) -> None:
    svc = await kube.create(
        SERVICES,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
        },
    )
    writer = StatusWriter(kube, CONTROLLER_FIELD_MANAGER)
    # ipMode spelled out: the server defaults it to VIP, and a fragment without it would never
    # compare equal to the stored status (merge patch replaces lists whole).
    fragment = {"loadBalancer": {"ingress": [{"ip": "192.0.2.10", "ipMode": "VIP"}]}}
    written = await writer.patch_status(SERVICES, svc, fragment)
    assert written is not None
    assert await writer.patch_status(SERVICES, written, fragment) is None
    assert (await kube.get(SERVICES, "web", namespace="default"))["status"]["loadBalancer"] == fragment[
        "loadBalancer"
    ]
