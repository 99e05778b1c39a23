"""What the controllers' plans did, counted for `lbipam_allocations_total` and
`lbipam_podcidr_allocations_total`.

The writers (`LBWriter.service`, `PodCIDRWriter.node`/`gone`) are the one place every plan goes
through, so each holds a `Results` and counts there. The counts follow the Events the plans carry:
one `allocated` per IP (or node CIDR) given, one `released` per IP (or CIDR) given back, and one
failure, labelled with the condition's reason (`outOfIPs`, `noPool`, ...), each time an object
newly fails -- not each time a failing object is planned again. Pure: no Prometheus here, so the
writers stay free of it; `lbipam.observe.metrics` turns the counts into samples at scrape time.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from lbipam.core import lbrequests, pcplanner
from lbipam.core.lbplanner import PlannedEvent
from lbipam.core.lbviews import CurrentCondition

ALLOCATED = "allocated"
RELEASED = "released"
# Normal Events that say an address (or node CIDR) was given or taken back.
_NORMAL = {
    "IPAllocated": ALLOCATED,
    "IPReleased": RELEASED,
    "CIDRAssigned": ALLOCATED,
    "CIDRReleased": RELEASED,
}
_LEADING_CAPITALS = re.compile(r"^[A-Z]+(?=[A-Z][a-z]|$)|^[A-Z]")


def label(reason: str) -> str:
    """The result label of an Event or condition reason: `IPAllocated` -> `allocated`, else the
    reason in lower camel case (`OutOfIPs` -> `outOfIPs`, `CIDRNotAvailable` -> `cidrNotAvailable`)."""
    if reason in _NORMAL:
        return _NORMAL[reason]
    return _LEADING_CAPITALS.sub(lambda m: m.group(0).lower(), reason)


# Every result each controller can count, so that each series exists (at 0) from the start.
LB_RESULTS = tuple(
    label(r)
    for r in (
        "IPAllocated",
        "IPReleased",
        lbrequests.NO_POOL,
        lbrequests.POOL_SELECTOR_MISMATCH,
        lbrequests.OUT_OF_IPS,
        lbrequests.ALREADY_ALLOCATED,
        lbrequests.INCOMPATIBLE_SHARING,
        lbrequests.INVALID_REQUEST,
    )
)
PODCIDR_RESULTS = tuple(
    label(r)
    for r in (
        "CIDRAssigned",
        "CIDRReleased",
        pcplanner.NO_POOL,
        pcplanner.NOT_AVAILABLE,
        pcplanner.OUTSIDE_POOLS,
    )
)


class Results(Counter[str]):
    """Result label -> how many times (see the module docstring)."""

    def count(self, events: Iterable[PlannedEvent], condition: CurrentCondition | None) -> None:
        """Count one plan: its Normal Events, and its failed condition when a Warning announces it
        (planners warn only when the condition changes, so a failure is counted once)."""
        warned = False
        for event in events:
            if event.type == "Normal":
                self[label(event.reason)] += 1
            else:
                warned = True
        if warned and condition is not None and condition.status == "False":
            self[label(condition.reason)] += 1
