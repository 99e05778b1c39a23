"""A seeded, reproducible random walk over Services, pools and namespaces with controller restarts
and injected API faults; after every step, once the controller has settled, every invariant of
lbipam_invariants.py must hold of the objects read back, and a restart must not move an IP.

Reproduce a failure with the seed it prints: LBIPAM_CHAOS_SEED=<seed> pytest tests/test_lbipam_chaos.py
(LBIPAM_CHAOS_STEPS changes the length; CI runs the defaults).
"""

from __future__ import annotations

import os
import random
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import netaddr

from lbipam.apiserver.server import EmbeddedAPIServer
from lbipam.k8s.resources import LBPOOLS, NAMESPACES, SERVICES
from tests.chaos_kills import kill_during_invalid_edit, kill_during_reuse_delay
from tests.lbipam_harness import (
    Api,
    Running,
    ServiceSpec,
    Snapshot,
    api_for,
    block,
    ingress,
    message,
    namespace,
    reason,
    start,
)
from tests.lbipam_invariants import home, problems, serving_pools, spans

SEED = int(os.environ.get("LBIPAM_CHAOS_SEED", "6"))  # CI's seed: its walk meets every case below
STEPS = int(os.environ.get("LBIPAM_CHAOS_STEPS", "400"))
V4 = [
    "192.0.2.0/29",
    "192.0.2.8/29",
    "192.0.2.16/29",
    "192.0.2.24-192.0.2.27",
    "192.0.2.4/30",
    "192.0.2.30/31",
]
V6 = ["2001:db8::/126", "2001:db8::4/126", "2001:db8::8-2001:db8::9"]
POPULAR = ["192.0.2.1", "192.0.2.2", "192.0.2.9", "192.0.2.17", "192.0.2.24", "192.0.2.30"]
POOLS = ["p0", "p1", "p2", "p3", "p4"]
SPACES = ["default", "ns-a", "ns-b"]
PORTS = [("TCP", 80), ("TCP", 443), ("UDP", 53)]
Obj = dict[str, Any]
POOL_CASES = ("Ready", "Conflict", "Exhausted")
# What every walk of the default length meets (conditions status/reason, and facts of the API).
ALWAYS = {
    "True/Satisfied",
    "False/OutOfIPs",
    "False/NoPool",
    "False/PoolSelectorMismatch",
    "False/InvalidRequest",
    "False/Invalid",
    "True/Overlap",
    "True/NoAddressesFree",
    "shared/IP",
    "dual/stack",
}


@dataclass
class Walk:
    rng: random.Random
    api: Api
    server: EmbeddedAPIServer
    kubeconfig: Path
    ctl: Running | None = None
    svcs: dict[str, ServiceSpec] = field(default_factory=dict)
    pools: dict[str, Obj] = field(default_factory=dict)  # name -> spec written
    accepted: dict[str, Obj | None] = field(default_factory=dict)  # name -> spec the controller serves
    log: list[str] = field(default_factory=list)
    restarts: int = 0
    faults: int = 0
    seen: Counter[str] = field(default_factory=Counter)  # steps after which a case was present
    before: dict[str, set[str]] = field(default_factory=dict)  # Service -> IPs, at the last check
    kills: Counter[str] = field(default_factory=Counter)  # controllers killed mid-way, by when

    # ---- random values --------------------------------------------------------------------
    def address(self, family: str) -> str:
        # Half the time an address some Service likely holds (the first of a block): AlreadyAllocated
        # or a share. Chosen without looking at the API, so a seed replays the same writes.
        r, v6 = self.rng, family == "IPv6"
        if r.random() < 0.5:
            return r.choice(["2001:db8::1", "2001:db8::5", "2001:db8::8"] if v6 else POPULAR)
        return (
            f"2001:db8::{r.randrange(12):x}"
            if v6
            else r.choice([f"192.0.2.{r.randrange(32)}", "203.0.113.5"])
        )

    def pool_spec(self) -> Obj:
        r = self.rng
        blocks = r.sample(V4, r.choice([1, 1, 2])) + (r.sample(V6, 1) if r.random() < 0.4 else [])
        if r.random() < 0.05:
            blocks = ["192.0.2.9-192.0.2.3"]  # backwards: the schema takes it, the model does not
        spec: Obj = {"blocks": [block(b) for b in blocks], "priority": r.randrange(3)}
        if r.random() < 0.3:
            spec["serviceSelector"] = r.choice(
                [
                    {"matchLabels": {"tier": "gold"}},
                    {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["gold"]}]},
                ]
            )
        if r.random() < 0.2:
            spec["namespaceSelector"] = {"matchLabels": {"team": "a"}}
        spec["disabled"] = r.random() < 0.1
        spec["autoAssign"] = r.random() > 0.1
        spec["allowFirstLastIPs"] = r.random() < 0.2
        return spec

    def edit_service(self, svc: ServiceSpec) -> tuple[ServiceSpec, str]:
        r = self.rng
        what = r.choice(
            [
                "tier",
                "pin",
                "ips",
                "lb_ip",
                "key",
                "xns",
                "ports",
                "policy",
                "local",
                "app",
                "type",
                "class",
                "bogus",
            ]
        )
        family = svc.first if svc.policy == "SingleStack" else r.choice(["IPv4", "IPv6"])
        value: Any = {
            "tier": r.choice([None, "gold", "silver"]),
            "pin": r.choice([None, None, None, r.choice(POOLS), ",".join(r.sample(POOLS, 2)), "nope"]),
            "ips": r.choice(
                [
                    None,
                    None,
                    self.address(family),
                    self.address(family),
                    "192.0.2.x",
                    f"{self.address('IPv4')},{self.address('IPv6')}",
                ]
            ),
            "lb_ip": r.choice([None, self.address(svc.first)]),
            "key": r.choice([None, "k1", "k1", "k2"]),
            "xns": r.choice([None, None, "*", r.choice(SPACES)]),
            "ports": tuple(r.sample(PORTS, r.randint(1, 2))),
            "policy": r.choice(["SingleStack", "SingleStack", "PreferDualStack", "RequireDualStack"]),
            "local": not svc.local,
            "app": r.choice(["x", "y"]),
            "type": not svc.lb or r.random() < 0.5,  # LoadBalancer again at once, ClusterIP half the time
            "class": r.choice([None, None, "lbipam.io/bgp", "example.com/other"]),
            "bogus": not svc.bogus and r.random() < 0.5,
        }[what]
        field_name = {"type": "lb", "class": "lb_class"}.get(what, what)
        return replace(svc, **{field_name: value}), f"{what}={value}"

    # ---- steps ----------------------------------------------------------------------------
    async def step(self) -> str:
        """One random write; returns what it did, for the report."""
        ops = {
            self.create_service: 5 if len(self.svcs) < 16 else 0,
            self.delete_service: 2 if self.svcs else 0,
            self.change_service: 10 if self.svcs else 0,
            self.create_pool: 2 if len(self.pools) < len(POOLS) else 0,
            self.delete_pool: 1 if len(self.pools) > 1 else 0,
            self.change_pool: 3 if self.pools else 0,
            self.relabel_namespace: 1,
        }
        op = self.rng.choices(list(ops), list(ops.values()))[0]
        return await op()

    async def create_service(self) -> str:
        r = self.rng
        ns = r.choices(SPACES, [6, 2, 2])[0]
        name = next(f"s{i}" for i in range(99) if f"{ns}/s{i}" not in self.svcs)
        svc = ServiceSpec(ns, name, first=r.choice(["IPv4", "IPv4", "IPv6"]), ports=(r.choice(PORTS),))
        svc, how = self.edit_service(replace(svc, key=r.choice([None, "k1"])))
        await self.api.create(SERVICES, svc.manifest())
        self.svcs[f"{ns}/{name}"] = svc
        return f"create {ns}/{name} key={svc.key} ports={svc.ports} {how}"

    async def delete_service(self) -> str:
        key = self.rng.choice(sorted(self.svcs))
        await self.api.delete(SERVICES, self.svcs.pop(key).name, key.split("/")[0])
        return f"delete {key}"

    async def change_service(self) -> str:
        key = self.rng.choice(sorted(self.svcs))
        before = self.svcs[key]
        svc, how = self.edit_service(before)
        if before.lb and svc.lb and before.lb_class != svc.lb_class:
            # A LoadBalancer's class is fixed (as in Kubernetes): go through ClusterIP.
            await self.api.patch(SERVICES, svc.name, replace(before, lb=False).patch(), svc.ns)
        await self.api.patch(SERVICES, svc.name, svc.patch(), svc.ns)
        self.svcs[key] = svc
        return f"edit {key} {how}"

    async def create_pool(self) -> str:
        name = self.rng.choice(sorted(set(POOLS) - set(self.pools)))
        body = {"apiVersion": "lbipam.io/v1alpha1", "kind": "LoadBalancerIPPool", "metadata": {"name": name}}
        return self.pool_written(await self.api.create(LBPOOLS, {**body, "spec": self.pool_spec()}))

    async def change_pool(self) -> str:
        name = self.rng.choice(sorted(self.pools))
        # A JSON patch replaces the spec whole; a merge patch would merge old and new selectors.
        replace_spec = [{"op": "replace", "path": "/spec", "value": self.pool_spec()}]
        return self.pool_written(await self.api.patch(LBPOOLS, name, replace_spec, kind="json"))

    def pool_written(self, obj: Obj) -> str:
        """Track the spec as the server holds it (with its defaults)."""
        name, spec = obj["metadata"]["name"], obj["spec"]
        self.pools[name] = spec
        self.accepted[name] = serves_from(spec, self.accepted.get(name))
        return f"pool {name} := {spec}"

    async def delete_pool(self) -> str:
        name = self.rng.choice(sorted(self.pools))
        await self.api.delete(LBPOOLS, name)
        del self.pools[name], self.accepted[name]
        return f"delete pool {name}"

    async def relabel_namespace(self) -> str:
        name, team = self.rng.choice(SPACES[1:]), self.rng.choice([None, "a", "b"])
        await self.api.patch(NAMESPACES, name, {"metadata": {"labels": {"team": team}}})
        return f"namespace {name} team={team}"

    def inject(self) -> str:
        r, faults = self.rng, self.server.faults
        roll = r.random()
        if roll < 0.10:
            code = r.choice([409, 500, 500, 409, 409, 500, 500, 409, 429])
            n = 1 if code == 429 else r.randint(1, 3)
            resource = r.choice([None, "services", "loadbalancerippools"])
            faults.fail_next_writes(n, code, resource)
            self.faults += 1
            return f"fail {n} writes {code} {resource}"
        if roll < 0.14:
            faults.drop_watches()
            return "drop watches"
        if roll < 0.17:
            faults.compact()
            faults.drop_watches()
            return "compact + drop watches"
        return ""

    # ---- the controller -------------------------------------------------------------------
    async def check(self, snap: Snapshot) -> None:
        found = problems(snap.services, snap.pools, snap.namespaces, self.accepted) + self.news(snap)
        assert not found, self.report(found)
        ips = [ip for s in snap.services for ip in ingress(s)]
        cases = {reason(s) for s in snap.services} | {reason(p, t) for p in snap.pools for t in POOL_CASES}
        cases |= {("shared", "IP")} if len(ips) > len(set(ips)) else set()
        cases |= {("dual", "stack")} if any(len(ingress(s)) == 2 for s in snap.services) else set()
        cases |= {("kept", "orphan")} if any("kept" in message(s) for s in snap.services) else set()
        self.seen.update(f"{a}/{b}" for a, b in (c for c in cases if c) if a != "False" or b != "NoOverlap")

    def news(self, snap: Snapshot) -> list[str]:
        """Across a step: an IP nobody held before comes from no disabled pool."""
        pools = serving_pools(snap.pools, self.accepted)
        before = set().union(*self.before.values())
        found, self.before = [], {_key(s): set(ingress(s)) for s in snap.services}
        for key, ips in self.before.items():
            for ip in ips - before:
                pool = home(pools, netaddr.IPAddress(ip))
                if pool is not None and pool.spec.get("disabled"):
                    found.append(f"{key} got {ip} from pool {pool.name}, which is disabled")
        return found

    def report(self, found: list[str]) -> str:
        named = {word for line in found for word in line.replace(":", " ").split() if "/" in word}
        recent = [
            (i, s) for i, s in enumerate(self.log) if i >= len(self.log) - 8 or any(n in s for n in named)
        ]
        steps = "\n  ".join(f"{i}: {s}" for i, s in recent)
        return f"seed {SEED}, step {len(self.log)}:\n  " + "\n  ".join(found) + f"\nlast steps:\n  {steps}"

    async def restart(self, snap: Snapshot) -> None:
        """Stop the controller and start another. An IP stays with its Service when its pool is
        unchanged (serving before and after, from the same spec: an invalid one's last accepted
        addresses come back from status.accepted), and when no pool serves it after the restart
        (kept, reported); in a pool that changed it may move."""
        assert self.ctl is not None
        await self.ctl.stop()
        tampered = await self.tamper()
        self.ctl = await start(self.kubeconfig, reuse_delay=0)
        after = {_key(s): set(ingress(s)) for s in (await self.ctl.settle(self.api)).services}
        self.restarts += 1
        moved = []
        for s in (s for s in snap.services if _key(s) != tampered[0]):
            for ip in (ip for ip in ingress(s) if ip != tampered[1]):  # the older of two keeps it
                if ip not in after[_key(s)]:
                    moved.append(f"{_key(s)} lost {ip} across a restart (now {sorted(after[_key(s)])})")
        assert not moved, self.report(moved)

    async def kill_during_invalid_edit(self, snap: Snapshot) -> None:
        await kill_during_invalid_edit(self, snap)

    async def kill_during_reuse_delay(self, snap: Snapshot) -> None:
        await kill_during_reuse_delay(self, snap)

    async def tamper(self) -> tuple[str, str]:
        """Half the time, while no controller runs, give one Service an ingress IP of our own
        choosing (as another tool or an older lbipam could have): outside every pool, or one
        another Service may hold. The next controller must import it by the rules."""
        ours = sorted(k for k, v in self.svcs.items() if v.lb and v.lb_class in (None, "lbipam.io/bgp"))
        if not ours or self.rng.random() < 0.5:
            return ("", "")
        key = self.rng.choice(ours)
        ip = self.rng.choice([f"203.0.113.{self.rng.randrange(1, 9)}", *POPULAR])
        await self.api.set_ingress(self.svcs[key].name, self.svcs[key].ns, ip)
        self.before[key] = self.before.get(key, set()) | {ip}
        self.log.append(f"tamper {key} ingress={ip}")
        return key, ip


ADDRESS_FIELDS = ("blocks", "allowFirstLastIPs", "avoidBuggyIPs")


def serves_from(spec: Obj, before: Obj | None) -> Obj | None:
    """The spec the controller serves a pool from once `spec` is written: itself when valid;
    else its rules with the addresses accepted before (the walk's invalid specs break only the
    blocks); None when never accepted."""
    if spans(spec) is not None:
        return spec
    if before is None:
        return None
    return {**spec, **{k: before[k] for k in ADDRESS_FIELDS if k in before}}


def _key(obj: Obj) -> str:
    return f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"


async def test_chaos(apiserver: EmbeddedAPIServer, kubeconfig: Path, lbipam_crds: list[str]) -> None:
    async with api_for(kubeconfig) as api:
        walk = Walk(random.Random(SEED), api, apiserver, kubeconfig)
        await api.make(namespace("ns-a", {"team": "a"}), namespace("ns-b", {"team": "b"}))
        walk.ctl = await start(kubeconfig, reuse_delay=0)
        try:
            for _ in range(STEPS):
                walk.log.append(await walk.step())
                fault = walk.inject()
                if fault:
                    walk.log.append(fault)
                snap = await walk.ctl.settle(api, timeout=30)
                await walk.check(snap)
                roll = walk.rng.random()
                if roll < 0.05:
                    walk.log.append("restart")
                    await walk.restart(snap)
                elif roll < 0.065:
                    await walk.kill_during_invalid_edit(snap)
                elif roll < 0.075:
                    await walk.kill_during_reuse_delay(snap)
                else:
                    continue
                await walk.check(await walk.ctl.settle(api, timeout=30))
        finally:
            await walk.ctl.stop()
    faults, kills = walk.faults, dict(walk.kills)
    print(
        f"chaos: seed {SEED}, {STEPS} steps, {walk.restarts} restarts, {faults} write faults, kills {kills}"
    )
    print("steps after which each case was present:", dict(sorted(walk.seen.items())))
    assert walk.restarts >= 5
    assert walk.kills["invalid edit"] >= 2, walk.kills
    assert walk.kills["reuse delay"] >= 2, walk.kills
    assert not ALWAYS - set(walk.seen), f"the walk never met {ALWAYS - set(walk.seen)}: make it wilder"
