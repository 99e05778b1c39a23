"""Readers for the BGP Ready condition tests (test_bgp_ready*.py): the Ready condition of a
BGPPeer or BGPAdvertisement, waiting for one, the controller's Warning Events about an object."""

from __future__ import annotations

import time
from typing import Any

from lbipam.k8s.events import CONTROLLER
from lbipam.k8s.resources import EVENTS, Resource
from tests.controller_harness import until
from tests.helpers import eventually
from tests.speaker_harness import Cluster

Obj = dict[str, Any]


async def ready(client: Cluster, res: Resource, name: str) -> Obj | None:
    obj = await client.kube.get(res, name)
    found = [c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"]
    return {**found[0], "generation": obj["metadata"].get("generation")} if found else None


async def reaches(client: Cluster, res: Resource, name: str, status: str, reason: str, says: str = "") -> Obj:
    """The Ready condition of `name` once it has `status` and `reason` (and a message with `says`),
    judged from the current spec."""

    async def check() -> Obj | None:
        got = await ready(client, res, name)
        if got is None or (got["status"], got["reason"]) != (status, reason):
            return None
        if got.get("observedGeneration") != got["generation"]:
            return None  # judged from an older spec
        return got if says in got["message"] else None

    return await until(check, timeout=20)


async def warnings(client: Cluster, name: str) -> list[tuple[str, str]]:
    """(reason, note) of the controller's Warning Events about cluster-scoped object `name`."""
    items = (await client.kube.list_all(EVENTS, namespace="default")).items
    return sorted(
        (e["reason"], e["note"])
        for e in items
        if e.get("reportingController") == CONTROLLER
        and e.get("type") == "Warning"
        and (e.get("regarding") or {}).get("name") == name
    )


async def next_second() -> None:
    """Wait until objects created now get a later creationTimestamp (seconds) than before."""
    start = int(time.time())
    await eventually(lambda: int(time.time()) > start, timeout=3)
