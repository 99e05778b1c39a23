"""The Prometheus metrics of lbipam (DESIGN.md "Metrics"): one registry per process, filled at
scrape time from the live state.

Controller (`controller_registry(app)`, called by `lbipam.controllers.main`):
- `lbipam_pool_addresses{pool,family,state}` -- LoadBalancerIPPool addresses; state is total, used
  or available, family ipv4 or ipv6 (only the families the pool serves); the numbers of the pool's
  status;
- `lbipam_pool_exhausted{pool,family}` -- 1 while the pool's Exhausted condition is True and
  names that family, else 0 (one series per family the pool serves);
- `lbipam_allocations_total{result}` -- see `lbipam.observe.results`;
- `lbipam_podcidr_pool_cidrs{pool,family,state}`, `lbipam_podcidr_pool_exhausted{pool,family}`,
  `lbipam_podcidr_allocations_total{result}` -- the same for PodCIDRPools, counted in node CIDRs
  (only with `--podcidr-target` other than none);
- `lbipam_leader{controller}` -- 1 while this replica leads, per controller (lbipam, podcidr).
Pool series come from the leader only (a standby plans nothing): sum or max over replicas.

Speaker (`speaker_registry(peers)`, for `lbipam speaker`): `lbipam_bgp_session_up{peer}` and
`lbipam_bgp_routes_announced{peer}`, from a callable the speaker gives; for peers with BFD,
`lbipam_bfd_session_state{peer,state}` (1 for the current state of Up, Down, Init, AdminDown)
and `lbipam_bfd_state_changes_total{peer,state}` (transitions into each state).

Collectors run in the event loop's thread (the aiohttp handler of `lbipam.observe.server` calls
them), where the planners live, so they read them without locks. This module imports nothing of
the controllers or of bgp (the two must stay independent); it sees them through protocols.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import CollectorRegistry

from lbipam.core.poolstatus import PoolLike, pool_status
from lbipam.observe.results import LB_RESULTS, PODCIDR_RESULTS

STATES = ("total", "used", "available")


def new_registry() -> CollectorRegistry:
    """A registry of this process's own (not prometheus_client's global one, so that tests run
    several in one process), with the usual process_*, python_gc_* and python_info series."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


# ---- controller ---------------------------------------------------------------------------------
class PlanningLoopLike(Protocol):
    """What the collector reads of a `PlanningLoop`: its name and, while leading, its planner."""

    @property
    def name(self) -> str: ...
    @property
    def planner(self) -> Any: ...  # LBPlanner | PodCIDRPlanner | None: `.pools` maps name -> PoolLike


class ControllerLike(Protocol):
    """What the collector reads of a `ControllerApp`."""

    @property
    def lb(self) -> PlanningLoopLike: ...
    @property
    def podcidr(self) -> PlanningLoopLike | None: ...
    @property
    def leading(self) -> bool: ...
    def results(self, controller: str) -> Counter[str]: ...


@dataclass(frozen=True)
class _Names:
    """The series of one pool kind."""

    pools: str
    what: str  # what a pool counts
    one: str  # one of them
    exhausted: str
    kind: str
    allocations: str
    results: tuple[str, ...]


_LB = _Names(
    "lbipam_pool_addresses",
    "addresses",
    "address",
    "lbipam_pool_exhausted",
    "LoadBalancerIPPool",
    "lbipam_allocations",
    LB_RESULTS,
)
_PODCIDR = _Names(
    "lbipam_podcidr_pool_cidrs",
    "node CIDRs",
    "node CIDR",
    "lbipam_podcidr_pool_exhausted",
    "PodCIDRPool",
    "lbipam_podcidr_allocations",
    PODCIDR_RESULTS,
)


class ControllerCollector:
    """Reads the controller's planners and result counts at each scrape."""

    def __init__(self, app: ControllerLike) -> None:
        self.app = app

    def describe(self) -> Iterator[Metric]:
        """The families without samples: the registry checks names against them, and need not
        call `collect` (nor the planners) when the collector is registered."""
        yield self._leader([])
        for names, _ in self._kinds():
            yield from self._families(names)

    def collect(self) -> Iterator[Metric]:
        loops = [loop for _, loop in self._kinds()]
        yield self._leader(loops)
        for names, loop in self._kinds():
            addresses, exhausted, allocations = self._families(names)
            pools: Mapping[str, PoolLike] = loop.planner.pools if loop.planner is not None else {}
            for name in sorted(pools):
                _add_pool(addresses, exhausted, name, pools[name])
            counts = self.app.results(loop.name)
            for result in dict.fromkeys(names.results + tuple(sorted(counts))):
                allocations.add_metric([result], float(counts.get(result, 0)))
            yield from (addresses, exhausted, allocations)

    def _kinds(self) -> list[tuple[_Names, PlanningLoopLike]]:
        podcidr = self.app.podcidr
        return [(_LB, self.app.lb)] + ([(_PODCIDR, podcidr)] if podcidr is not None else [])

    def _leader(self, loops: list[PlanningLoopLike]) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "lbipam_leader",
            "1 while this replica leads (holds the Lease, or runs without one), else 0",
            labels=["controller"],
        )
        for loop in loops:
            family.add_metric([loop.name], 1.0 if self.app.leading else 0.0)
        return family

    @staticmethod
    def _families(names: _Names) -> tuple[GaugeMetricFamily, GaugeMetricFamily, CounterMetricFamily]:
        return (
            GaugeMetricFamily(
                names.pools,
                f"{names.kind} {names.what} by family and state (total, used, available), as the "
                "pool's status counts them; reported by the leader",
                labels=["pool", "family", "state"],
            ),
            GaugeMetricFamily(
                names.exhausted,
                f"1 while the {names.kind} has no free {names.what} of the family (its Exhausted "
                "condition names the family), else 0",
                labels=["pool", "family"],
            ),
            CounterMetricFamily(
                names.allocations,
                f"{names.kind} allocation results: allocated and released (one per {names.one}), and "
                "each new failure by its condition reason",
                labels=["result"],
            ),
        )


def _add_pool(addresses: GaugeMetricFamily, exhausted: GaugeMetricFamily, name: str, state: PoolLike) -> None:
    used_up = pool_status(state).exhausted_families
    for family, allocator in sorted(state.allocators.items()):
        counts = (allocator.total, allocator.used, allocator.available)
        for which, value in zip(STATES, counts, strict=True):
            addresses.add_metric([name, f"ipv{family}", which], float(value))
        exhausted.add_metric([name, f"ipv{family}"], 1.0 if family in used_up else 0.0)


def controller_registry(app: ControllerLike) -> CollectorRegistry:
    """A new registry with the controller's metrics (and the process ones)."""
    registry = new_registry()
    registry.register(ControllerCollector(app))
    return registry


# ---- speaker ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PeerMetrics:
    """One BGP peer as the speaker sees it now."""

    up: bool  # the session is Established
    routes: int  # routes announced to the peer (acknowledged by ExaBGP)
    bfd: str | None = None  # the BFD state (Up, Down, Init, AdminDown); None: BFD is off
    bfd_changes: Mapping[str, int] = field(default_factory=dict)  # transitions into each state


BFD_STATES = ("Up", "Down", "Init", "AdminDown")


class SpeakerCollector:
    """`lbipam_bgp_session_up{peer}` and `lbipam_bgp_routes_announced{peer}`; `peers()` is called
    at each scrape (in the event loop) and maps BGPPeer name -> `PeerMetrics`."""

    def __init__(self, peers: Callable[[], Mapping[str, PeerMetrics]]) -> None:
        self.peers = peers

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        up, routes, bfd_state, bfd_changes = self._families()
        for name, peer in sorted(self.peers().items()):
            up.add_metric([name], 1.0 if peer.up else 0.0)
            routes.add_metric([name], float(peer.routes))
            if peer.bfd is not None:
                for state in BFD_STATES:
                    bfd_state.add_metric([name, state], 1.0 if peer.bfd == state else 0.0)
                    bfd_changes.add_metric([name, state], float(peer.bfd_changes.get(state, 0)))
        yield from (up, routes, bfd_state, bfd_changes)

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily, CounterMetricFamily]:
        return (
            GaugeMetricFamily(
                "lbipam_bgp_session_up", "1 while the BGP session is Established, else 0", labels=["peer"]
            ),
            GaugeMetricFamily(
                "lbipam_bgp_routes_announced", "routes this node announces to the peer", labels=["peer"]
            ),
            GaugeMetricFamily(
                "lbipam_bfd_session_state",
                "1 for the BFD session's current state (Up, Down, Init, AdminDown), else 0",
                labels=["peer", "state"],
            ),
            CounterMetricFamily(
                "lbipam_bfd_state_changes",
                "BFD session state changes, by the state entered",
                labels=["peer", "state"],
            ),
        )


def speaker_registry(peers: Callable[[], Mapping[str, PeerMetrics]]) -> CollectorRegistry:
    """A new registry with the speaker's metrics (and the process ones)."""
    registry = new_registry()
    registry.register(SpeakerCollector(peers))
    return registry
