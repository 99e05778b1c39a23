"""Kubernetes time formats: metav1.Time (RFC 3339, seconds) and metav1.MicroTime (microseconds).

Used by the event recorder (eventTime, series.lastObservedTime), leader election (acquireTime,
renewTime) and callers of `lbipam.core.conditions.set_condition` (lastTransitionTime).
"""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    """The current wall-clock time, timezone-aware UTC."""
    return datetime.now(UTC)


def rfc3339(when: datetime) -> str:
    """metav1.Time: "2006-01-02T15:04:05Z"."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_time(when: datetime) -> str:
    """metav1.MicroTime: "2006-01-02T15:04:05.000000Z"."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    """Parse either format (and any RFC 3339 offset) into an aware datetime; ValueError if malformed."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
