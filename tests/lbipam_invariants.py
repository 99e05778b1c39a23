"""The LB-IPAM invariant checker: what must hold of Services and pools read back from the API
once the controller has settled, whatever happened before. Used by test_lbipam_chaos.py.

Written independently of the planner (its own block arithmetic, pool serving and sharing rules,
from README "LoadBalancer IPAM"), so that a planner bug cannot hide itself: only label selector
matching is borrowed from lbipam.core.selectors. `problems()` returns every broken invariant as a
sentence naming the objects; an empty list means all is well.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import netaddr

from lbipam.core.selectors import compile_selector

Obj = dict[str, Any]
SATISFIED = "lbipam.io/IPAMRequestSatisfied"
LB_CLASS = "lbipam.io/bgp"
FAMILY = {"IPv4": 4, "IPv6": 6}
BITS = {4: 32, 6: 128}


# ---- pools --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Span:
    version: int
    first: int
    last: int
    prefixlen: int | None  # a cidr block's length, None for a range

    def reserved(self, allow_first_last: bool) -> set[int]:
        if allow_first_last or self.prefixlen is None or self.prefixlen >= BITS[self.version] - 1:
            return set()
        return {self.first, self.last}


def spans(spec: Mapping[str, Any]) -> list[Span] | None:
    """The blocks of a pool spec, or None when the spec is invalid (a backwards range, overlap)."""
    out: list[Span] = []
    for b in spec.get("blocks") or []:
        if "cidr" in b:
            net = netaddr.IPNetwork(b["cidr"])
            out.append(Span(net.version, net.first, net.last, net.prefixlen))
        else:
            start, stop = netaddr.IPAddress(b["start"]), netaddr.IPAddress(b.get("stop") or b["start"])
            if start.version != stop.version or int(start) > int(stop):
                return None
            out.append(Span(start.version, int(start), int(stop), None))
    for i, a in enumerate(out):
        if any(a.version == b.version and a.first <= b.last and b.first <= a.last for b in out[i + 1 :]):
            return None
    return out or None


@dataclass
class Pool:
    name: str
    obj: Obj
    accepted: Obj | None  # the spec it serves from (the last valid one it saw), or None
    blocks: list[Span] = field(default_factory=list)
    serving: bool = False
    loses_to: str | None = None
    beats: list[str] = field(default_factory=list)  # the newer pools it wins an overlap against

    @property
    def spec(self) -> Obj:
        return self.accepted or {}

    def holds(self, ip: netaddr.IPAddress) -> bool:
        """`ip` is an address this pool hands out (in a block, not a reserved one)."""
        value, allow = int(ip), bool(self.spec.get("allowFirstLastIPs"))
        return any(
            s.version == ip.version and s.first <= value <= s.last and value not in s.reserved(allow)
            for s in self.blocks
        )

    def total(self, version: int) -> int:
        allow = bool(self.spec.get("allowFirstLastIPs"))
        return sum(s.last - s.first + 1 - len(s.reserved(allow)) for s in self.blocks if s.version == version)

    def held_back(self, version: int, held: set[str]) -> set[str] | None:
        """The addresses of this pool that its status says the reuse delay holds back (and no
        Service holds); None when the status lists only some of them."""
        record = (self.obj.get("status") or {}).get("heldBack") or {}
        if record.get("omitted"):
            return None
        listed = {netaddr.IPAddress(e["ip"]) for e in record.get("addresses") or []}
        return {str(ip) for ip in listed if ip.version == version and str(ip) not in held and self.holds(ip)}

    def selects(self, svc: Service) -> bool:
        services = compile_selector(self.spec.get("serviceSelector"))
        spaces = compile_selector(self.spec.get("namespaceSelector"))
        return services.matches(svc.match_labels) and spaces.matches(svc.ns_labels)


def serving_pools(objs: list[Obj], accepted: Mapping[str, Obj | None]) -> dict[str, Pool]:
    """Pools by name; of two overlapping ones the newer (creationTimestamp, then name) serves nothing."""
    pools: dict[str, Pool] = {}
    for obj in sorted(objs, key=lambda o: (o["metadata"]["creationTimestamp"], o["metadata"]["name"])):
        name = obj["metadata"]["name"]
        pool = Pool(name, obj, accepted.get(name))
        pool.blocks = spans(pool.accepted) or [] if pool.accepted else []
        if pool.accepted is not None:
            pool.loses_to = next((o.name for o in pools.values() if o.serving and _overlap(o, pool)), None)
            pool.serving = pool.loses_to is None
            if pool.loses_to is not None:
                pools[pool.loses_to].beats.append(name)
        pools[name] = pool
    return pools


def _overlap(a: Pool, b: Pool) -> bool:
    return any(
        x.version == y.version and x.first <= y.last and y.first <= x.last for x in a.blocks for y in b.blocks
    )


# ---- services -----------------------------------------------------------------------------
@dataclass
class Service:
    obj: Obj
    ns_labels: Mapping[str, str]
    default_class: bool

    def __post_init__(self) -> None:
        meta, spec = self.obj["metadata"], self.obj["spec"]
        self.ns, self.name = meta["namespace"], meta["name"]
        self.key = f"{self.ns}/{self.name}"
        self.notes: Mapping[str, str] = meta.get("annotations") or {}
        self.match_labels = {
            **(meta.get("labels") or {}),
            "lbipam.io/service-name": self.name,
            "lbipam.io/service-namespace": self.ns,
        }
        lb_class = spec.get("loadBalancerClass")
        self.handled = spec.get("type") == "LoadBalancer" and (
            lb_class == LB_CLASS or (lb_class is None and self.default_class)
        )
        self.policy = spec.get("ipFamilyPolicy") or "SingleStack"
        families = [FAMILY[f] for f in spec.get("ipFamilies") or ["IPv4"]]
        self.families = families[:1] if self.policy == "SingleStack" else families
        pins = self.notes.get("lbipam.io/pool")
        self.pins = None if pins is None else {p.strip() for p in pins.split(",") if p.strip()}
        self.sharing_key = self.notes.get("lbipam.io/sharing-key")
        self.admitted = {
            n.strip() for n in self.notes.get("lbipam.io/sharing-cross-namespace", "").split(",")
        }
        self.ports = {(p.get("protocol", "TCP"), p["port"]) for p in spec.get("ports") or []}
        self.traffic_policy = spec.get("externalTrafficPolicy") or "Cluster"
        self.selector = spec.get("selector") or {}
        self.ingress = [
            i["ip"] for i in ((self.obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        ]
        self.condition = next(
            (c for c in (self.obj.get("status") or {}).get("conditions") or [] if c["type"] == SATISFIED),
            None,
        )

    def requested(self) -> dict[int, str] | None:
        text = self.notes.get("lbipam.io/ips") or self.obj["spec"].get("loadBalancerIP")
        if not text:
            return None
        out: dict[int, str] = {}
        for part in (p.strip() for p in text.split(",") if p.strip()):
            try:
                ip = netaddr.IPAddress(part)
            except (netaddr.AddrFormatError, ValueError):
                return None
            out[ip.version] = str(ip)
        return out

    def admits(self, namespace: str) -> bool:
        return namespace == self.ns or "*" in self.admitted or namespace in self.admitted


def may_share(a: Service, b: Service) -> bool:
    """README "Sharing", written out again."""
    return (
        a.sharing_key is not None
        and a.sharing_key == b.sharing_key
        and a.admits(b.ns)
        and b.admits(a.ns)
        and not a.ports & b.ports
        and a.traffic_policy == b.traffic_policy
        and (a.traffic_policy != "Local" or a.selector == b.selector)
    )


# ---- the invariants -----------------------------------------------------------------------
def problems(
    services: list[Obj],
    pools: list[Obj],
    namespaces: list[Obj],
    accepted: Mapping[str, Obj | None],
    default_class: bool = True,
) -> list[str]:
    ns_labels = {n["metadata"]["name"]: n["metadata"].get("labels") or {} for n in namespaces}
    svcs = [Service(s, ns_labels.get(s["metadata"]["namespace"], {}), default_class) for s in services]
    by_pool = serving_pools(pools, accepted)
    held = holdings(svcs, by_pool)
    found = list(_service_problems(svcs, by_pool, held))
    found += _sharing_problems(svcs)
    found += _pool_problems(by_pool, held, svcs)
    return found


def home(pools: Mapping[str, Pool], ip: netaddr.IPAddress) -> Pool | None:
    return next((p for p in pools.values() if p.serving and p.holds(ip)), None)


def holdings(svcs: list[Service], pools: Mapping[str, Pool]) -> dict[tuple[str, int], set[str]]:
    """(pool, family) -> the distinct IPs handled Services hold in it."""
    held: dict[tuple[str, int], set[str]] = {}
    for s in svcs:
        for ip in (netaddr.IPAddress(i) for i in s.ingress if s.handled):
            pool = home(pools, ip)
            if pool is not None:
                held.setdefault((pool.name, ip.version), set()).add(str(ip))
    return held


def _service_problems(
    svcs: list[Service], pools: Mapping[str, Pool], held: Mapping[tuple[str, int], set[str]]
) -> Iterator[str]:
    for s in svcs:
        cond, notes = s.condition, s.notes
        if not s.handled:
            if s.ingress or cond or "lbipam.io/allocated-from" in notes:
                yield f"{s.key} is not handled but carries {s.ingress}, {cond}, {notes}"
            continue
        if cond is None or cond.get("observedGeneration") != s.obj["metadata"]["generation"]:
            yield f"{s.key}: condition {cond} does not observe generation {s.obj['metadata']['generation']}"
            continue
        ips = [netaddr.IPAddress(i) for i in s.ingress]
        # An unreadable request keeps all the Service has, also a family it no longer lists (last);
        # its condition is InvalidRequest, or NoPool when the kept IPs are orphans too.
        order = s.families + ([6, 4] if cond["status"] == "False" else [])
        if [ip.version for ip in ips] != [f for f in dict.fromkeys(order) if f in {ip.version for ip in ips}]:
            yield f"{s.key}: ingress {s.ingress} is not one IP per family in order {s.families} ({cond})"
        requested, names = s.requested(), []
        for ip in ips:
            pool = home(pools, ip)
            if pool is not None:
                names.append(pool.name)
            kept = (
                pool is not None
                and pool.selects(s)
                and (s.pins is None or pool.name in s.pins)
                and (requested is None or requested.get(ip.version) == str(ip))
            )
            excused = cond["status"] == "False" and (
                cond["reason"] == "InvalidRequest"
                or (
                    pool is None
                    and cond["reason"] == "NoPool"
                    and str(ip) in cond["message"]
                    and "kept" in cond["message"]
                )
            )
            if not kept and not excused:
                where = pool.name if pool else "no serving pool"
                state = f"{cond['status']}/{cond['reason']}"
                yield f"{s.key}: {ip} (in {where}) may not be kept; condition {state}"
        want = ",".join(dict.fromkeys(names)) or None
        if notes.get("lbipam.io/allocated-from") != want:
            have = notes.get("lbipam.io/allocated-from")
            yield f"{s.key}: lbipam.io/allocated-from {have!r}, IPs are in {want!r}"
        if cond["status"] == "True" and (
            not ips or (s.policy != "PreferDualStack" and len(ips) != len(s.families))
        ):
            yield f"{s.key}: Satisfied with {s.ingress} for families {s.families}"
        if cond["status"] == "False" and ips and cond["reason"] not in ("InvalidRequest", "NoPool"):
            yield f"{s.key}: {cond['reason']} yet holds {s.ingress}"
        missing = _servable(s, pools, held, {ip.version for ip in ips}, cond)
        if missing:
            why = f"{cond['reason']}: {cond['message']}"
            yield f"{s.key}: has no {missing} address ({why}) yet a pool could serve it"


def _servable(
    s: Service, pools: Mapping[str, Pool], held: Mapping[tuple[str, int], set[str]], have: set[int], cond: Obj
) -> str:
    """The first family the Service lacks although an eligible pool has a free address ("" if
    none): liveness. A requested IP or an unreadable request is served by its own rules, and
    RequireDualStack only when every family can be."""
    if (
        s.requested() is not None
        or cond["reason"] == "InvalidRequest"
        or (have and cond["status"] == "False")
    ):
        return ""
    free = {f: any(_free(p, f, held) for p in _eligible(s, pools, f)) for f in s.families}
    if s.policy == "RequireDualStack" and not have:
        return "IPv4/IPv6" if all(free.values()) else ""
    return next((f"IPv{f}" for f in s.families if f not in have and free[f]), "")


def _free(pool: Pool, family: int, held: Mapping[tuple[str, int], set[str]]) -> int:
    """Addresses of `family` nobody holds and the reuse delay does not hold back (as listed)."""
    ips = held.get((pool.name, family), set())
    return pool.total(family) - len(ips) - len(pool.held_back(family, ips) or ())


def waits(s: Service, pools: Mapping[str, Pool], family: int) -> list[Pool]:
    """The pools in which Service `s` waits for an address of `family`: it wants one by pool
    choice (no requested IP, a readable request), has none, and they are eligible."""
    cond = s.condition
    if not s.handled or cond is None or cond["reason"] == "InvalidRequest" or s.requested() is not None:
        return []
    if family not in s.families or any(netaddr.IPAddress(ip).version == family for ip in s.ingress):
        return []
    return _eligible(s, pools, family)


def _eligible(s: Service, pools: Mapping[str, Pool], family: int) -> list[Pool]:
    return [
        p
        for p in pools.values()
        if p.serving
        and not p.spec.get("disabled")
        and p.total(family)
        and p.selects(s)
        and (p.name in s.pins if s.pins is not None else p.spec.get("autoAssign", True))
    ]


def _sharing_problems(svcs: list[Service]) -> Iterator[str]:
    holders: dict[str, list[Service]] = {}
    for s in svcs:
        if s.handled:
            for ip in s.ingress:
                holders.setdefault(str(netaddr.IPAddress(ip)), []).append(s)
    for ip, group in holders.items():
        for i, a in enumerate(group):
            for b in group[i + 1 :]:
                if not may_share(a, b):
                    yield f"{ip} is held by {a.key} and {b.key}, which may not share it"


def _pool_problems(
    pools: Mapping[str, Pool], held: Mapping[tuple[str, int], set[str]], svcs: list[Service]
) -> Iterator[str]:
    for pool in pools.values():
        status, meta = pool.obj.get("status") or {}, pool.obj["metadata"]
        if status.get("observedGeneration") != meta["generation"]:
            seen = status.get("observedGeneration")
            yield f"pool {pool.name}: observedGeneration {seen} != {meta['generation']}"
            continue
        conditions = {c["type"]: c for c in status.get("conditions") or []}
        ready = "True" if spans(pool.obj["spec"]) is not None else "False"
        conflict = "True" if pool.loses_to else "False"
        got = {t: conditions.get(t, {}).get("status") for t in ("Ready", "Conflict")}
        if got != {"Ready": ready, "Conflict": conflict}:
            yield f"pool {pool.name}: conditions {got}, expected Ready {ready}, Conflict {conflict}"
        if pool.loses_to and pool.loses_to not in conditions["Conflict"]["message"]:
            yield f"pool {pool.name}: Conflict message does not name {pool.loses_to}"
        for newer in pool.beats:
            if newer not in conditions["Conflict"]["message"]:
                yield f"pool {pool.name}: Conflict message does not name the newer pool {newer}"
        yield from _accepted_problems(pool)
        full, waited = [], []
        for family in (4, 6):
            total = pool.total(family) if pool.serving else 0
            ips = held.get((pool.name, family), set())
            back = pool.held_back(family, ips) if pool.serving else set()
            want = {"total": str(total), "used": str(len(ips))}
            if back is not None:  # else the status lists only some of what it holds back
                want["available"] = str(total - len(ips) - len(back))
            shown = status.get(f"ipv{family}") or {}
            if {k: shown.get(k) for k in want} != want:
                yield f"pool {pool.name}: ipv{family} {shown}, Services hold {want}: {sorted(ips)}"
            if total and shown.get("available") == "0":
                full.append(family)
                if any(pool.name in {p.name for p in waits(s, pools, family)} for s in svcs):
                    waited.append(family)
        families = [f for f in (4, 6) if pool.serving and pool.total(f)]
        named = full if families and full == families else waited
        exhausted = conditions.get("Exhausted", {})
        if exhausted.get("status") != ("True" if named else "False"):
            yield f"pool {pool.name}: Exhausted should be {'True' if named else 'False'} ({exhausted})"
        elif named and not all(f"IPv{f}" in exhausted.get("message", "") for f in named):
            yield f"pool {pool.name}: Exhausted does not name {named}: {exhausted.get('message')}"


def _accepted_problems(pool: Pool) -> Iterator[str]:
    """status.accepted records the addresses the pool serves from (its last accepted spec)."""
    recorded, serving = (pool.obj.get("status") or {}).get("accepted"), pool.accepted
    if recorded is None or serving is None or spans(recorded) != spans(serving):
        if (recorded, serving) != (None, None):
            yield f"pool {pool.name}: status.accepted {recorded}, serving {(serving or {}).get('blocks')}"
        return
    for key in ("allowFirstLastIPs", "avoidBuggyIPs"):
        if bool(recorded.get(key)) != bool(serving.get(key)):
            yield f"pool {pool.name}: status.accepted.{key} {recorded.get(key)} != {serving.get(key)}"
