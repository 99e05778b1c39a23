"""`EventRecorder`: Kubernetes Events through events.k8s.io/v1, as `kubectl describe` shows them.

What users see when lbipam acts on their objects (IPAllocated, AllocationFailed, IPReleased, ...).
A repeat of the same (regarding object, type, reason, action, note) within six minutes does not
create another Event: the first one gets a `series` (count, lastObservedTime), as client-go's
events/v1 recorder does. Recording never fails the caller: API errors are logged and dropped
(an Event is a courtesy, the condition on the object is the record).
Callers: the controllers (reportingController lbipam.io/controller) and the speaker
(lbipam.io/speaker).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from lbipam.k8s.client import Kube
from lbipam.k8s.errors import KubeError, NotFound
from lbipam.k8s.logs import KVLog
from lbipam.k8s.resources import EVENTS, Resource
from lbipam.k8s.times import micro_time
from lbipam.k8s.times import now as wall_clock
from lbipam.k8s.wire import Obj

CONTROLLER = "lbipam.io/controller"
SPEAKER = "lbipam.io/speaker"
SERIES_WINDOW = timedelta(minutes=6)  # client-go's isomorphic-event window
MAX_NOTE = 1024  # the API server rejects longer notes


@dataclass
class _Series:
    name: str
    namespace: str
    count: int
    last: datetime


def reference(obj: Mapping[str, Any], resource: Resource | None = None) -> dict[str, str]:
    """An ObjectReference to `obj` (kind/apiVersion from the object, else from `resource`)."""
    meta = obj.get("metadata") or {}
    ref = {
        "apiVersion": str(obj.get("apiVersion") or (resource.api_version if resource else "")),
        "kind": str(obj.get("kind") or (resource.kind if resource else "")),
        "namespace": str(meta.get("namespace") or ""),
        "name": str(meta.get("name") or ""),
        "uid": str(meta.get("uid") or ""),
        "resourceVersion": str(meta.get("resourceVersion") or ""),
    }
    return {k: v for k, v in ref.items() if v}


def _target(regarding: Mapping[str, str]) -> str:
    return regarding.get("uid") or f"{regarding['kind']}/{regarding.get('namespace', '')}/{regarding['name']}"


class EventRecorder:
    """Records Events for one reporting controller and instance (e.g. the pod or node name)."""

    def __init__(
        self,
        kube: Kube,
        controller: str,
        instance: str,
        *,
        clock: Callable[[], datetime] = wall_clock,
        max_series: int = 4096,
    ) -> None:
        if not controller or not instance or len(instance) > 128:
            raise ValueError(
                "an event recorder needs a controller name and an instance of at most 128 characters"
            )
        self.kube = kube
        self.controller = controller
        self.instance = instance
        self._clock = clock
        self._series: OrderedDict[tuple[str, ...], _Series] = OrderedDict()
        self._max_series = max_series
        # One lock per (object, type, reason, action, note): two repeats at once must not both
        # create an Event, while Events about different objects go out in parallel.
        self._locks: dict[tuple[str, ...], tuple[asyncio.Lock, int]] = {}  # lock, users
        self._log = KVLog("lbipam.k8s.events", controller=controller)

    async def record(
        self,
        obj: Mapping[str, Any],
        reason: str,
        note: str,
        *,
        type: str = "Normal",  # the Event field's name; Normal or Warning
        action: str = "Reconcile",
        resource: Resource | None = None,
        related: Mapping[str, Any] | None = None,
    ) -> Obj | None:
        """Record one occurrence; returns the Event written, or None if that failed (logged)."""
        regarding = reference(obj, resource)
        log = self._log.bind(
            object=f"{regarding.get('namespace', '')}/{regarding.get('name', '')}".lstrip("/"),
            reason=reason,
            type=type,
        )
        (log.warning if type == "Warning" else log.debug)("event", note=note)
        try:
            if type not in ("Normal", "Warning"):
                raise ValueError(f"event type {type!r} must be Normal or Warning")
            if not regarding.get("name") or not regarding.get("kind"):
                raise ValueError("the regarding object needs a kind and a name")
            note = note[:MAX_NOTE]
            key = (_target(regarding), type, reason, action, note)
            lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
            self._locks[key] = (lock, users + 1)
            try:
                async with lock:
                    return await self._write(key, regarding, reason, note, type, action, related)
            finally:
                lock, users = self._locks[key]
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)
        except (KubeError, ValueError) as err:
            log.error("event not recorded", error=str(err))
        except Exception:  # an Event must never take the caller down
            log.exception("event not recorded")
        return None

    async def _write(
        self,
        key: tuple[str, ...],
        regarding: dict[str, str],
        reason: str,
        note: str,
        type_: str,
        action: str,
        related: Mapping[str, Any] | None,
    ) -> Obj:
        now = self._clock()
        series = self._series.get(key)
        if series and now - series.last < SERIES_WINDOW:
            try:
                return await self._bump(key, series, now)
            except NotFound:  # the Event expired or was deleted: start afresh
                pass
        event = self._new_event(regarding, reason, note, type_, action, related, now)
        created = await self.kube.create(EVENTS, event)
        meta = created.get("metadata") or {}
        self._remember(key, _Series(str(meta.get("name")), str(meta.get("namespace")), 1, now))
        return created

    async def _bump(self, key: tuple[str, ...], series: _Series, now: datetime) -> Obj:
        count = series.count + 1
        patch = {"series": {"count": count, "lastObservedTime": micro_time(now)}}
        updated = await self.kube.patch(EVENTS, series.name, patch, namespace=series.namespace)
        series.count, series.last = count, now
        self._series.move_to_end(key)
        return updated

    def _new_event(
        self,
        regarding: dict[str, str],
        reason: str,
        note: str,
        type_: str,
        action: str,
        related: Mapping[str, Any] | None,
        now: datetime,
    ) -> Obj:
        # Cluster-scoped objects' Events live in "default", as client-go puts them.
        namespace = regarding.get("namespace") or "default"
        name = f"{regarding['name'][:200]}.{time.time_ns():x}"
        event: Obj = {
            "apiVersion": EVENTS.api_version,
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "eventTime": micro_time(now),
            "reportingController": self.controller,
            "reportingInstance": self.instance,
            "action": action,
            "reason": reason,
            "note": note,
            "type": type_,
            "regarding": regarding,
        }
        if related:
            event["related"] = reference(related)
        return event

    def _remember(self, key: tuple[str, ...], series: _Series) -> None:
        self._series[key] = series
        self._series.move_to_end(key)
        while len(self._series) > self._max_series:
            self._series.popitem(last=False)
