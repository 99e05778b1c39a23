"""`StatusWriter`: status and metadata writes, made only when something changed.

STYLE.md convention 7: the writer first compares the wanted fragment with the object it was
given (normally the informer's cached copy) and makes no request when applying it would change
nothing. Otherwise it sends one JSON merge patch (RFC 7386) -- to /status for status, to the
object for annotations and labels -- with one constant field manager, retrying 429/5xx/connection
errors and 409s with back-off. A merge patch carries no resourceVersion, so resending is safe.

Merge patch replaces lists whole: pass the complete `conditions` list (see
`lbipam.core.conditions.set_condition`), never a single entry.
Callers: the controllers (pool, Service, Node/CiliumNode status) and the speaker (BGPNodeState).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lbipam.k8s.client import Kube
from lbipam.k8s.errors import Backoff, retry
from lbipam.k8s.logs import object_log
from lbipam.k8s.resources import Resource, describe, object_key
from lbipam.k8s.wire import Obj, PatchType

CONTROLLER_FIELD_MANAGER = "lbipam-controller"
SPEAKER_FIELD_MANAGER = "lbipam-speaker"


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 applied to `target` (not modified): None deletes a key, objects merge, the rest replaces."""
    if not isinstance(patch, Mapping):
        return patch
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def changes(current: Any, fragment: Mapping[str, Any]) -> bool:
    """Whether merge-patching `current` with `fragment` would change it."""
    return bool(merge_patch(current, fragment) != (current if current is not None else {}))


class StatusWriter:
    """Writes status/metadata through one field manager; counts writes and skips."""

    def __init__(
        self, kube: Kube, field_manager: str, *, attempts: int = 8, backoff_cap: float = 2.0
    ) -> None:
        if not field_manager or len(field_manager) > 128:
            raise ValueError(f"field manager {field_manager!r}: 1 to 128 characters")
        self.kube = kube
        self.field_manager = field_manager
        self.attempts = attempts
        self.backoff_cap = backoff_cap
        self.writes = 0
        self.skipped = 0

    async def patch_status(
        self, res: Resource, obj: Mapping[str, Any], fragment: Mapping[str, Any]
    ) -> Obj | None:
        """Merge `fragment` into obj's status on the server, unless it is already there.

        Returns the object the server answered with, or None when no write was needed.
        Raises the typed error once retries are exhausted (NotFound at once).
        """
        if not res.has_status:
            raise ValueError(f"{res.kind} has no status subresource")
        if not changes(obj.get("status"), fragment):
            self.skipped += 1
            return None
        return await self._patch(res, obj, {"status": dict(fragment)}, "status")

    async def patch_metadata(
        self,
        res: Resource,
        obj: Mapping[str, Any],
        *,
        annotations: Mapping[str, str | None] | None = None,
        labels: Mapping[str, str | None] | None = None,
    ) -> Obj | None:
        """Set (str) or remove (None) annotations and labels, unless they already are so."""
        fragment: dict[str, Any] = {}
        if annotations:
            fragment["annotations"] = dict(annotations)
        if labels:
            fragment["labels"] = dict(labels)
        if not fragment or not changes(obj.get("metadata"), fragment):
            self.skipped += 1
            return None
        return await self._patch(res, obj, {"metadata": fragment}, None)

    async def patch_object(
        self, res: Resource, obj: Mapping[str, Any], fragment: Mapping[str, Any]
    ) -> Obj | None:
        """Merge `fragment` into the object itself (spec, metadata), unless it is already there."""
        if not changes(obj, fragment):
            self.skipped += 1
            return None
        return await self._patch(res, obj, dict(fragment), None, part="object")

    async def patch_condition(
        self, res: Resource, obj: Mapping[str, Any], condition: Mapping[str, Any]
    ) -> Obj | None:
        """Set one entry of status.conditions with a strategic merge patch (built-in kinds: Node),
        so the conditions other writers (the kubelet) keep meanwhile are not overwritten."""
        current = ((obj.get("status") or {}).get("conditions")) or []
        mine = next((c for c in current if c.get("type") == condition.get("type")), None)
        if mine is not None and dict(mine) == dict(condition):
            self.skipped += 1
            return None
        body = {"status": {"conditions": [dict(condition)]}}
        return await self._patch(res, obj, body, "status", patch_type="strategic")

    async def _patch(
        self,
        res: Resource,
        obj: Mapping[str, Any],
        body: Obj,
        subresource: str | None,
        *,
        patch_type: PatchType = "merge",
        part: str | None = None,
    ) -> Obj:
        namespace, name = object_key(obj)

        async def send() -> Obj:
            return await self.kube.patch(
                res,
                name,
                body,
                namespace=namespace or None,
                patch_type=patch_type,
                subresource=subresource,
                field_manager=self.field_manager,
            )

        what = f"{part or subresource or 'metadata'} of {res.kind} {describe(obj)}"
        backoff = Backoff(base=0.05, cap=self.backoff_cap)
        result = await retry(send, what=what, attempts=self.attempts, conflicts=True, backoff=backoff)
        self.writes += 1
        object_log("lbipam.k8s.status", res, obj).debug(
            "written",
            part=part or subresource or "metadata",
            rv=(result.get("metadata") or {}).get("resourceVersion"),
        )
        return result
