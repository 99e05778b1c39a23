"""Events: one set of stored objects seen through core/v1 and events.k8s.io/v1, as in Kubernetes.

Objects are stored in the core/v1 shape; events.k8s.io/v1 reads and writes convert field by field
(regarding <-> involvedObject, note <-> message, reportingController <-> reportingComponent,
deprecated* <-> the old core fields). Validation follows the real server: the events.k8s.io/v1
rules for new-style events (eventTime, reportingController, reportingInstance, action, reason
required) and the legacy namespace rule for core/v1 events. Called through `objects.py`.
"""

from __future__ import annotations

from typing import Any

from lbipam.apiserver.errors import Cause, invalid, invalid_object, required
from lbipam.apiserver.kinds.strategy import Strategy, WriteOptions
from lbipam.apiserver.kinds.validation import dns1123_subdomain, normalize_time, qualified_name
from lbipam.apiserver.storage.registry import ResourceType
from lbipam.apiserver.storage.store import Obj

# events.k8s.io/v1 field -> core/v1 field
_RENAMED = {
    "regarding": "involvedObject",
    "note": "message",
    "reportingController": "reportingComponent",
    "deprecatedSource": "source",
    "deprecatedFirstTimestamp": "firstTimestamp",
    "deprecatedLastTimestamp": "lastTimestamp",
    "deprecatedCount": "count",
}
_OMIT_EMPTY = ("reportingController", "reportingInstance")
_SAME = ("reason", "type", "action", "reportingInstance", "eventTime", "series", "related")
_REF = {
    "apiVersion": str,
    "kind": str,
    "name": str,
    "namespace": str,
    "uid": str,
    "resourceVersion": str,
    "fieldPath": str,
}
_SERIES = {"count": int, "lastObservedTime": str}
_CORE_SHAPE = {
    "involvedObject": _REF,
    "related": _REF,
    "message": str,
    "reason": str,
    "type": str,
    "action": str,
    "reportingComponent": str,
    "reportingInstance": str,
    "eventTime": str,
    "firstTimestamp": str,
    "lastTimestamp": str,
    "count": int,
    "series": _SERIES,
    "source": {"component": str, "host": str},
}
# The field selectors of events.k8s.io/v1 and the stored (core/v1) fields they select.
_V1_FIELDS = {
    "metadata.name": "metadata.name",
    "metadata.namespace": "metadata.namespace",
    **{f"regarding.{key}": f"involvedObject.{key}" for key in _REF},
    "reason": "reason",
    "reportingController": "reportingComponent",
    "source": "source",
    "type": "type",
}
_V1_SHAPE = {new: _CORE_SHAPE[old] for new, old in _RENAMED.items()} | {k: _CORE_SHAPE[k] for k in _SAME}


def _new_api(rtype: ResourceType) -> bool:
    return rtype.group == "events.k8s.io"


def to_core(obj: Obj) -> Obj:
    out: Obj = {"apiVersion": "v1", "kind": "Event", "metadata": obj.get("metadata", {})}
    for new, old in _RENAMED.items():
        if new in obj:
            out[old] = obj[new]
    for key in _SAME:
        if key in obj:
            out[key] = obj[key]
    return out


def to_events_v1(obj: Obj) -> Obj:
    out: Obj = {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": obj.get("metadata", {})}
    for new, old in _RENAMED.items():
        if old in obj:
            out[new] = obj[old]
    for key in _SAME:
        if key in obj:
            out[key] = obj[key]
    for key in _OMIT_EMPTY:  # written even when empty in core/v1, omitempty in events.k8s.io/v1
        if out.get(key) == "":
            del out[key]
    out.setdefault("eventTime", None)  # required in the schema; null for legacy events
    return out


class EventStrategy(Strategy):
    create_on_update = True
    extra_fields = (
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    )

    def shape_of(self, rtype: ResourceType) -> dict[str, Any]:
        return _V1_SHAPE if _new_api(rtype) else _CORE_SHAPE

    def decode(self, rtype: ResourceType, obj: Obj) -> Obj:
        if not _new_api(rtype):
            return obj
        causes = _v1_causes(obj)
        if causes:
            name = obj["metadata"].get("name", "")
            raise invalid_object("Event.events.k8s.io", name, "events.k8s.io", "Event", causes)
        return to_core(obj)

    def encode(self, rtype: ResourceType, obj: Obj) -> Obj:
        return to_events_v1(obj) if _new_api(rtype) else obj

    def prepare(self, rtype: ResourceType, obj: Obj, old: Obj | None, opts: WriteOptions) -> None:
        what = 'Event in version "v1" cannot be handled as an Event'
        for key, micro in (("eventTime", True), ("firstTimestamp", False), ("lastTimestamp", False)):
            normalize_time(obj, key, what, micro)
        if isinstance(obj.get("series"), dict):
            normalize_time(obj["series"], "lastObservedTime", what, micro=True)

    def validate(self, rtype: ResourceType, obj: Obj, old: Obj | None) -> list[Cause]:
        causes = super().validate(rtype, obj, old)
        if _new_api(rtype):
            return causes
        return causes + _legacy_causes(obj)

    def field_label(self, rtype: ResourceType, label: str) -> str | None:
        if not _new_api(rtype):
            return super().field_label(rtype, label)
        return _V1_FIELDS.get(label)

    def field_value(self, obj: Obj, label: str) -> str:
        if label == "source":  # the component, else the reporting controller
            return str((obj.get("source") or {}).get("component") or obj.get("reportingComponent") or "")
        return super().field_value(obj, label)


def _v1_causes(obj: Obj) -> list[Cause]:
    """The events.k8s.io/v1 rules, on the wire shape (field paths as the client wrote them)."""
    causes: list[Cause] = []
    if not obj.get("eventTime"):
        causes.append(required("eventTime"))
    if obj.get("type") not in ("Normal", "Warning"):
        causes.append(invalid("type", "", f"has invalid value: {obj.get('type', '')}"))
    controller = obj.get("reportingController", "")
    if not controller:
        causes.append(required("reportingController"))
    else:
        causes += [invalid("reportingController", controller, p) for p in qualified_name(controller)]
    for key, limit in (("reportingInstance", 128), ("action", 128), ("reason", 128)):
        value = obj.get(key, "")
        if not value:
            causes.append(required(key))
        elif len(value) > limit:
            causes.append(invalid(key, "", f"can have at most {limit} characters"))
    if len(obj.get("note", "")) > 1024:
        causes.append(invalid("note", "", "can have at most 1024 characters"))
    series = obj.get("series")
    if isinstance(series, dict):
        if (series.get("count") or 0) < 2:
            causes.append(invalid("series.count", "", "should be at least 2"))
        if not series.get("lastObservedTime"):
            causes.append(required("series.lastObservedTime"))
    return causes


def _legacy_causes(obj: Obj) -> list[Cause]:
    """core/v1: the involved object's namespace must agree with the event's."""
    namespace = obj["metadata"].get("namespace", "")
    involved = (obj.get("involvedObject") or {}).get("namespace", "")
    mismatch = involved != namespace if involved else namespace not in ("", "default", "kube-system")
    if mismatch:
        return [invalid("involvedObject.namespace", involved, "does not match event.namespace")]
    return [invalid("namespace", namespace, p) for p in dns1123_subdomain(namespace)] if namespace else []
