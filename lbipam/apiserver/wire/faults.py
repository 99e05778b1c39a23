"""Fault injection for tests: failing writes, dropped watches, a compacted history.

`server.faults` in process, and `POST /debug/lbipam/faults` for tests and benchmarks in another
process (a JSON body: {"action": "fail_next_writes", "n": 3, "code": 429, "resource": "services"},
{"action": "drop_watches"} or {"action": "compact"}). The HTTP layer calls `check_write` before
every write request it serves; the server's own writes are never failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lbipam.apiserver.errors import StatusError, conflict
from lbipam.apiserver.storage.registry import ResourceType
from lbipam.apiserver.storage.store import Store
from lbipam.apiserver.storage.watch import WatchHub

CODES = (409, 429, 500)


@dataclass
class _Rule:
    remaining: int
    code: int
    resource: str | None  # a plural, e.g. "services"; None for every resource


class Faults:
    def __init__(self, hub: WatchHub, store: Store) -> None:
        self._hub = hub
        self._store = store
        self._rules: list[_Rule] = []

    def fail_next_writes(self, n: int, code: int = 500, resource: str | None = None) -> None:
        """The next `n` write requests (to `resource` only, if given) fail with `code`."""
        if code not in CODES:
            raise ValueError(f"code must be one of {CODES}, not {code}")
        if n > 0:
            self._rules.append(_Rule(n, code, resource))

    def drop_watches(self) -> int:
        """Close every open watch stream now; returns how many were open."""
        return self._hub.close_all()

    def compact(self) -> None:
        """Forget the event history: watches resuming from an older resourceVersion get 410."""
        self._store.compact()

    def pending(self) -> list[dict[str, Any]]:
        return [{"remaining": r.remaining, "code": r.code, "resource": r.resource} for r in self._rules]

    def check_write(self, rtype: ResourceType, name: str | None) -> None:
        """Raise the injected error if a rule applies to this write (and use one of its turns)."""
        for rule in self._rules:
            if rule.resource in (None, rtype.plural):
                rule.remaining -= 1
                if rule.remaining <= 0:
                    self._rules.remove(rule)
                raise _error(rule.code, rtype, name or "")

    def apply(self, body: Any) -> dict[str, Any]:
        """The HTTP endpoint's action; StatusError(400) for a malformed request."""
        if not isinstance(body, dict):
            raise StatusError(400, "expected a JSON object with an action")
        action = body.get("action")
        if action == "fail_next_writes":
            n, code, resource = body.get("n", 1), body.get("code", 500), body.get("resource")
            if not isinstance(n, int) or not isinstance(code, int) or code not in CODES:
                raise StatusError(400, f"fail_next_writes needs an integer n and a code in {CODES}")
            if resource is not None and not isinstance(resource, str):
                raise StatusError(400, "resource must be a plural resource name such as services")
            self.fail_next_writes(n, code, resource)
        elif action == "drop_watches":
            return {"dropped": self.drop_watches(), "pending": self.pending()}
        elif action == "compact":
            self.compact()
        elif action is not None:
            raise StatusError(400, f"unknown action {action!r}: fail_next_writes, drop_watches or compact")
        return {"pending": self.pending()}


def _error(code: int, rtype: ResourceType, name: str) -> StatusError:
    if code == 409:
        return conflict(rtype.qualified, name, rtype.group, rtype.plural)
    if code == 429:
        return StatusError(
            429, "Too many requests, please try again later.", details={"retryAfterSeconds": 1}
        )
    return StatusError(500, "Internal error occurred: injected fault (lbipam fault injection)")
