"""lbipam's typed Kubernetes API errors, and the back-off every retry loop in lbipam.k8s uses.

`Kube` turns every failure (an HTTP error Status, a broken connection, a timeout, an ERROR watch
event) into one of these, so neither aiohttp's nor kubernetes_asyncio's exceptions reach the
controllers. The split follows kopf: a `TemporaryError` is worth retrying after a back-off, a
`PermanentError` is not (until something else changes). Specific subclasses name the cases callers
branch on: `NotFound`, `Conflict`, `AlreadyExists`, `Invalid`, `Expired`, `Forbidden`, `BadRequest`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from lbipam.usererror import UserError

log = logging.getLogger("lbipam.k8s")
T = TypeVar("T")


class KubeError(Exception):
    """An API call failed. `status` is the Kubernetes Status dict (empty when there was none)."""

    def __init__(
        self, message: str, *, code: int = 0, reason: str = "", status: Mapping[str, Any] | None = None
    ) -> None:
        head = " ".join(str(part) for part in (code or "", reason) if part) or "Error"
        super().__init__(f"{head}: {message}")
        self.code = code
        self.reason = reason
        self.message = message
        self.status: dict[str, Any] = dict(status or {})

    @property
    def causes(self) -> list[dict[str, Any]]:
        """The Status' details.causes (field, reason, message), if any."""
        details = self.status.get("details") or {}
        causes = details.get("causes") if isinstance(details, dict) else None
        return [c for c in causes if isinstance(c, dict)] if isinstance(causes, list) else []


class TemporaryError(KubeError):
    """Worth retrying with back-off: 429, 5xx, connection failures, timeouts."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class PermanentError(KubeError):
    """Retrying the same request will fail the same way."""


class BadRequest(PermanentError):
    """400: the request itself is wrong (e.g. an unsupported field selector)."""


class Unauthorized(PermanentError):
    """401: no or bad credentials."""


class Forbidden(PermanentError):
    """403: RBAC says no."""


class NotFound(PermanentError):
    """404: the object (or the kind) does not exist."""


class Conflict(PermanentError):
    """409 Conflict: the resourceVersion we wrote against is stale; re-read and try again."""


class AlreadyExists(PermanentError):
    """409 AlreadyExists: create of a name that is taken."""


class Expired(PermanentError):
    """410: the resourceVersion (or continue token) is older than the server's history: relist."""


class Invalid(PermanentError):
    """422: the object fails validation; `causes` say which fields and why."""

    def __str__(self) -> str:
        text = super().__str__()
        # The real server already lists the causes in its message; add them only if it did not.
        missing = [c for c in self.causes if str(c.get("field", "")) not in self.message]
        fields = "; ".join(f"{c.get('field', '?')}: {c.get('message', '')}" for c in missing)
        return f"{text} ({fields})" if fields else text


class KubeConfigError(PermanentError, UserError):
    """No usable kubeconfig or in-cluster configuration: the user's to fix, so a command says it
    in one line (`lbipam.usererror`)."""

    def __str__(self) -> str:
        return self.message


_BY_CODE: dict[int, type[KubeError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    410: Expired,
    422: Invalid,
}
TEMPORARY_CODES = frozenset({408, 429, 500, 502, 503, 504})


def _number(value: Any, kind: Callable[[Any], T]) -> T | None:
    """`kind(value)`, or None when the server sent something that is not a number."""
    try:
        return kind(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def error_from_status(code: int, status: Mapping[str, Any], retry_after: float | None = None) -> KubeError:
    """The typed error for an HTTP code and its (possibly empty) Status dict."""
    code = _number(status.get("code"), int) or code
    reason = str(status.get("reason") or "")
    message = str(status.get("message") or reason or f"HTTP {code}")
    details = status.get("details")
    if retry_after is None and isinstance(details, dict):
        retry_after = _number(details.get("retryAfterSeconds"), float)
    if code in TEMPORARY_CODES or code >= 500:
        return TemporaryError(message, code=code, reason=reason, status=status, retry_after=retry_after)
    cls: type[KubeError]
    if code == 409:
        cls = AlreadyExists if reason == "AlreadyExists" else Conflict
    else:
        cls = _BY_CODE.get(code, PermanentError)
    return cls(message, code=code, reason=reason, status=status)


def error_from_body(code: int, body: bytes, retry_after: str | None = None) -> KubeError:
    """The typed error for an HTTP error response; the body need not be a Status."""
    try:
        status: Any = json.loads(body) if body else {}
    except ValueError:
        status = None
    if not isinstance(status, dict) or status.get("kind") not in (None, "Status"):
        # A proxy's HTML page, or JSON that is not a Status: keep its start as the message.
        status = {"message": body[:200].decode("utf-8", "replace").strip()} if body else {}
    try:
        seconds = float(retry_after) if retry_after else None
    except ValueError:
        seconds = None
    return error_from_status(code, status, seconds)


# One generator for every Backoff: seeding a new one from os.urandom per request shows up in profiles.
_JITTER = random.Random()


class Backoff:
    """Exponential back-off with full jitter: attempt n waits uniform(0, min(cap, base * 2**n)).

    Full jitter spreads the controller replicas and speakers that all lost the same API server at
    once, so they do not come back in lockstep.
    """

    def __init__(self, base: float = 0.2, cap: float = 30.0, rng: random.Random | None = None) -> None:
        if base <= 0 or cap < base:
            raise ValueError(f"back-off needs 0 < base <= cap, got base={base} cap={cap}")
        self.base = base
        self.cap = cap
        self.attempt = 0
        self._rng = rng or _JITTER

    def next(self) -> float:
        ceiling = min(self.cap, self.base * 2 ** min(self.attempt, 32))
        self.attempt += 1
        # Never zero: a tight loop against a failing server is what back-off exists to prevent.
        return max(self.base / 10, self._rng.uniform(0, ceiling))

    def reset(self) -> None:
        self.attempt = 0


async def retry(
    op: Callable[[], Awaitable[T]],
    *,
    what: str = "request",
    attempts: int = 6,
    conflicts: bool = False,
    backoff: Backoff | None = None,
) -> T:
    """Run `op` until it succeeds, retrying TemporaryError (and Conflict if `conflicts`).

    `op` is called afresh each time, so on a Conflict it should re-read what it writes against.
    After `attempts` tries the last error is raised; permanent errors are raised at once.
    """
    if attempts < 1:
        raise ValueError(f"retry of {what} needs at least one attempt, got {attempts}")
    delays = backoff or Backoff(base=0.05, cap=2.0)
    for attempt in range(1, attempts + 1):
        try:
            return await op()
        except (TemporaryError, Conflict) as err:
            if (isinstance(err, Conflict) and not conflicts) or attempt == attempts:
                raise
            delay = delays.next()
            if isinstance(err, TemporaryError) and err.retry_after:
                delay = max(delay, min(err.retry_after, delays.cap))
            log.info("retrying what=%s attempt=%d delay=%.2fs error=%r", what, attempt, delay, str(err))
            await asyncio.sleep(delay)
    raise AssertionError("unreachable: the last attempt returns or raises")
