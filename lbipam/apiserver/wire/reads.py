"""Reads of the embedded server: get, list (selectors, limit/continue) and opening a watch.

Lists are served from the store's committed index. A paginated list keeps a snapshot of its
result (references to immutable objects) so that its continue tokens see one consistent state;
when a snapshot is gone the event history tells whether the resource changed since, and if it did
(or the history cannot tell) the continue token is answered with 410 Expired, as the real server
does after compaction. Called by the HTTP handlers.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lbipam.apiserver.errors import StatusError, not_found
from lbipam.apiserver.kinds.objects import Objects
from lbipam.apiserver.kinds.selectors import (
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)
from lbipam.apiserver.storage.registry import ResourceType
from lbipam.apiserver.storage.store import Expired, Obj
from lbipam.apiserver.storage.watch import Watcher

CONTINUE_EXPIRED = (
    "The provided continue parameter is too old to display a consistent list result. You can start a "
    "new list without the continue parameter, or use the continue token in this response to retrieve "
    "the remainder of the results. Continuing with the provided token results in an inconsistent "
    "list - objects that were created, modified, or deleted between the time the first chunk was "
    "returned and now may show up in the list."
)
_SNAPSHOTS = 32
_SNAPSHOT_TTL = 300.0


@dataclass
class _Snapshot:
    rv: int
    items: list[Obj]
    created: float


class Reads:
    def __init__(self, objects: Objects, watch_queue: int = 1000) -> None:
        self.objects = objects
        self.store = objects.store
        self.watch_queue = watch_queue
        self._snapshots: OrderedDict[str, _Snapshot] = OrderedDict()
        self._snapshot_seq = 0

    def get(self, rtype: ResourceType, namespace: str, name: str) -> Obj:
        obj = self.store.get(rtype.storage_key, namespace, name)
        if obj is None:
            raise not_found(rtype.qualified, name, rtype.group, rtype.plural)
        return self.objects.strategy(rtype).encode(rtype, obj)

    def matcher(self, rtype: ResourceType, query: Mapping[str, str]) -> tuple[Callable[[Obj], bool], bool]:
        """The selector filter of a list or watch, and whether it filters at all."""
        strategy = self.objects.strategy(rtype)
        labels = parse_label_selector(query.get("labelSelector"))
        stored = {}  # selector label -> the stored object's field

        def supported(label: str) -> bool:
            field = strategy.field_label(rtype, label)
            if field is not None:
                stored[label] = field
            return field is not None

        fields = parse_field_selector(query.get("fieldSelector"), supported)

        def matches(obj: Obj) -> bool:
            meta = obj.get("metadata", {})
            return labels_match(labels, meta.get("labels")) and fields_match(
                fields, lambda label: strategy.field_value(obj, stored[label])
            )

        return matches, bool(labels or fields)

    def list_objects(self, rtype: ResourceType, namespace: str | None, query: Mapping[str, str]) -> Obj:
        matches, filtered = self.matcher(rtype, query)
        limit = _int_param(query, "limit")
        self._check_list_rv(query)
        token = query.get("continue")
        if token:
            rv, items, offset = self._resume(rtype, namespace, token, matches)
        else:
            rv, offset = self.store.rv, 0
            items = [o for o in self.store.items(rtype.storage_key, namespace) if matches(o)]
        page = items[offset : offset + limit] if limit > 0 else items[offset:]
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if limit > 0 and offset + limit < len(items):
            meta["continue"] = self._remember(rtype, rv, items, offset + limit, page[-1])
            if not filtered:
                meta["remainingItemCount"] = len(items) - offset - limit
        encode = self.objects.strategy(rtype).encode
        return {
            "kind": rtype.list_kind,
            "apiVersion": rtype.api_version,
            "metadata": meta,
            "items": [encode(rtype, o) for o in page],
        }

    def _check_list_rv(self, query: Mapping[str, str]) -> None:
        requested = query.get("resourceVersion", "")
        if requested in ("", "0"):
            return
        rv = _parse_rv(requested)
        if rv > self.store.rv:
            raise StatusError(
                504,
                f"Too large resource version: {rv}, current: {self.store.rv}",
                "Timeout",
                details={
                    "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}]
                },
            )
        if query.get("resourceVersionMatch") == "Exact" and rv != self.store.rv:
            raise StatusError(410, f"too old resource version: {rv} ({self.store.rv})", "Expired")

    def _remember(self, rtype: ResourceType, rv: int, items: list[Obj], offset: int, last: Obj) -> str:
        self._snapshot_seq += 1
        sid = str(self._snapshot_seq)
        self._snapshots[sid] = _Snapshot(rv, items, time.monotonic())
        while len(self._snapshots) > _SNAPSHOTS:
            self._snapshots.popitem(last=False)
        meta = last.get("metadata", {})
        start = [meta.get("namespace", ""), meta.get("name", "")]
        payload = {"v": "meta.k8s.io/v1", "rv": rv, "start": start, "s": sid, "o": offset, "r": rtype.key}
        return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode()

    def _resume(
        self, rtype: ResourceType, namespace: str | None, token: str, matches: Callable[[Obj], bool]
    ) -> tuple[int, list[Obj], int]:
        try:
            payload = json.loads(base64.urlsafe_b64decode(token.encode()))
            rv, (start_ns, start_name), sid, offset = (
                payload["rv"],
                payload["start"],
                payload["s"],
                payload["o"],
            )
            if payload.get("r") != rtype.key:
                raise ValueError("the token belongs to another resource")
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise StatusError(400, f"continue key is not valid: {exc}") from exc
        snapshot = self._snapshots.get(sid)
        if snapshot is not None and time.monotonic() - snapshot.created < _SNAPSHOT_TTL:
            return snapshot.rv, snapshot.items, offset
        try:
            changed = self.store.changed_since(rtype.storage_key, int(rv))
        except Expired:
            changed = True
        if changed:
            raise StatusError(410, CONTINUE_EXPIRED, "Expired")
        rest = self.store.items(rtype.storage_key, namespace, (str(start_ns), str(start_name)))
        return int(rv), [o for o in rest if matches(o)], 0

    def open_watch(
        self, rtype: ResourceType, namespace: str | None, query: Mapping[str, str]
    ) -> tuple[Watcher, Obj | None, Obj | None]:
        """Register a watcher with its initial events; (watcher, initial-events-end bookmark, error)."""
        matches, _ = self.matcher(rtype, query)
        watcher = Watcher(rtype.storage_key, namespace, matches, self.watch_queue)
        requested = query.get("resourceVersion", "")
        initial = query.get("sendInitialEvents", "").lower() == "true"
        end_marker = None
        if requested in ("", "0") or initial:
            if requested not in ("", "0") and initial:
                raise StatusError(400, 'sendInitialEvents is only supported with resourceVersion "" or "0"')
            for obj in self.store.items(rtype.storage_key, namespace):
                if matches(obj):
                    watcher.backlog.append(("ADDED", obj))
            if initial:
                end_marker = self.bookmark(rtype, {"k8s.io/initial-events-end": "true"})
        else:
            rv = _parse_rv(requested)
            if rv > self.store.rv:
                return (
                    watcher,
                    None,
                    _status(504, "Timeout", f"Too large resource version: {rv}, current: {self.store.rv}"),
                )
            try:
                changes = self.store.replay(rtype.storage_key, rv)
            except Expired as exc:
                return watcher, None, _status(410, "Expired", str(exc))
            for change in changes:
                event = watcher.translate(change)
                if event is not None:
                    watcher.backlog.append(event)
        return watcher, end_marker, None

    def bookmark(self, rtype: ResourceType, annotations: dict[str, str] | None = None) -> Obj:
        meta: dict[str, Any] = {"resourceVersion": str(self.store.rv)}
        if annotations:
            meta["annotations"] = annotations
        return {"kind": rtype.kind, "apiVersion": rtype.api_version, "metadata": meta}


def _status(code: int, reason: str, message: str) -> Obj:
    return StatusError(code, message, reason).to_status()


def _parse_rv(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0 or not text.isdigit():
        raise StatusError(400, f"invalid resource version: {text!r}")
    return value


def _int_param(query: Mapping[str, str], name: str) -> int:
    text = query.get(name, "")
    if not text:
        return 0
    try:
        return max(int(text), 0)
    except ValueError:
        raise StatusError(400, f"{name}: invalid integer {text!r}") from None
