"""A seeded, reproducible random walk over Nodes and PodCIDRPools with controller restarts: nodes
join (with labels, now and then with a stray CIDR written by hand) and leave, are relabelled;
pools are created, grown by appending, disabled, edited in ways the growth rule refuses or
accepts, and overlapped by newer pools. After every step, once the controller has settled, the
invariants below must hold of the objects read back, and a restart must change nothing.

Invariants: no two Nodes' CIDRs overlap; every CIDR lies in a serving pool's accepted spec with
its mask (the condition names that pool) or is a stray reported OutsidePools; a Node's CIDRs
never change once given, and it gets one per family its eligible pools serve, all at once; a
Node without CIDRs says NoPool or CIDRNotAvailable, truly; pool counters are exact;
InvalidChange, Conflict and observedGeneration say what the test's model of the pools says.

Reproduce a failure with the seed it prints: LBIPAM_PODCIDR_SEED=<seed> pytest
tests/test_podcidr_random.py (LBIPAM_PODCIDR_STEPS changes the length, LBIPAM_PODCIDR_TARGET the
target; CI runs the defaults: the `node` target).
"""

from __future__ import annotations

import os
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import netaddr

from lbipam.k8s.resources import NODES, PODCIDRPOOLS
from tests.podcidr_harness import PCApi, PCRunning, PCSnapshot, api_for, counts, message, reason, start

SEED = int(os.environ.get("LBIPAM_PODCIDR_SEED", "11"))  # CI's seed: its walk meets every case below
STEPS = int(os.environ.get("LBIPAM_PODCIDR_STEPS", "300"))
TARGET = os.environ.get("LBIPAM_PODCIDR_TARGET", "node")
ZONES = ("a", "b", "c")
# Pools carve /27s (IPv4) and /120s (IPv6) from these; strays are written by hand in 203.0.113.128/25.
V4_CHUNKS = [f"{net}.{i * 32}/27" for net in ("192.0.2", "198.51.100") for i in range(8)]
V4_CHUNKS += [f"203.0.113.{i * 32}/27" for i in range(4)]
V6_CHUNKS = [f"2001:db8:0:{i:x}::/120" for i in range(64)]
STRAYS = [f"203.0.113.{128 + i * 16}/28" for i in range(8)]
Family = tuple[list[str], int]  # (cidrs, maskSize)
ALWAYS = {
    "True/Allocated",
    "False/CIDRNotAvailable",
    "False/NoPool",
    "False/OutsidePools",
    "Conflict",
    "InvalidChange",
    "Exhausted",
    "dual-stack",
}


@dataclass
class PoolModel:
    name: str
    zone: str | None
    written: dict[int, Family]
    priority: int = 0
    disabled: bool = False
    loser: bool = False  # created over an older pool's CIDR: Conflict, serves nothing
    accepted: dict[int, Family] = field(default_factory=dict)
    accepted_disabled: bool = False
    refused: bool = False

    def body(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"priority": self.priority, "disabled": self.disabled}
        for fam, (cidrs, mask) in self.written.items():
            spec[f"ipv{fam}"] = {"cidrs": list(cidrs), "maskSize": mask}
        for fam in (4, 6):
            spec.setdefault(f"ipv{fam}", None)  # a merge patch removes a family this way
        if self.zone:
            spec["nodeSelector"] = {"matchLabels": {"zone": self.zone}}
        return spec

    def serves(self, labels: dict[str, str]) -> bool:
        return not self.loser and not self.accepted_disabled and self.zone in (None, labels.get("zone"))

    def holds(self, cidr: str) -> bool:
        net = netaddr.IPNetwork(cidr)
        fam = self.accepted.get(net.version)
        return (
            fam is not None and net.prefixlen == fam[1] and any(net in netaddr.IPNetwork(c) for c in fam[0])
        )


@dataclass
class Walk:
    rng: random.Random
    api: PCApi
    kubeconfig: Path
    ctl: PCRunning | None = None
    pools: dict[str, PoolModel] = field(default_factory=dict)
    nodes: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> labels
    given: dict[str, tuple[str, ...]] = field(default_factory=dict)  # name -> CIDRs once given
    free4: list[str] = field(default_factory=lambda: list(V4_CHUNKS))
    free6: list[str] = field(default_factory=lambda: list(V6_CHUNKS))
    strays: list[str] = field(default_factory=lambda: list(STRAYS))
    log: list[str] = field(default_factory=list)
    seen: Counter[str] = field(default_factory=Counter)
    snap: PCSnapshot | None = None
    counter: int = 0

    # ---- steps ----------------------------------------------------------------------------
    async def step(self) -> str:
        ops = {
            self.join: 6 if len(self.nodes) < 24 else 1,
            self.leave: 3 if self.nodes else 0,
            self.relabel: 1 if self.nodes else 0,
            self.create_pool: 3 if len(self.pools) < 7 else 0,
            self.append: 3 if self.growable() else 0,
            self.refused_change: 1 if self.in_use() else 0,
            self.drop_unused: 1 if self.droppable() else 0,
            self.toggle: 1 if self.pools else 0,
            self.conflict: 1 if self.pools and len(self.pools) < 9 else 0,
        }
        op = self.rng.choices(list(ops), list(ops.values()))[0]
        return await op()

    async def join(self) -> str:
        self.counter += 1
        name, labels = f"n{self.counter}", {"zone": self.rng.choice(ZONES)}
        cidrs = [self.strays.pop(0)] if self.strays and self.rng.random() < 0.05 else []
        await self.api.join(TARGET, name, labels, cidrs=cidrs)
        self.nodes[name] = labels
        return f"join {name} {labels} {cidrs or ''}"

    async def leave(self) -> str:
        name = self.rng.choice(sorted(self.nodes))
        await self.api.leave(name)
        del self.nodes[name]
        return f"leave {name}"

    async def relabel(self) -> str:
        name = self.rng.choice(sorted(self.nodes))
        self.nodes[name] = {"zone": self.rng.choice(ZONES)}
        await self.api.patch(NODES, name, {"metadata": {"labels": self.nodes[name]}})
        return f"relabel {name} {self.nodes[name]}"

    async def create_pool(self) -> str:
        r = self.rng
        fams = r.choice([(4,), (4,), (4, 6), (6,)])
        written = {}
        if 4 in fams and self.free4:
            written[4] = ([self.free4.pop(r.randrange(len(self.free4)))], r.choice([28, 29]))
        if 6 in fams or not written:
            written[6] = ([self.free6.pop(0)], 122)
        name = f"p{len(self.pools)}"
        pool = PoolModel(name, r.choice([None, None, *ZONES]), written, priority=r.randrange(3))
        await self.write(pool, create=True)
        return f"create {name} {pool.body()}"

    async def conflict(self) -> str:
        older = self.rng.choice([p for p in self.pools.values() if not p.loser])
        fam = min(older.accepted)
        cidrs, mask = older.accepted[fam]
        # "z..." sorts after every "p<n>": the newer even within one creationTimestamp second.
        pool = PoolModel(f"z{len(self.pools)}", None, {fam: ([cidrs[0]], mask)}, loser=True)
        await self.write(pool, create=True)
        return f"conflict {pool.name} over {older.name}"

    async def append(self) -> str:
        pool = self.rng.choice(self.growable())
        fam = self.rng.choice([f for f in pool.accepted if (self.free4 if f == 4 else self.free6)])
        cidrs, mask = pool.accepted[fam]
        chunk = (self.free4 if fam == 4 else self.free6).pop(0)
        pool.written = {**pool.accepted, fam: ([*cidrs, chunk], mask)}
        await self.write(pool)
        return f"append {chunk} to {pool.name}"

    async def refused_change(self) -> str:
        pool, fam = self.rng.choice(self.in_use())
        cidrs, mask = pool.accepted[fam]
        used = [c for c in cidrs if self.used_in(c)]
        what = self.rng.choice(["mask", "remove", "family"])
        if what == "family" and len(pool.accepted) == 1 and not (self.free4 if fam == 6 else self.free6):
            what = "mask"  # no chunk left to give the other family
        if what == "mask":
            pool.written = {**pool.accepted, fam: (cidrs, mask + 1)}
        elif what == "remove":
            pool.written = {**pool.accepted, fam: ([c for c in cidrs if c != used[0]] or [cidrs[0]], mask)}
            if pool.written[fam][0] == cidrs:  # the only CIDR: alter it instead
                pool.written[fam] = ([str(netaddr.IPNetwork(cidrs[0]).supernet()[-1])], mask)
        else:
            pool.written = {f: spec for f, spec in pool.accepted.items() if f != fam}
            pool.written = pool.written or {
                10 - fam: ([self.free6.pop(0) if fam == 4 else self.free4.pop(0)], 122 if fam == 4 else 28)
            }
        await self.write(pool)
        return f"refused? {what} on {pool.name} ipv{fam}"

    async def drop_unused(self) -> str:
        pool, fam, cidr = self.rng.choice(self.droppable())
        cidrs, mask = pool.accepted[fam]
        pool.written = {**pool.accepted, fam: ([c for c in cidrs if c != cidr], mask)}
        await self.write(pool)
        return f"drop unused {cidr} from {pool.name}"

    async def toggle(self) -> str:
        pool = self.rng.choice(sorted(self.pools.values(), key=lambda p: p.name))
        pool.disabled = not pool.disabled
        await self.write(pool)
        return f"{'disable' if pool.disabled else 'enable'} {pool.name}"

    # ---- the model ------------------------------------------------------------------------
    async def write(self, pool: PoolModel, create: bool = False) -> None:
        """Write `pool` and decide, by the growth rule, whether its spec is accepted."""
        refused = not create and self.refuses(pool)
        if not refused:
            pool.accepted = dict(pool.written)
        pool.accepted_disabled = pool.disabled  # a refused change holds back its families only
        pool.refused = refused
        self.pools[pool.name] = pool
        if create:
            body = {
                "apiVersion": "lbipam.io/v1alpha1",
                "kind": "PodCIDRPool",
                "metadata": {"name": pool.name},
            }
            await self.api.create(
                PODCIDRPOOLS, {**body, "spec": {k: v for k, v in pool.body().items() if v is not None}}
            )
        else:
            await self.api.spec(pool.name, pool.body())

    def refuses(self, pool: PoolModel) -> bool:
        for fam, (cidrs, mask) in pool.accepted.items():
            busy = [c for c in cidrs if self.used_in(c)]
            after = pool.written.get(fam)
            if busy and (after is None or after[1] != mask or any(c not in after[0] for c in busy)):
                return True
        return False

    def used_in(self, cidr: str) -> bool:
        net = netaddr.IPNetwork(cidr)
        assert self.snap is not None
        return any(netaddr.IPNetwork(c) in net for cidrs in self.snap.assigned().values() for c in cidrs)

    def growable(self) -> list[PoolModel]:
        return [
            p
            for p in self.pools.values()
            if not p.loser and any(self.free4 if f == 4 else self.free6 for f in p.accepted)
        ]

    def in_use(self) -> list[tuple[PoolModel, int]]:
        return [
            (p, f)
            for p in self.pools.values()
            if not p.loser
            for f, (c, _) in p.accepted.items()
            if any(map(self.used_in, c))
        ]

    def droppable(self) -> list[tuple[PoolModel, int, str]]:
        return [
            (p, f, c) for p in self.pools.values() if not p.loser and not p.refused
            for f, (cidrs, _) in p.accepted.items() if len(cidrs) > 1 for c in cidrs
            if not self.used_in(c) and c not in self.contested()
        ]  # fmt: skip

    def contested(self) -> set[str]:
        """CIDRs a losing pool overlaps: they stay (without them, that pool would serve)."""
        return {c for z in self.pools.values() if z.loser for cidrs, _ in z.accepted.values() for c in cidrs}

    # ---- invariants -----------------------------------------------------------------------
    def follow_refusals(self, snap: PCSnapshot) -> None:
        """A refused change is accepted once no Node holds what it would drop (a Node left)."""
        self.snap = snap
        for pool in self.pools.values():
            if pool.refused and not self.refuses(pool):
                pool.accepted, pool.refused = dict(pool.written), False
                self.seen["refusal lifted"] += 1
        # Of two overlapping pools the newer loses, for as long as they overlap.
        winners: list[netaddr.IPNetwork] = []
        for pool in sorted(self.pools.values(), key=lambda p: (created(snap.pool(p.name)), p.name)):
            mine = [netaddr.IPNetwork(c) for cidrs, _ in pool.accepted.values() for c in cidrs]
            was, pool.loser = pool.loser, any(a in b or b in a for a in mine for b in winners)
            self.seen["conflict lifted"] += was and not pool.loser
            if not pool.loser:
                winners += mine

    def check(self, snap: PCSnapshot) -> None:
        found: list[str] = []
        assigned = snap.assigned()
        nets = [(n, netaddr.IPNetwork(c)) for n, cidrs in assigned.items() for c in cidrs]
        for i, (a, x) in enumerate(nets):
            found += [f"{a} {x} overlaps {b} {y}" for b, y in nets[i + 1 :] if x in y or y in x]
        for name, cidrs in assigned.items():
            found += self.check_node(snap, name, cidrs)
        for pool in self.pools.values():
            found += self.check_pool(snap, pool, assigned)
        assert not found, self.report(found)
        self.snap = snap

    def check_node(self, snap: PCSnapshot, name: str, cidrs: tuple[str, ...]) -> list[str]:
        node, why = snap.node(name), reason(snap.node(name))
        self.seen[f"{why[0]}/{why[1]}" if why else "none"] += 1
        eligible = [p for p in self.pools.values() if p.serves(self.nodes[name])]
        families = {f for p in eligible for f in p.accepted}
        if name in self.given and cidrs != self.given[name]:
            return [f"{name} changed {self.given[name]} -> {cidrs}"]
        if not cidrs:
            full = [
                f
                for f in families
                if all(counts(snap.pool(p.name), f)[2] == "0" for p in eligible if f in p.accepted)
            ]
            ok = (why == ("False", "NoPool") and not families) or (
                why == ("False", "CIDRNotAvailable") and full
            )
            shown = {p.name: counts(snap.pool(p.name), f) for p in eligible for f in p.accepted}
            return [] if ok else [f"{name} has no CIDR: {why} {message(node)!r}, eligible {families} {shown}"]
        homes = [
            next((p.name for p in self.pools.values() if not p.loser and p.holds(c)), None) for c in cidrs
        ]
        if None in homes:
            stray = all(c in STRAYS for c in cidrs) and why == ("False", "OutsidePools")
            return [] if stray else [f"{name} {cidrs} lie in no accepted spec: {why}"]
        want = ", ".join(f"{c} (pool {h})" for c, h in zip(cidrs, homes, strict=True))
        if (why, message(node)) != (("True", "Allocated"), want):
            return [f"{name} {cidrs}: {why} {message(node)!r}, expected {want!r}"]
        if name not in self.given and {netaddr.IPNetwork(c).version for c in cidrs} != families:
            return [f"{name} got {cidrs} while eligible pools serve IPv{families}"]
        self.given[name] = cidrs
        self.seen["dual-stack"] += len(cidrs) == 2
        return []

    def check_pool(
        self, snap: PCSnapshot, pool: PoolModel, assigned: dict[str, tuple[str, ...]]
    ) -> list[str]:
        obj, found = snap.pool(pool.name), []
        for fam in (4, 6):
            cidrs, mask = pool.accepted.get(fam, ([], 0))
            total = 0 if pool.loser else sum(2 ** (mask - netaddr.IPNetwork(c).prefixlen) for c in cidrs)
            used = (
                0
                if pool.loser
                else sum(
                    pool.holds(c)
                    for cs in assigned.values()
                    for c in cs
                    if netaddr.IPNetwork(c).version == fam
                )
            )
            if counts(obj, fam) != (str(total), str(used), str(total - used)):
                found.append(
                    f"{pool.name} ipv{fam} counts {counts(obj, fam)}, expected {(total, used, total - used)}"
                )
        expect = {
            "Conflict": "True" if pool.loser else "False",
            "InvalidChange": "True" if pool.refused else "False",
            "Ready": "True",
        }
        for type_, status in expect.items():
            got = reason(obj, type_)
            self.seen[type_] += got is not None and got[0] == "True" and type_ != "Ready"
            if got is None or got[0] != status:
                found.append(f"{pool.name} {type_} {got} {message(obj, type_)!r}, expected {status}")
        self.seen["Exhausted"] += reason(obj, "Exhausted") == ("True", "NoAddressesFree")
        observed = (obj.get("status") or {}).get("observedGeneration")
        if observed != obj["metadata"]["generation"]:
            found.append(f"{pool.name} observedGeneration {observed}")
        return found

    async def settle(self) -> PCSnapshot:
        assert self.ctl is not None
        try:
            return await self.ctl.settle(self.api, timeout=30)
        except AssertionError as err:
            raise AssertionError(self.report([f"the controller never settled: {err}"])) from None

    def report(self, found: list[str]) -> str:
        steps = "\n  ".join(f"{i}: {s}" for i, s in enumerate(self.log) if i >= len(self.log) - 10)
        return f"seed {SEED}, step {len(self.log)}:\n  " + "\n  ".join(found) + f"\nlast steps:\n  {steps}"

    async def restart(self, snap: PCSnapshot) -> None:
        assert self.ctl is not None
        await self.ctl.stop()
        self.ctl = await start(self.kubeconfig, TARGET)
        after = await self.ctl.settle(self.api, timeout=30)
        changed = {k: v for k, v in after.versions().items() if snap.versions().get(k) != v}
        assert not changed, self.report(
            [f"a restart changed {sorted(changed)}", *_what_changed(snap, after, changed)]
        )


def created(obj: dict[str, Any]) -> str:
    return str(obj["metadata"]["creationTimestamp"])


def _what_changed(before: PCSnapshot, after: PCSnapshot, changed: dict[str, str]) -> list[str]:
    """The spec and status of the first changed object of each kind, before and after."""
    found: list[str] = []
    for kind in ("pool", "node", "cn"):
        name = next((k.split("/", 1)[1] for k in sorted(changed) if k.startswith(f"{kind}/")), None)
        if name is not None:
            found += _diff(before, after, kind, name)
    return found


def _diff(before: PCSnapshot, after: PCSnapshot, kind: str, name: str) -> list[str]:
    pick = {"node": PCSnapshot.node, "pool": PCSnapshot.pool, "cn": PCSnapshot.cn}[kind]
    old, new = pick(before, name) or {}, pick(after, name) or {}
    return [
        f"{kind}/{name} {part}: {old.get(part)!r} -> {new.get(part)!r}"
        for part in ("spec", "status")
        if old.get(part) != new.get(part)
    ]


async def test_random_walk(kubeconfig: Path, lbipam_crds: list[str]) -> None:
    async with api_for(kubeconfig) as api:
        walk = Walk(random.Random(SEED), api, kubeconfig)
        walk.ctl = await start(kubeconfig, TARGET)
        walk.snap = await walk.ctl.settle(api)
        restarts = 0
        try:
            for _ in range(STEPS):
                walk.log.append(await walk.step())
                snap = await walk.settle()
                walk.follow_refusals(snap)
                walk.check(snap)
                if walk.rng.random() < 0.05:
                    walk.log.append("restart")
                    await walk.restart(snap)
                    restarts += 1
        finally:
            await walk.ctl.stop()
    print(f"podcidr walk: seed {SEED}, {STEPS} steps, {restarts} restarts, target {TARGET}")
    print("steps after which each case was present:", dict(sorted(walk.seen.items())))
    assert restarts >= 5
    assert not ALWAYS - set(walk.seen), f"the walk never met {ALWAYS - set(walk.seen)}: make it wilder"
