"""Server-side apply and managedFields bookkeeping for every write.

Owned by the patches owner; patches.py re-exports `server_side_apply` and `record_update` (see its
docstring for the contract). The field-set algebra lives in fieldsets.py; this module keeps the
per-manager entries of metadata.managedFields (manager, operation, apiVersion, time, subresource,
fieldsV1) and follows k8s.io/apiserver's fieldmanager: system metadata is never owned, the main
resource never owns status and /status owns only status, an applier's dropped fields are pruned
unless someone else owns them, a change to a field another manager owns is a 409 unless forced.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from lbipam.apiserver.errors import Cause, StatusError
from lbipam.apiserver.patch import fieldsets as mf
from lbipam.apiserver.patch.strategic import Schema, schema_for
from lbipam.apiserver.storage.registry import ResourceType

# Fields no manager ever owns (fieldmanager's stripMetaManager).
_STRIPPED = {
    ("f:apiVersion",),
    ("f:kind",),
    ("f:metadata",),
    *(
        ("f:metadata", "f:" + name)
        for name in (
            "name",
            "namespace",
            "creationTimestamp",
            "selfLink",
            "uid",
            "clusterName",
            "generation",
            "managedFields",
            "resourceVersion",
        )
    ),
}


def _owned(paths: mf.FieldSet, rtype: ResourceType, subresource: str) -> mf.FieldSet:
    """Drop what the write cannot own: system metadata, and status or everything but status
    depending on the subresource (the resource strategies' reset fields)."""
    if subresource == "status":
        return {p for p in paths if p[:1] == ("f:status",) and p not in _STRIPPED}
    skip_status = "status" in rtype.subresources
    return {
        p
        for p in paths
        if p not in _STRIPPED
        and p[:2] != ("f:metadata", "f:managedFields")
        and not (skip_status and p[:1] == ("f:status",))
    }


class _Entry:
    """One managedFields entry: its identity, field set and time."""

    __slots__ = ("api_version", "applied", "decoded", "fields", "manager", "raw", "subresource", "time")

    def __init__(self, manager: str, applied: bool, api_version: str, subresource: str, time: str | None,
                 fields: mf.FieldSet, raw: dict[str, Any] | None = None) -> None:  # fmt: skip
        self.manager, self.applied, self.api_version = manager, applied, api_version
        self.subresource, self.time, self.fields = subresource, time, fields
        # The stored fieldsV1 this entry was read from, and its field set: written back as it was
        # while the fields stay the same (most writes change only fields their manager owns).
        self.raw, self.decoded = raw, (set(fields) if raw is not None else None)

    @property
    def key(self) -> tuple[str, bool, str, str]:
        # BuildManagerIdentifier: appliers are one manager whatever apiVersion they used.
        return (self.manager, self.applied, self.subresource, "" if self.applied else self.api_version)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "manager": self.manager,
            "operation": "Apply" if self.applied else "Update",
            "apiVersion": self.api_version,
        }
        if self.time:
            out["time"] = self.time
        out["fieldsType"] = "FieldsV1"
        unchanged = self.raw is not None and self.fields == self.decoded
        out["fieldsV1"] = self.raw if unchanged else mf.encode(self.fields)
        if self.subresource:
            out["subresource"] = self.subresource
        return out

    def label(self) -> str:
        """printManager: how conflict messages name this manager."""
        text = json.dumps(self.manager)
        if self.subresource:
            text += f" with subresource {json.dumps(self.subresource)}"
        return text if self.applied else f"{text} using {self.api_version}"


def _decode_entries(obj: dict[str, Any] | None) -> dict[tuple[str, bool, str, str], _Entry] | None:
    """The managers of an object; None if its managedFields are missing or malformed."""
    raw = ((obj or {}).get("metadata") or {}).get("managedFields")
    if not isinstance(raw, list) or not raw:
        return None
    entries: dict[tuple[str, bool, str, str], _Entry] = {}
    try:
        for item in raw:
            op = item["operation"]
            if op not in ("Apply", "Update") or item.get("fieldsType", "FieldsV1") != "FieldsV1":
                return None
            raw = item.get("fieldsV1") or {}
            entry = _Entry(str(item.get("manager", "")), op == "Apply", str(item.get("apiVersion", "")),
                           str(item.get("subresource", "")), item.get("time"), mf.decode(raw),
                           raw if isinstance(raw, dict) else None)  # fmt: skip
            entries[entry.key] = entry
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return entries


def _encode_entries(obj: dict[str, Any], entries: dict[tuple[str, bool, str, str], _Entry]) -> dict[str, Any]:
    ordered = sorted(
        (e for e in entries.values() if e.fields),
        key=lambda e: (not e.applied, e.time or "", e.manager, e.api_version, e.subresource),
    )
    meta = dict(obj.get("metadata") or {})
    if ordered:
        meta["managedFields"] = [e.to_json() for e in ordered]
    else:
        meta.pop("managedFields", None)
    return {**obj, "metadata": meta}


def _without_managed_fields(obj: dict[str, Any] | None) -> dict[str, Any]:
    if not obj:
        return {}
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    return {**obj, "metadata": meta}


def _timestamp(now: datetime | None) -> str:
    return (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_SYSTEM_METADATA = ("name", "namespace", "uid", "resourceVersion", "creationTimestamp", "generation",
                    "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink")  # fmt: skip


def server_side_apply(
    rtype: ResourceType,
    original: dict[str, Any] | None,
    applied: Any,
    manager: str,
    force: bool,
    subresource: str = "",
    now: datetime | None = None,
) -> dict[str, Any]:
    """Merge an apply configuration into `original` (None: create) as `manager`; see the module doc."""
    _check_apply_config(rtype, applied)
    schema = schema_for(rtype)
    live = _without_managed_fields(original)
    entries = _decode_entries(original) or {}
    raw_set = _owned_by_request(mf.to_set(applied, schema), rtype, subresource)
    me = _Entry(manager, True, rtype.group_version, subresource, None, raw_set)
    last = entries.get(me.key)
    merged = mf.merge(live, applied, schema)
    entries[me.key] = me
    if last is not None and last.fields:
        merged = _prune(merged, entries, last.fields, schema)
    _take_ownership(live, merged, entries, me.key, force, rtype, subresource)
    me.fields = _owned(raw_set, rtype, subresource)
    if merged != live or last is None:
        me.time = _timestamp(now)
    else:
        me.time = last.time
    return _encode_entries(merged, entries)


def _check_apply_config(rtype: ResourceType, applied: Any) -> None:
    if not isinstance(applied, dict):
        raise StatusError(400, "error decoding YAML: the apply configuration must be an object")
    meta = applied.get("metadata")
    if isinstance(meta, dict) and meta.get("managedFields") is not None:
        raise StatusError(400, "metadata.managedFields must be nil")
    if applied.get("apiVersion") != rtype.group_version:
        raise StatusError(
            400,
            "Incorrect version specified in apply patch. Specified patch version: "
            f"{applied.get('apiVersion', '')}, expected: {rtype.group_version}",
        )
    if applied.get("kind") != rtype.kind:
        raise StatusError(
            400,
            "Incorrect kind specified in apply patch. "
            f"Specified: {applied.get('kind', '')}, expected: {rtype.kind}",
        )


def _owned_by_request(paths: mf.FieldSet, rtype: ResourceType, subresource: str) -> mf.FieldSet:
    """The reset-fields filter alone (system metadata stays in until after pruning, as upstream)."""
    if subresource == "status":
        return {p for p in paths if p[:1] in (("f:status",), ("f:metadata",), ("f:apiVersion",), ("f:kind",))}
    if "status" in rtype.subresources:
        return {p for p in paths if p[:1] != ("f:status",)}
    return paths


def _prune(
    merged: dict[str, Any], entries: dict[Any, _Entry], last: mf.FieldSet, schema: Any
) -> dict[str, Any]:
    """Drop what this manager applied last time, applies no more, and nobody else owns
    (structured-merge-diff's prune, addBackOwnedItems and addBackDanglingItems)."""
    last_named = mf.with_named_fields(last)
    managed = mf.with_named_fields(set().union(*(e.fields for e in entries.values())))
    merged_set = mf.with_named_fields(mf.to_set(merged, schema, strict=False))
    pruned = mf.remove(merged, last_named, schema) or {}
    pruned_set = mf.with_named_fields(mf.to_set(pruned, schema, strict=False))
    pruned = mf.remove(merged, merged_set - (pruned_set | managed), schema) or {}
    pruned_set = mf.with_named_fields(mf.to_set(pruned, schema, strict=False))
    result: dict[str, Any] = mf.remove(merged, (merged_set - pruned_set) & last_named, schema) or {}
    # What the real registry restores after any update (rest.BeforeUpdate): never lose identity.
    meta = dict(result.get("metadata") or {})
    for name in _SYSTEM_METADATA:
        if name in (merged.get("metadata") or {}):
            meta.setdefault(name, merged["metadata"][name])
    for name in ("apiVersion", "kind"):
        if name in merged:
            result.setdefault(name, merged[name])
    return {**result, "metadata": meta}


def _take_ownership(
    live: dict[str, Any],
    new: dict[str, Any],
    entries: dict[Any, _Entry],
    me: Any,
    force: bool,
    rtype: ResourceType,
    subresource: str,
) -> None:
    """Other managers lose what this write removed or changed; without force, a change to a
    field someone else owns is a conflict."""
    diff = mf.compare(live, new, schema_for(rtype))
    changed = _owned(diff.added | diff.modified, rtype, subresource)
    removed = _owned(diff.removed, rtype, subresource)
    conflicts = [(e, e.fields & changed) for k, e in entries.items() if k != me and e.fields & changed]
    if conflicts and not force:
        raise _conflict_error(conflicts)
    for key, entry in entries.items():
        if key != me:
            entry.fields = entry.fields - changed - removed


def _conflict_error(conflicts: list[tuple[_Entry, mf.FieldSet]]) -> StatusError:
    """fieldmanager's NewConflictError: the same message, causes and reason."""

    def order(path: mf.Path) -> tuple[Any, ...]:
        return tuple(mf.element_sort_key(pe) for pe in path)

    ordered = sorted(
        conflicts, key=lambda c: (c[0].manager, c[0].applied, c[0].api_version, c[0].subresource)
    )
    pairs = [(e.label(), mf.path_string(p)) for e, paths in ordered for p in sorted(paths, key=order)]
    if len(pairs) == 1:
        message = f"Apply failed with 1 conflict: conflict with {pairs[0][0]}: {pairs[0][1]}"
    else:
        lines: list[str] = []
        for entry, paths in ordered:
            lines.append(f"conflicts with {entry.label()}:")
            lines.extend(f"- {mf.path_string(p)}" for p in sorted(paths, key=order))
        message = f"Apply failed with {len(pairs)} conflicts: " + "\n".join(lines)
    causes = [
        Cause(field=path, message=f"conflict with {label}", reason="FieldManagerConflict")
        for label, path in pairs
    ]
    return StatusError(409, message, reason="Conflict", causes=causes)


def record_update(
    rtype: ResourceType,
    old: dict[str, Any] | None,
    new: dict[str, Any],
    manager: str | None,
    operation: str = "Update",
    subresource: str = "",
    now: datetime | None = None,
) -> dict[str, Any]:
    """Attribute what a non-apply write changed to `manager`; see the module doc."""
    del operation  # only "Update" exists for non-apply writes; kept for the interface
    schema = schema_for(rtype)
    before = _without_managed_fields(old)
    after = _without_managed_fields(new)
    if subresource == "status":  # nothing else can change through /status: compare only that
        before, after = {"status": before.get("status")}, {"status": after.get("status")}
    if rtype.builtin:
        before = _zero_structs(before, after, schema)
    diff = mf.compare(before, after, schema)
    took = _owned(diff.added | diff.modified, rtype, subresource)
    removed = _owned(diff.removed, rtype, subresource)
    provided = None if subresource else _decode_entries(new)
    source = new if provided else old
    if not took and not removed:  # the common no-op: keep the entries as they are, unparsed
        meta = {k: v for k, v in (new.get("metadata") or {}).items() if k != "managedFields"}
        kept = ((source or {}).get("metadata") or {}).get("managedFields")
        return {**new, "metadata": {**meta, "managedFields": kept} if kept else meta}
    entries = provided or _decode_entries(old) or {}
    for entry in entries.values():
        entry.fields = entry.fields - took - removed
    if took:
        entry = _Entry(manager or "", False, rtype.group_version, subresource, None, set())
        previous = entries.get(entry.key)
        entry.fields = took | (previous.fields if previous else set())
        entry.time = _timestamp(now)
        entries[entry.key] = entry
    return _encode_entries(new, entries)


def _zero_structs(old: dict[str, Any], new: dict[str, Any], schema: Schema) -> dict[str, Any]:
    """`old` with the structs `new` has filled in as empty: Go serializes a built-in kind's struct
    fields even when empty, so the real server never sees `spec` or `status.loadBalancer` appear
    and never makes them members (`.`) of a manager's fields."""
    out = dict(old)
    for key, value in new.items():
        sub = schema.field(key)
        if isinstance(value, dict) and not sub.is_map_type() and not sub.shape.atomic_map:
            before = out.get(key)
            if before is None or isinstance(before, dict):
                out[key] = _zero_structs(before or {}, value, sub)
    return out
