"""metav1.Condition lists as pure functions: set one condition, find one. No I/O, no clock.

`set_condition` returns a new list in which the condition of `type` has the given status,
reason, message and observedGeneration. Per metav1.Condition, `lastTransitionTime` changes only
when the *status* changes: a new reason or message keeps the old time. So when nothing changed,
the result equals the input, and the status writer skips the write (STYLE.md convention 7).
Callers pass `now` (a datetime or an RFC 3339 string): the controllers, with the wall clock.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

STATUSES = ("True", "False", "Unknown")
# The patterns and limits metav1.Condition's validation enforces.
_REASON = re.compile(r"[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?")
_DNS_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_TYPE = re.compile(rf"({_DNS_SUBDOMAIN}/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
MAX_REASON = 1024
MAX_MESSAGE = 32768
MAX_TYPE_NAME = 316


class ConditionError(ValueError):
    """A condition that the API server would reject; `field` names the field at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"condition {field}: {message}")
        self.field = field


def rfc3339(now: datetime | str) -> str:
    """metav1.Time text: seconds precision, UTC, "Z"."""
    if isinstance(now, str):
        return now
    if now.tzinfo is None:
        raise ConditionError("lastTransitionTime", "needs a timezone-aware datetime")
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _validate(type_: str, status: str, reason: str, message: str, observed_generation: int | None) -> None:
    if not _TYPE.fullmatch(type_) or len(type_) > MAX_TYPE_NAME:
        raise ConditionError("type", f"{type_!r} is not a qualified name (e.g. Ready, lbipam.io/Thing)")
    if status not in STATUSES:
        raise ConditionError("status", f"{status!r} must be one of {', '.join(STATUSES)}")
    if not _REASON.fullmatch(reason) or len(reason) > MAX_REASON:
        raise ConditionError("reason", f"{reason!r} must be CamelCase letters, digits, '_', ',' or ':'")
    if len(message) > MAX_MESSAGE:
        raise ConditionError("message", f"is {len(message)} characters, at most {MAX_MESSAGE} allowed")
    if observed_generation is not None and observed_generation < 0:
        raise ConditionError("observedGeneration", f"{observed_generation} must not be negative")


def find_condition(conditions: Sequence[Mapping[str, Any]] | None, type_: str) -> dict[str, Any] | None:
    """A copy of the condition of `type_`, or None."""
    for condition in conditions or ():
        if condition.get("type") == type_:
            return dict(condition)
    return None


def set_condition(
    conditions: Sequence[Mapping[str, Any]] | None,
    type_: str,
    status: str,
    reason: str,
    message: str,
    observed_generation: int | None,
    now: datetime | str,
) -> list[dict[str, Any]]:
    """A new list with condition `type_` set; other conditions and the order are kept.

    lastTransitionTime is `now` for a new condition or a status change, else the old value.
    Raises `ConditionError` for values the API server would reject.
    """
    _validate(type_, status, reason, message, observed_generation)
    updated: dict[str, Any] = {"type": type_, "status": status}
    if observed_generation is not None:
        updated["observedGeneration"] = observed_generation
    updated["reason"] = reason
    updated["message"] = message
    result: list[dict[str, Any]] = []
    found = False
    for condition in conditions or ():
        if condition.get("type") != type_:
            result.append(dict(condition))
            continue
        found = True
        keep_time = condition.get("status") == status and condition.get("lastTransitionTime")
        updated["lastTransitionTime"] = keep_time or rfc3339(now)
        result.append(_ordered_like(condition, updated))
    if not found:
        updated["lastTransitionTime"] = rfc3339(now)
        result.append(updated)
    return result


def _ordered_like(old: Mapping[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """`new`, with `old`'s keys first in `old`'s order (dict equality ignores order; diffs do not)."""
    return {**{k: new[k] for k in old if k in new}, **new}
