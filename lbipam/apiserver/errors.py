"""Kubernetes `Status` errors raised anywhere in the embedded server and rendered by the HTTP layer."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    408: "Timeout",
    409: "Conflict",
    410: "Expired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
}


@dataclass
class Cause:
    """One field cause of a 422 Invalid (metav1.StatusCause)."""

    field: str
    message: str
    reason: str = "FieldValueInvalid"

    def to_json(self) -> dict[str, str]:
        return {"reason": self.reason, "message": self.message, "field": self.field}


@dataclass
class StatusError(Exception):
    """An API error with the HTTP code, the Status reason and, for 422, the field causes."""

    code: int
    message: str
    reason: str = ""
    causes: list[Cause] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)
        if not self.reason:
            self.reason = REASONS.get(self.code, "Unknown")

    def to_status(self) -> dict[str, Any]:
        details = dict(self.details)
        if self.causes:
            details["causes"] = [c.to_json() for c in self.causes]
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if details:
            status["details"] = details
        return status


def go_quote(value: str) -> str:
    """`value` quoted as Go's %q does, so messages read like the real server's."""
    out = ['"']
    for ch in value:
        code = ord(ch)
        if ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif not ch.isprintable() and code > 0x7F:
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


_GO_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    "\\": "\\\\",
    '"': '\\"',
}


def go_value(value: Any) -> str:
    """A value as field.Invalid prints it: strings quoted, numbers bare, others in JSON."""
    if isinstance(value, str):
        return go_quote(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if value is None:
        return "null"
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def invalid(path: str, value: Any, detail: str) -> Cause:
    return Cause(path, f"Invalid value: {go_value(value)}: {detail}", "FieldValueInvalid")


def required(path: str, detail: str = "") -> Cause:
    return Cause(path, "Required value" + (f": {detail}" if detail else ""), "FieldValueRequired")


def forbidden(path: str, detail: str) -> Cause:
    return Cause(path, f"Forbidden: {detail}", "FieldValueForbidden")


def not_supported(path: str, value: Any, supported: list[str]) -> Cause:
    choices = ", ".join(go_quote(s) for s in supported)
    return Cause(
        path, f"Unsupported value: {go_value(value)}: supported values: {choices}", "FieldValueNotSupported"
    )


def duplicate(path: str, value: Any) -> Cause:
    return Cause(path, f"Duplicate value: {go_value(value)}", "FieldValueDuplicate")


def too_long(path: str, limit: int) -> Cause:
    return Cause(path, f"Too long: may not be more than {limit} bytes", "FieldValueTooLong")


def too_many(path: str, count: int, limit: int) -> Cause:
    return Cause(path, f"Too many: {count}: must have at most {limit} items", "FieldValueTooMany")


def not_found(qualified: str, name: str, group: str, plural: str) -> StatusError:
    """404 for an object, e.g. `services "web" not found`."""
    details: dict[str, Any] = {"name": name, "kind": plural}
    if group:
        details["group"] = group
    return StatusError(404, f'{qualified} "{name}" not found', details=details)


def already_exists(qualified: str, name: str, group: str, plural: str) -> StatusError:
    details: dict[str, Any] = {"name": name, "kind": plural}
    if group:
        details["group"] = group
    return StatusError(409, f'{qualified} "{name}" already exists', "AlreadyExists", details=details)


OPTIMISTIC_LOCK = (
    "the object has been modified; please apply your changes to the latest version and try again"
)


def conflict(qualified: str, name: str, group: str, plural: str, why: str = OPTIMISTIC_LOCK) -> StatusError:
    details: dict[str, Any] = {"name": name, "kind": plural}
    if group:
        details["group"] = group
    return StatusError(409, f'Operation cannot be fulfilled on {qualified} "{name}": {why}', details=details)


def invalid_object(qualified_kind: str, name: str, group: str, kind: str, causes: list[Cause]) -> StatusError:
    """422 Invalid: `Service "web" is invalid: spec.ports[0].port: Invalid value: ...`."""
    parts = [f"{c.field}: {c.message}" if c.field else c.message for c in causes]
    summary = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    details: dict[str, Any] = {"name": name, "kind": kind}
    if group:
        details["group"] = group
    return StatusError(
        422, f'{qualified_kind} "{name}" is invalid: {summary}', causes=causes, details=details
    )


def bad_request(message: str) -> StatusError:
    return StatusError(400, message)


NO_RESOURCE = "the server could not find the requested resource"
