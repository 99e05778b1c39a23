"""Patch application for the embedded server: JSON patch, merge patch, strategic merge, server-side apply.

Owned by the patches owner; the server core (HTTP layer) calls only the functions below. They are
pure: no I/O, no clock except `now` (injectable), and they never write anything.

    apply_patch(rtype, content_type, original, patch_body) -> dict
        content_type: "application/json-patch+json" | "application/merge-patch+json"
                      | "application/strategic-merge-patch+json" (parameters such as
                      "; charset=utf-8" are ignored). Returns the patched object (a new dict).
        Raises StatusError: 400 for a malformed body (a JSON patch that is not a list, bad JSON),
        413 for more than 10000 JSON-patch operations, 422 for a failed JSON-patch `test` or a bad
        path, 415 for strategic merge on a custom resource, as kube-apiserver does.
        Resource versions: apply_patch does NOT check them. The caller compares
        `result["metadata"].get("resourceVersion")` with the stored one: if the patch set a
        different one (merge/strategic patch carrying metadata.resourceVersion, JSON patch
        replacing it), answer 409 Conflict; a patch that does not mention it leaves it equal.

    server_side_apply(rtype, original, applied, manager, force, subresource, now=None) -> dict
        original: the stored object or None (apply then creates); applied: the parsed apply
        configuration (YAML or JSON, parsed by the caller); manager: the fieldManager query
        parameter, which the caller has checked is non-empty (else the 422 of
        `missing_field_manager()`). Returns the new object with metadata.managedFields updated
        (do not call record_update after it). Raises StatusError 409 on conflicts unless force,
        400 if the configuration carries metadata.managedFields or another apiVersion/kind.

    record_update(rtype, old, new, manager, operation="Update", subresource="", now=None) -> dict
        After any non-apply write (create: old=None, update, patch), returns `new` with
        metadata.managedFields updated: fields this write added or changed are now owned by
        `manager` (pass `manager_from_user_agent(fieldManager or "", user_agent)`). A client that
        sends managedFields explicitly (kubectl's client-side-apply upgrade does) has them kept.

    manager_from_user_agent(field_manager, user_agent) -> str     # the real server's default
    missing_field_manager() -> StatusError                          # the 422 for apply without one
    force_without_apply() -> StatusError                            # the 422 for ?force on other patches
"""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonpatch

from lbipam.apiserver.errors import Cause, StatusError
from lbipam.apiserver.patch.managedfields import record_update, server_side_apply
from lbipam.apiserver.patch.strategic import schema_for, strategic_merge
from lbipam.apiserver.storage import jsonsafe
from lbipam.apiserver.storage.registry import ResourceType

__all__ = [
    "apply_patch",
    "force_without_apply",
    "manager_from_user_agent",
    "missing_field_manager",
    "record_update",
    "server_side_apply",
    "unsupported_media_type",
]

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
MAX_JSON_PATCH_OPERATIONS = 10000
_CUSTOM_PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, APPLY_PATCH)


def apply_patch(
    rtype: ResourceType, content_type: str, original: dict[str, Any], patch_body: bytes
) -> dict[str, Any]:
    """Apply a JSON, merge or strategic merge patch to `original`; returns a new object."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == STRATEGIC_PATCH and not rtype.builtin:
        raise unsupported_media_type(_CUSTOM_PATCH_TYPES)
    if kind == JSON_PATCH:
        return _json_patch(original, patch_body)
    if kind == MERGE_PATCH:
        patch = _decode(patch_body, "Invalid JSON Patch")
        if not isinstance(patch, dict):
            # evanphx/json-patch's errBadJSONPatch: a merge patch must be an object.
            raise StatusError(400, "Invalid JSON Patch")
        merged: dict[str, Any] = _merge_patch(original, patch)
        return merged
    if kind == STRATEGIC_PATCH:
        patch = _decode(patch_body, None)
        if not isinstance(patch, dict):
            raise StatusError(
                400,
                f"json: cannot unmarshal {_go_type(patch)} into Go value of type map[string]interface {{}}",
            )
        return strategic_merge(original, patch, schema_for(rtype))
    raise unsupported_media_type((JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, APPLY_PATCH))


def unsupported_media_type(accepted: tuple[str, ...]) -> StatusError:
    """negotiation.NewUnsupportedMediaTypeError, word for word."""
    return StatusError(
        415,
        "the body of the request was in an unknown format - accepted media types include: "
        + ", ".join(accepted),
    )


def missing_field_manager() -> StatusError:
    """What kube-apiserver answers an apply patch without ?fieldManager=."""
    return _patch_options_invalid(
        "fieldManager", "Required value: is required for apply patch", "FieldValueRequired"
    )


def force_without_apply() -> StatusError:
    """What kube-apiserver answers ?force=... on a non-apply patch."""
    return _patch_options_invalid(
        "force", "Forbidden: may not be specified for non-apply patch", "FieldValueForbidden"
    )


def _patch_options_invalid(field: str, detail: str, reason: str) -> StatusError:
    return StatusError(
        422,
        f'PatchOptions.meta.k8s.io "" is invalid: {field}: {detail}',
        causes=[Cause(field=field, message=detail, reason=reason)],
        details={"group": "meta.k8s.io", "kind": "PatchOptions"},
    )


def manager_from_user_agent(field_manager: str, user_agent: str) -> str:
    """managerOrUserAgent: the fieldManager, else the user agent up to its first '/'."""
    return field_manager or user_agent.split("/", 1)[0]


def _go_type(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    return "number"


def _decode(body: bytes, message: str | None) -> Any:
    try:
        value = json.loads(body, parse_constant=jsonsafe.no_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise StatusError(400, message or f"invalid JSON in patch body: {e}") from None
    jsonsafe.check(value, "invalid patch")  # the rules every stored value keeps, named by path
    return value


def _json_patch(original: dict[str, Any], body: bytes) -> dict[str, Any]:
    ops = _decode(body, None)
    if not isinstance(ops, list):
        # jsonpatch.DecodePatch's error, as the real server returns it.
        raise StatusError(
            400, f"json: cannot unmarshal {_go_type(ops)} into Go value of type jsonpatch.Patch"
        )
    for op in ops:
        if not isinstance(op, dict):
            raise StatusError(
                400, f"json: cannot unmarshal {_go_type(op)} into Go value of type jsonpatch.Operation"
            )
    if len(ops) > MAX_JSON_PATCH_OPERATIONS:
        raise StatusError(
            413,
            "Request entity too large: The allowed maximum operations in a JSON patch is "
            f"{MAX_JSON_PATCH_OPERATIONS}, got {len(ops)}",
        )
    try:
        result = jsonpatch.JsonPatch(ops).apply(copy.deepcopy(original))
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, KeyError, TypeError) as e:
        # The real server says only this (NewGenericServerResponse 422); the cause says what failed.
        raise StatusError(
            422,
            "the server rejected our request due to an error in our request",
            causes=[Cause(field="patch", message=str(e) or type(e).__name__)],
        ) from None
    if not isinstance(result, dict):
        raise StatusError(
            422, "the JSON patch must leave an object", causes=[Cause("patch", "not an object")]
        )
    return result


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge_patch(out.get(key), value)
    return out
