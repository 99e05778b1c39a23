"""Shared helpers of the LB-IPAM end-to-end tests: drive the embedded API server, run controllers.

Used by test_lbipam_scenarios*.py, test_lbipam_chaos.py and test_lbipam_leader.py. Everything
goes over real HTTP through `lbipam.k8s.Kube` (the real kubernetes_asyncio client underneath):
- builders for Services and LoadBalancerIPPools (plain dicts, as a user's manifest), and
  `ServiceSpec`, a Service the chaos walk rewrites whole;
- `Api`: the test's own client; its writes retry injected faults (409/429/500), since
  `faults.fail_next_writes` fails whichever writes come next, the test's included;
- `Running`: one `ControllerApp` as a task (tests/controller_harness.py), and `settle()`: wait
  until its LB-IPAM controller has nothing left to do;
- readers for ingress IPs, conditions, annotations, Events and pool counters.
The invariant checker lives in `lbipam_invariants.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lbipam.controllers.app import ControllerApp, LeaderOptions
from lbipam.controllers.lbipam.controller import LBOptions
from lbipam.core.lbviews import ANNOTATION_ALLOCATED_FROM, CONDITION_SATISFIED
from lbipam.k8s.client import Kube, connect
from lbipam.k8s.errors import Backoff, NotFound, retry
from lbipam.k8s.resources import EVENTS, LBPOOLS, NAMESPACES, SERVICES, Resource
from lbipam.k8s.wire import PatchType
from tests.controller_harness import Running as RunningApp
from tests.controller_harness import settled_read
from tests.controller_harness import until as until  # noqa: PLC0414  # re-exported for the LB tests
from tests.helpers import eventually

Obj = dict[str, Any]
SATISFIED = CONDITION_SATISFIED
ALLOCATED_FROM = ANNOTATION_ALLOCATED_FROM


# ---- builders ---------------------------------------------------------------------------------
def service(
    name: str,
    namespace: str = "default",
    *,
    annotations: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    ports: tuple[tuple[str, int], ...] = (("TCP", 80),),
    type_: str = "LoadBalancer",
    lb_class: str | None = None,
    lb_ip: str | None = None,
    policy: str | None = None,
    families: tuple[str, ...] | None = None,
    traffic_policy: str | None = None,
    selector: Mapping[str, str] | None = None,
) -> Obj:
    """A Service manifest; only the fields given are set (the server defaults the rest)."""
    spec: Obj = {
        "type": type_,
        "ports": [
            {"name": f"p{port}-{proto.lower()}", "protocol": proto, "port": port} for proto, port in ports
        ],
        "selector": dict(selector or {"app": name}),
    }
    optional = {
        "loadBalancerClass": lb_class,
        "loadBalancerIP": lb_ip,
        "ipFamilyPolicy": policy,
        "ipFamilies": list(families) if families else None,
        "externalTrafficPolicy": traffic_policy,
    }
    spec.update({k: v for k, v in optional.items() if v is not None})
    meta: Obj = {"name": name, "namespace": namespace}
    if annotations:
        meta["annotations"] = dict(annotations)
    if labels:
        meta["labels"] = dict(labels)
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec}


@dataclass
class ServiceSpec:
    """A Service the test manages whole (the chaos walk): `patch()` sets every field it manages,
    `manifest()` creates it."""

    ns: str
    name: str
    first: str = "IPv4"  # ipFamilies[0] cannot change once set
    policy: str = "SingleStack"
    tier: str | None = None
    pin: str | None = None
    ips: str | None = None
    lb_ip: str | None = None
    key: str | None = None
    xns: str | None = None
    bogus: bool = False  # an unknown lbipam.io/ annotation
    ports: tuple[tuple[str, int], ...] = (("TCP", 80),)
    local: bool = False
    app: str = "x"
    lb: bool = True  # type LoadBalancer (else ClusterIP)
    lb_class: str | None = None

    def patch(self) -> Obj:
        notes = {
            "lbipam.io/pool": self.pin,
            "lbipam.io/ips": self.ips,
            "lbipam.io/sharing-key": self.key,
            "lbipam.io/sharing-cross-namespace": self.xns,
            "lbipam.io/bogus": "1" if self.bogus else None,
        }
        other = "IPv6" if self.first == "IPv4" else "IPv4"
        spec: Obj = {
            "type": "LoadBalancer" if self.lb else "ClusterIP",
            "ports": [{"name": f"{p.lower()}{n}", "protocol": p, "port": n} for p, n in self.ports],
            "selector": {"app": self.app},
            "ipFamilyPolicy": self.policy,
            "ipFamilies": [self.first] if self.policy == "SingleStack" else [self.first, other],
            "loadBalancerClass": self.lb_class if self.lb else None,
            "loadBalancerIP": self.lb_ip if self.lb else None,
            "externalTrafficPolicy": ("Local" if self.local else "Cluster") if self.lb else None,
            "allocateLoadBalancerNodePorts": True if self.lb else None,
            "healthCheckNodePort": None,
        }
        meta = {"labels": {"tier": self.tier}, "annotations": notes}
        return {"metadata": meta, "spec": spec}

    def manifest(self) -> Obj:
        body = self.patch()
        body["metadata"] = {
            "name": self.name,
            "namespace": self.ns,
            "labels": {k: v for k, v in body["metadata"]["labels"].items() if v},
            "annotations": {k: v for k, v in body["metadata"]["annotations"].items() if v},
        }
        body["spec"] = {k: v for k, v in body["spec"].items() if v is not None}
        return {"apiVersion": "v1", "kind": "Service", **body}


def block(text: str) -> Obj:
    """ "192.0.2.0/28" -> {cidr}; "192.0.2.5-192.0.2.9" -> {start, stop}."""
    if "-" in text:
        start, stop = text.split("-", 1)
        return {"start": start, "stop": stop}
    return {"cidr": text}


def pool(name: str, *blocks: str, labels: Mapping[str, str] | None = None, **spec: Any) -> Obj:
    """A LoadBalancerIPPool manifest; `spec` takes the wire names (serviceSelector, autoAssign...)."""
    meta: Obj = {"name": name}
    if labels:
        meta["labels"] = dict(labels)
    body = {"blocks": [block(b) for b in blocks], **spec}
    return {"apiVersion": "lbipam.io/v1alpha1", "kind": "LoadBalancerIPPool", "metadata": meta, "spec": body}


def namespace(name: str, labels: Mapping[str, str] | None = None) -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": dict(labels or {})}}


# ---- the test's own client --------------------------------------------------------------------
class Api:
    """The test's writes and reads. Writes retry what injected faults throw at them."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    async def _retry(self, op: Any) -> Obj:
        result: Obj = await retry(
            op, what="test write", attempts=12, conflicts=True, backoff=Backoff(0.01, 0.2)
        )
        return result

    async def create(self, res: Resource, obj: Obj) -> Obj:
        return await self._retry(lambda: self.kube.create(res, obj))

    async def patch(
        self, res: Resource, name: str, body: Any, namespace: str | None = None, kind: PatchType = "merge"
    ) -> Obj:
        return await self._retry(
            lambda: self.kube.patch(res, name, body, namespace=namespace, patch_type=kind)
        )

    async def delete(self, res: Resource, name: str, namespace: str | None = None) -> None:
        with contextlib.suppress(NotFound):
            await self._retry(lambda: self.kube.delete(res, name, namespace=namespace))

    async def make(self, *objs: Obj) -> None:
        """Create Services, LoadBalancerIPPools and Namespaces, in order."""
        kinds = {"Service": SERVICES, "LoadBalancerIPPool": LBPOOLS, "Namespace": NAMESPACES}
        for obj in objs:
            await self.create(kinds[obj["kind"]], obj)

    async def set_ingress(self, name: str, namespace: str, *ips: str) -> Obj:
        """Write a Service's ingress IPs as another controller (or an earlier lbipam) left them."""
        body = {"status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}}}
        return await self._retry(
            lambda: self.kube.patch(SERVICES, name, body, namespace=namespace, subresource="status")
        )

    async def svc(self, name: str, namespace: str = "default") -> Obj:
        return await self.kube.get(SERVICES, name, namespace=namespace)

    async def pool(self, name: str) -> Obj:
        return await self.kube.get(LBPOOLS, name)

    async def services(self) -> list[Obj]:
        return (await self.kube.list_all(SERVICES)).items

    async def pools(self) -> list[Obj]:
        return (await self.kube.list_all(LBPOOLS)).items

    async def namespaces(self) -> list[Obj]:
        return (await self.kube.list_all(NAMESPACES)).items

    async def events(self, name: str, namespace: str = "default") -> list[Obj]:
        """events.k8s.io/v1 Events about Service `namespace/name`, oldest first."""
        items = (await self.kube.list_all(EVENTS, namespace=namespace)).items
        mine = [e for e in items if (e.get("regarding") or {}).get("name") == name]
        return sorted(mine, key=lambda e: (e.get("eventTime") or "", e["metadata"]["name"]))

    async def reasons(self, name: str, namespace: str = "default") -> list[str]:
        return [e["reason"] for e in await self.events(name, namespace)]


# ---- readers ----------------------------------------------------------------------------------
def ingress(obj: Obj) -> list[str]:
    return [i["ip"] for i in ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []]


def condition(obj: Obj, type_: str = SATISFIED) -> Obj | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return None


def reason(obj: Obj, type_: str = SATISFIED) -> tuple[str, str] | None:
    """(status, reason) of a condition, or None."""
    cond = condition(obj, type_)
    return None if cond is None else (cond["status"], cond["reason"])


def message(obj: Obj, type_: str = SATISFIED) -> str:
    return str((condition(obj, type_) or {}).get("message", ""))


def allocated_from(obj: Obj) -> str | None:
    return ((obj.get("metadata") or {}).get("annotations") or {}).get(ALLOCATED_FROM)


def counts(obj: Obj, family: int = 4) -> tuple[int, int, int]:
    """(total, used, available) of a pool's status for one family."""
    got = (obj.get("status") or {}).get(f"ipv{family}") or {}
    return int(got.get("total", -1)), int(got.get("used", -1)), int(got.get("available", -1))


def rv(obj: Obj) -> str:
    return str(obj["metadata"]["resourceVersion"])


# ---- a controller in this process -------------------------------------------------------------
@dataclass
class Running(RunningApp):
    """One ControllerApp running as a task on its own client; settled by its LB-IPAM controller."""

    async def settled(self, api: Api, name: str, namespace: str = "default", timeout: float = 20.0) -> Obj:  # noqa: ASYNC109
        """Service `namespace/name` as the settled controller left it."""
        await self.settle(api, timeout)
        return await api.svc(name, namespace)

    async def settle(self, api: Api, timeout: float = 20.0) -> Snapshot:  # noqa: ASYNC109
        """Wait until the controller has settled (see `quiet_against`); the API's objects then."""
        return await until(lambda: self.quiet_against(api), timeout=timeout, interval=0.01)

    async def quiet_against(self, api: Api) -> Snapshot | None:
        """Settled, as `settled_read` says, around a fresh read of Services, pools, Namespaces."""
        self.alive()
        lb = self.app.lb

        async def read() -> list[list[Obj]]:
            return list(await asyncio.gather(api.services(), api.pools(), api.namespaces()))

        fresh = await settled_read(lb, lb.status, read, (lb.services, lb.pools, lb.namespaces))
        return None if fresh is None else Snapshot(*fresh)


@dataclass(frozen=True)
class Snapshot:
    """Everything the LB-IPAM controller reads, as one fresh read of the API returned it."""

    services: list[Obj]
    pools: list[Obj]
    namespaces: list[Obj]


def candidate(identity: str) -> LeaderOptions:
    """Leader election as `identity`; short leases (2 s, renew deadline 1.5 s, retry 0.3 s) keep
    the handovers quick."""
    return LeaderOptions(
        identity=identity,
        lease_name="lbipam-controller",
        lease_namespace="default",
        lease_duration=2.0,
        renew_deadline=1.5,
        retry_period=0.3,
    )


async def start(
    kubeconfig: Path,
    *,
    reuse_delay: float = 0.5,
    default_class: bool = True,
    leader: LeaderOptions | None = None,
    name: str = "controller",
) -> Running:
    """Start a controller (leader election off unless `leader` is given) and wait until it leads
    and has planned its first round (with election on: only until it runs)."""
    kube = await connect(str(kubeconfig))
    options = LBOptions(default_class=default_class, reuse_delay=reuse_delay)
    app = ControllerApp(kube, options, leader or LeaderOptions(enabled=False))
    task = asyncio.create_task(app.run(), name=name)
    running = Running(app, kube, task, name)
    if leader is None:
        try:
            await eventually(lambda: app.lb.ready.is_set() or task.done(), timeout=20)
        except AssertionError:
            await running.stop()  # not left running (and retrying) after the test
            raise
    return running


@contextlib.asynccontextmanager
async def controller(kubeconfig: Path, **options: Any) -> AsyncIterator[Running]:
    running = await start(kubeconfig, **options)
    try:
        yield running
    finally:
        await running.stop()


@contextlib.asynccontextmanager
async def api_for(kubeconfig: Path) -> AsyncIterator[Api]:
    kube = await connect(str(kubeconfig))
    try:
        yield Api(kube)
    finally:
        await kube.close()
