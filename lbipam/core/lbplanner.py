"""The LB-IPAM planner: Service and pool views in, a plan per Service out.

The planner holds the allocators (through `lbpools`) and the book of holdings (`lbholdings`),
and decides for one Service at a time which IPs it keeps, gets or loses, with the condition and
the Events that say why (DESIGN.md "Services"; the semantics are written out in README.md). It
does no I/O: the controller's executor turns a `ServicePlan` into status writes and Events.
Start-up order is the caller's duty: `set_pools`, then `import_service` for every Service, then
`restore_held` (the reuse delays the pools' status recorded), then `plan`. Released addresses
are recorded in `record` (`lbreuse`), which carries their reuse delay across pool rebuilds and
into the pools' status; `starved` pool families (a Service waits there in vain) make a pool
Exhausted for that family.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from lbipam.core.allocator import AddressInUse, AllocatorError, OutOfRange, PoolExhausted
from lbipam.core.blockindex import BlockIndex
from lbipam.core.lbchoice import Waits, eligible, mismatch, why_not_serving
from lbipam.core.lbholdings import Book, Holding, canonical
from lbipam.core.lbpools import PoolState, rebuild
from lbipam.core.lbrequests import (
    ALREADY_ALLOCATED,
    FAMILY_NAME,
    INVALID_REQUEST,
    NO_POOL,
    OUT_OF_IPS,
    SATISFIED,
    Failure,
    Wanted,
)
from lbipam.core.lbrequests import wanted as requested_families
from lbipam.core.lbreuse import Held, ReuseRecord
from lbipam.core.lbviews import REQUIRE_DUAL_STACK, CurrentCondition, PoolView, ServiceView
from lbipam.core.poolorder import pool_index
from lbipam.core.sharing import ShareInfo, first_refusal


@dataclass(frozen=True, slots=True)
class PlannedEvent:
    type: str  # Normal | Warning
    reason: str  # IPAllocated | IPReleased | AllocationFailed
    note: str


@dataclass(frozen=True, slots=True)
class ServicePlan:
    """What the Service should carry. `manage=False`: lbipam lets go of it (remove our condition
    and annotation; clear the ingress when `clear_ingress`)."""

    key: str
    manage: bool = True
    ingress: tuple[str, ...] = ()
    allocated_from: tuple[str, ...] = ()
    condition: CurrentCondition | None = None
    clear_ingress: bool = False
    events: tuple[PlannedEvent, ...] = ()


class LBPlanner:
    def __init__(self, reuse_delay: float = 30.0) -> None:
        self.reuse_delay = reuse_delay
        self.pools: dict[str, PoolState] = {}
        self.book = Book()
        self.waiting: set[str] = set()  # Services not (fully) satisfied, retried when space frees
        self.freed = False  # an address became free since the caller last reset this
        self.touched: set[str] = set()  # pools whose counts changed since the caller last cleared it
        self._index = BlockIndex(())
        self._import_notes: dict[str, str] = {}
        self.record = ReuseRecord()  # released addresses still held back, across rebuilds
        self.waits = Waits()  # which pool families Services wait for in vain

    # ---- pools --------------------------------------------------------------------------
    def set_pools(self, views: Iterable[PoolView], now: float) -> None:
        """Take a new set of pools; holdings follow their addresses into the rebuilt pools."""
        previous = self.pools
        self.pools = rebuild(views, previous, self.reuse_delay)
        self._index = pool_index(self.pools)
        self.touched.update(self.pools)
        for holding in list(self.book.holdings.values()):
            old = previous.get(holding.pool) if holding.pool else None
            new = self.pools.get(holding.pool) if holding.pool else None
            if old is not None and new is not None and new.allocators is old.allocators and new.serving:
                continue  # same allocator: the address is still allocated there
            self._rehome(holding, now)
        self.touched |= self.record.apply(self.pools, self._index.find)
        for name, state in self.pools.items():
            state.starved = self.waits.families(name)
        self.freed = True

    def _serving_pool_of(self, ip: str, family: int) -> PoolState | None:
        name = self._index.find(ip, family)
        return self.pools[name] if name is not None else None

    def _rehome(self, holding: Holding, now: float) -> None:
        if holding.pool is not None:
            holding.left = holding.pool  # for the reuse delay, should it be released homeless
        home = self._serving_pool_of(holding.ip, holding.family)
        owner = next(iter(holding.holders))
        if home is not None:
            try:
                home.allocators[holding.family].allocate(owner, holding.ip, now=now)
            except (AllocatorError, ValueError):
                home = None
        holding.pool = home.name if home is not None else None
        if home is not None:
            holding.kept = False
            self.touched.add(home.name)

    # ---- start-up -----------------------------------------------------------------------
    def import_service(self, view: ServiceView, now: float) -> None:
        """Register the IPs a Service already carries, before anything new is allocated."""
        if not view.handled:
            return
        info = ShareInfo.of(view)
        for text in view.ingress:
            parsed = canonical(text)
            if parsed is None or parsed[1] in self.book.of(view.key):
                continue
            ip, family = parsed
            holding = self.book.holdings.get(ip)
            if holding is not None:
                refusal = first_refusal(info, list(holding.holders.values()), ip)
                if refusal is None:
                    self.book.join(holding, info)
                else:
                    self._import_notes[view.key] = f"{refusal.message}; it keeps the IP, this Service moves"
                continue
            holding = Holding(ip, family, None, kept=True)
            self.book.join(holding, info)
            self._rehome(holding, now)
            if holding.pool is None and any(p not in self.pools for p in view.allocated_from):
                # Handed out from a pool deleted while no controller ran: it moves, as it would
                # have had the deletion been seen (an IP lbipam never handed out stays).
                holding.kept = False

    def restore_held(self, held: Iterable[Held], pauses: Mapping[str, tuple[float, int]], now: float) -> None:
        """Take in the reuse delays the pools' status recorded (after `import_service`, so that
        an address a Service carries is never held back from it)."""
        self.record.restore(held, pauses, now)
        self.touched |= self.record.apply(self.pools, self._index.find)

    # ---- planning -----------------------------------------------------------------------
    def plan(self, view: ServiceView, now: float) -> ServicePlan:
        """Decide the IPs of one Service (handled or not) and say why."""
        if not view.handled:
            return self.forget(view.key, now, view)
        events: list[PlannedEvent] = []
        note = self._import_notes.pop(view.key, None)
        if note:
            events.append(PlannedEvent("Warning", "AllocationFailed", note))
        wanted, failure = requested_families(view)
        info = ShareInfo.of(view)
        held = self.book.of(view.key)
        for family, ip in held.items():
            if not self._may_keep(view, info, family, ip, None if failure else wanted):
                self._release(view.key, ip, now, events)
        starving: set[tuple[str, int]] = set()
        if failure is not None:  # a request we cannot read: keep what the Service has (and may share)
            for ip in self.book.of(view.key).values():
                self.book.update(self.book.holdings[ip], info)
            self._starve(view.key, starving)
            return self._result(view, self.book.of(view.key), [failure], events)
        got: dict[int, str] = {}
        failures: list[Failure] = []
        for family, requested in wanted.items():
            kept = self.book.of(view.key).get(family)
            if kept is not None:
                self.book.update(self.book.holdings[kept], info)
                got[family] = kept
                continue
            taken = self._take(view, info, family, requested, now, starving)
            if isinstance(taken, Failure):
                failures.append(taken)
            else:
                got[family] = taken
                events.append(PlannedEvent("Normal", "IPAllocated", f"{taken} {self._origin(taken)}"))
        if failures and view.policy == REQUIRE_DUAL_STACK and got:
            self._roll_back(view.key, got, held, now, events)
            got = {}
        self._starve(view.key, starving)
        return self._result(view, got, failures, events)

    def forget(self, key: str, now: float, view: ServiceView | None = None) -> ServicePlan:
        """A Service that is gone or no longer handled: release its IPs."""
        events: list[PlannedEvent] = []
        for ip in self.book.of(key).values():
            self._release(key, ip, now, events)
        self.waiting.discard(key)
        self._import_notes.pop(key, None)
        self._starve(key, set())
        ours = view is not None and (view.condition is not None or view.marked or bool(events))
        if ours and not events and view is not None:  # never imported (unhandled since a restart)
            events = [
                PlannedEvent("Normal", "IPReleased", f"{ip} (no longer handled)") for ip in view.ingress
            ]
        return ServicePlan(key, manage=False, clear_ingress=ours, events=tuple(events))

    # ---- keeping and taking -------------------------------------------------------------
    def _may_keep(
        self, view: ServiceView, info: ShareInfo, family: int, ip: str, wanted: Wanted | None
    ) -> bool:
        """`wanted` None: the request cannot be read, so the Service keeps all it may still share."""
        holding = self.book.holdings.get(ip)
        if holding is None or wanted is None:
            return holding is not None and first_refusal(info, holding.others(view.key), ip) is None
        requested = wanted.get(family)
        if family not in wanted or (requested is not None and requested != ip):
            return False
        if holding.pool is None:
            return holding.kept  # an orphan from start-up stays until a pool takes it in
        state = self.pools.get(holding.pool)
        if state is None or not state.serving or state.accepted is None:
            return False
        if not (state.accepted.frozen or state.accepted.selects(view)):  # frozen: keeps its holders
            return False
        if view.pools is not None and holding.pool not in view.pools:
            return False
        return first_refusal(info, holding.others(view.key), ip) is None

    def _take(
        self,
        view: ServiceView,
        info: ShareInfo,
        family: int,
        requested: str | None,
        now: float,
        starving: set[tuple[str, int]],
    ) -> str | Failure:
        """A new address of `family`: the one requested; else one held under the Service's
        sharing key that it may share, in the first eligible pool in pool order that has one
        (lowest IP first); else a free one, pools in order. `starving` gets the pools it waits on."""
        if requested is not None:
            return self._take_requested(view, info, family, requested, now)
        pools = eligible(self.pools, view, family, lambda name: self.record.paused_at(name, now))
        if isinstance(pools, Failure):
            return pools
        if info.key is not None:
            shared = self.book.shared_under(info.key, family)
            for state in pools:
                for holding in shared:
                    if holding.pool == state.name and not first_refusal(
                        info, holding.others(view.key), holding.ip
                    ):
                        self.book.join(holding, info)
                        return holding.ip
        for state in pools:
            try:
                net = state.allocators[family].allocate(view.key, now=now)
            except PoolExhausted:
                continue
            return self._hold(str(net.ip), family, state.name, info)
        starving.update((p.name, family) for p in pools)
        names = ", ".join(p.name for p in pools)
        return Failure(OUT_OF_IPS, f"no free {FAMILY_NAME[family]} address in pool(s) {names}")

    def _starve(self, key: str, pairs: set[tuple[str, int]]) -> None:
        """Service `key` now waits in vain for these (pool, family): their Exhausted says so."""
        for pool, _ in self.waits.change(key, pairs):
            state = self.pools.get(pool)
            if state is not None:
                state.starved = self.waits.families(pool)
                self.touched.add(pool)

    def _take_requested(
        self, view: ServiceView, info: ShareInfo, family: int, ip: str, now: float
    ) -> str | Failure:
        source = view.requested_from
        holding = self.book.holdings.get(ip)
        state = self._serving_pool_of(ip, family)
        if state is None or state.accepted is None:
            return Failure(
                NO_POOL, f"{ip} ({source}) lies in no pool{why_not_serving(self.pools, ip, family)}"
            )
        refused = mismatch(view, state, ip, source)
        if refused is not None:
            return refused
        if holding is not None:
            refusal = first_refusal(info, holding.others(view.key), ip)
            if refusal is not None:
                return Failure(refusal.reason, f"{refusal.message} ({source})")
            self.book.join(holding, info)
            return ip
        if state.accepted.disabled:
            return Failure(NO_POOL, f"{ip} ({source}) is in pool {state.name}, which is disabled")
        if self.record.paused_at(state.name, now):
            return Failure(
                ALREADY_ALLOCATED,
                f"{ip} ({source}) is in pool {state.name}, which holds back the addresses released before "
                "the controller restarted until their reuse delay ends",
            )
        try:
            state.allocators[family].allocate(view.key, ip, now=now)
        except AddressInUse as err:  # no owner: the reuse delay holds it (say so without clock readings)
            why = f"was released by {err.owner} and is held back by the reuse delay ({self.reuse_delay:g}s)"
            held = state.allocators[family].owner(ip) is None
            return Failure(ALREADY_ALLOCATED, f"{ip} ({source}) {why}" if held else f"{ip} ({source}): {err}")
        except OutOfRange as err:
            return Failure(INVALID_REQUEST, f"{ip} ({source}): {err}")
        return self._hold(ip, family, state.name, info)

    def _hold(self, ip: str, family: int, pool: str, info: ShareInfo) -> str:
        self.book.join(Holding(ip, family, pool), info)
        self.touched.add(pool)
        self.touched |= self.record.taken(ip)  # its last owner took it back within the delay
        return ip

    def _release(
        self, key: str, ip: str, now: float, events: list[PlannedEvent], publish: bool = True
    ) -> None:
        origin = self._origin(ip)
        gone = self.book.leave(key, ip)
        if publish:
            events.append(PlannedEvent("Normal", "IPReleased", f"{ip} {origin}".rstrip()))
        if gone is None:
            return
        if publish and self.reuse_delay > 0:
            held = Held(ip, gone.family, now + self.reuse_delay, key, gone.pool or gone.left)
            self.touched |= self.record.released(held, gone.pool)
        if gone.pool is None:
            return
        state = self.pools.get(gone.pool)
        allocator = state.allocators.get(gone.family) if state is not None else None
        if allocator is not None and allocator.contains(ip):
            allocator.release(ip, now=now, quarantine=publish)
            self.touched.add(gone.pool)
            # Unpublished: what this plan took was free before it; no waiting Service gains from it.
            self.freed = self.freed or (publish and self.reuse_delay == 0)

    def _roll_back(
        self, key: str, got: dict[int, str], held: dict[int, str], now: float, events: list[PlannedEvent]
    ) -> None:
        """RequireDualStack is all or nothing: give back what this plan took or kept."""
        for family, ip in got.items():
            fresh = held.get(family) != ip
            if fresh:
                events[:] = [
                    e for e in events if not (e.reason == "IPAllocated" and e.note.startswith(f"{ip} "))
                ]
            self._release(key, ip, now, events, publish=not fresh)

    def _origin(self, ip: str) -> str:
        holding = self.book.holdings.get(ip)
        return f"(pool {holding.pool})" if holding is not None and holding.pool else ""

    # ---- results ------------------------------------------------------------------------
    def _result(
        self, view: ServiceView, got: dict[int, str], failures: list[Failure], events: list[PlannedEvent]
    ) -> ServicePlan:
        families = [f for f in view.families if f in got] + [f for f in got if f not in view.families]
        ips = tuple(got[f] for f in families)
        pools = tuple(dict.fromkeys(p for ip in ips if (p := self._pool_of(ip))))
        orphans = [ip for ip in ips if self._pool_of(ip) is None]
        done = ", ".join(f"{ip} {self._origin(ip)}".rstrip() for ip in ips)
        if failures and (
            not ips or view.policy == REQUIRE_DUAL_STACK or failures[0].reason == INVALID_REQUEST
        ):
            condition = CurrentCondition("False", failures[0].reason, "; ".join(f.message for f in failures))
        elif orphans:  # (a broken request comes first: it is what the user must fix)
            message = f"{', '.join(orphans)} lies in no pool that serves it; kept from before the controller "
            condition = CurrentCondition("False", NO_POOL, message + "started and never handed out")
        elif failures:
            condition = CurrentCondition(
                "True", SATISFIED, f"{done}; {'; '.join(f.message for f in failures)}"
            )
        else:
            condition = CurrentCondition("True", SATISFIED, done)
        if condition.status == "False" and condition != view.condition:
            events.append(PlannedEvent("Warning", "AllocationFailed", condition.message))
        if failures:
            self.waiting.add(view.key)
        else:
            self.waiting.discard(view.key)
        return ServicePlan(view.key, True, ips, pools, condition, False, tuple(events))

    def _pool_of(self, ip: str) -> str | None:
        holding = self.book.holdings.get(ip)
        return holding.pool if holding is not None else None

    def expire(self, now: float) -> None:
        """End the reuse delays due by `now`; sets `freed` when an address came back."""
        for state in self.pools.values():
            for allocator in state.allocators.values():
                expiry = allocator.next_expiry
                if expiry is not None and expiry <= now:
                    allocator.expire(now)
                    self.freed = True
                    self.touched.add(state.name)
        listings, pause_ended = self.record.expire(now)
        self.touched |= listings & self.pools.keys()
        self.freed = self.freed or pause_ended

    @property
    def next_expiry(self) -> float | None:
        """When the earliest reuse delay ends (waiting Services may then be served)."""
        times = [a.next_expiry for s in self.pools.values() for a in s.allocators.values()]
        found = [t for t in (*times, self.record.next_pause_end) if t is not None]
        return min(found) if found else None
