"""Shared helpers of the PodCIDR end-to-end tests: drive the embedded API server, run controllers.

Used by test_podcidr_scenarios*.py, test_podcidr_random.py and test_podcidr_hostlocal.py.
Everything goes over real HTTP through `lbipam.k8s.Kube` (the real kubernetes_asyncio client):
- builders for PodCIDRPools, Nodes and CiliumNodes (plain dicts, as a user or an agent writes them);
- `PCApi`: the test's own client (retrying writes, from lbipam_harness.Api) with `join`/`leave`
  for a Node (and, for the ciliumnode targets, the CiliumNode its agent creates) and readers;
- `PCRunning`: one `ControllerApp` with `--podcidr-target` as a task, and `settle()`: wait until
  its PodCIDR controller has nothing left to do (tests/controller_harness.py), returning a
  `PCSnapshot` of what it reads;
- readers of a Node's CIDRs *as each target's consumer reads them*, written here independently of
  lbipam's own targets module, of conditions, Events and pool counters.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lbipam.controllers.app import ControllerApp, LeaderOptions, PodCIDRSettings
from lbipam.controllers.lbipam.controller import LBOptions
from lbipam.controllers.podcidr.controller import PodCIDRController, PodCIDROptions
from lbipam.k8s.client import connect
from lbipam.k8s.resources import CILIUMNODES, EVENTS, NODES, PODCIDRPOOLS, Resource
from tests.controller_harness import Running, settled_read, until
from tests.helpers import eventually
from tests.lbipam_harness import Api

Obj = dict[str, Any]
TARGETS = ("node", "ciliumnode", "ciliumnode-pool", "node-annotations")
CILIUM = ("ciliumnode", "ciliumnode-pool")
ANNOTATIONS = {4: "io.cilium.network.ipv4-pod-cidr", 6: "io.cilium.network.ipv6-pod-cidr"}
CONDITION = "lbipam.io/PodCIDRsAllocated"
Family = tuple[list[str], int]  # (cidrs, maskSize)


# ---- builders ---------------------------------------------------------------------------------
def pcpool(
    name: str, v4: Family | None = None, v6: Family | None = None, *, selector: Obj | None = None, **spec: Any
) -> Obj:
    """A PodCIDRPool manifest; `spec` takes the wire names (disabled, priority)."""
    body: Obj = dict(spec)
    for key, fam in (("ipv4", v4), ("ipv6", v6)):
        if fam is not None:
            body[key] = {"cidrs": list(fam[0]), "maskSize": fam[1]}
    if selector is not None:
        body["nodeSelector"] = selector
    return {
        "apiVersion": "lbipam.io/v1alpha1",
        "kind": "PodCIDRPool",
        "metadata": {"name": name},
        "spec": body,
    }


def family_of(cidr: str) -> int:
    return 6 if ":" in cidr else 4


def where(target: str, cidrs: Iterable[str]) -> tuple[Obj, Obj]:
    """(Node fragment, CiliumNode spec.ipam fragment) that make `target` show `cidrs`: a hand
    edit, or what an earlier lbipam (or another operator) left."""
    cidrs = list(cidrs)
    if not cidrs:
        return {}, {}
    if target == "node":
        return {"spec": {"podCIDR": cidrs[0], "podCIDRs": cidrs}}, {}
    if target == "node-annotations":
        return {"metadata": {"annotations": {ANNOTATIONS[family_of(c)]: c for c in cidrs}}}, {}
    return {}, {"podCIDRs": cidrs}


def node(name: str, labels: Mapping[str, str] | None = None, fragment: Obj | None = None) -> Obj:
    """A Node as the kubelet registers it (plus `fragment`, merged in)."""
    meta: Obj = {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}}
    meta.update((fragment or {}).get("metadata") or {})
    spec = dict((fragment or {}).get("spec") or {})
    return {"apiVersion": "v1", "kind": "Node", "metadata": meta, "spec": spec}


def ciliumnode(node_obj: Obj, ipam: Obj | None = None) -> Obj:
    """The CiliumNode the Cilium agent creates for its Node: same name, owned by the Node."""
    meta = node_obj["metadata"]
    owner = {"apiVersion": "v1", "kind": "Node", "name": meta["name"], "uid": meta["uid"]}
    return {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumNode",
        "metadata": {
            "name": meta["name"],
            "labels": dict(meta.get("labels") or {}),
            "ownerReferences": [owner],
        },
        "spec": {"addresses": [{"type": "InternalIP", "ip": "127.0.0.1"}], "ipam": dict(ipam or {})},
    }


# ---- the test's own client --------------------------------------------------------------------
class PCApi(Api):
    """The test's writes (retried, as lbipam_harness.Api's) and reads of the PodCIDR objects."""

    async def join(
        self,
        target: str,
        name: str,
        labels: Mapping[str, str] | None = None,
        *,
        cidrs: Iterable[str] = (),
        ipam: Obj | None = None,
    ) -> Obj:
        """A Node registers; for the ciliumnode targets its agent then creates the CiliumNode
        (`ipam`: its spec.ipam). `cidrs`: already in the target, written by hand."""
        on_node, on_cn = where(target, cidrs)
        created = await self.create(NODES, node(name, labels, on_node))
        if target in CILIUM:
            await self.create(CILIUMNODES, ciliumnode(created, {**(ipam or {}), **on_cn}))
        return created

    async def leave(self, name: str) -> None:
        """The Node is deleted, and its CiliumNode with it (the garbage collector's part)."""
        await self.delete(NODES, name)
        await self.delete(CILIUMNODES, name)

    async def rewrite(self, target: str, name: str, cidrs: Iterable[str]) -> Obj:
        """Change by hand the CIDRs `target` shows for Node `name` (none: remove them); not for
        `node`, whose spec.podCIDRs the API server keeps as first set."""
        cidrs = list(cidrs)
        if target == "node-annotations":
            notes = {
                key: next((c for c in cidrs if family_of(c) == f), None) for f, key in ANNOTATIONS.items()
            }
            return await self.patch(NODES, name, {"metadata": {"annotations": notes}})
        if target in CILIUM:
            return await self.patch(CILIUMNODES, name, {"spec": {"ipam": {"podCIDRs": cidrs or None}}})
        raise ValueError(f"target {target}: its CIDRs cannot be rewritten")

    async def status_patch(self, res: Resource, name: str, body: Obj) -> Obj:
        return await self._retry(lambda: self.kube.patch(res, name, body, subresource="status"))

    async def mark_used(self, name: str, ips: Mapping[str, bool]) -> Obj:
        """The agent marks IPs used (True) or free again (False) in CiliumNode status.ipam.used."""
        used = {
            ip: ({"owner": f"default/pod-{ip}", "resource": "pod"} if on else None) for ip, on in ips.items()
        }
        return await self.status_patch(CILIUMNODES, name, {"status": {"ipam": {"used": used}}})

    async def spec(self, pool: str, spec: Obj) -> Obj:
        """Merge `spec` into PodCIDRPool `pool`'s spec (lists are replaced whole)."""
        return await self.patch(PODCIDRPOOLS, pool, {"spec": spec})

    async def node(self, name: str) -> Obj:
        return await self.kube.get(NODES, name)

    async def cn(self, name: str) -> Obj:
        return await self.kube.get(CILIUMNODES, name)

    async def pcpool(self, name: str) -> Obj:
        return await self.kube.get(PODCIDRPOOLS, name)

    async def nodes(self) -> list[Obj]:
        return (await self.kube.list_all(NODES)).items

    async def pcpools(self) -> list[Obj]:
        return (await self.kube.list_all(PODCIDRPOOLS)).items

    async def cns(self) -> list[Obj]:
        return (await self.kube.list_all(CILIUMNODES)).items

    async def node_events(self, name: str) -> list[Obj]:
        """Events about Node `name` (they live in "default"), oldest first."""
        items = (await self.kube.list_all(EVENTS, namespace="default")).items
        mine = [
            e
            for e in items
            if (e.get("regarding") or {}).get("kind") == "Node" and e["regarding"].get("name") == name
        ]
        return sorted(mine, key=lambda e: (e.get("eventTime") or "", e["metadata"]["name"]))

    async def node_reasons(self, name: str) -> list[tuple[str, str]]:
        """(type, reason) of the Events about Node `name`, oldest first."""
        return [(e["type"], e["reason"]) for e in await self.node_events(name)]


# ---- readers ----------------------------------------------------------------------------------
def cidrs_in(target: str, node_obj: Obj, cn: Obj | None) -> tuple[str, ...]:
    """The Node's pod CIDRs where `target` puts them, as that target's consumer reads them."""
    if target == "node":
        spec = node_obj.get("spec") or {}
        return tuple(spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else []))
    if target == "node-annotations":
        notes = (node_obj.get("metadata") or {}).get("annotations") or {}
        return tuple(notes[k] for k in ANNOTATIONS.values() if k in notes)
    return tuple((((cn or {}).get("spec") or {}).get("ipam") or {}).get("podCIDRs") or ())


def condition(obj: Obj, type_: str = CONDITION) -> Obj | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return None


def reason(obj: Obj, type_: str = CONDITION) -> tuple[str, str] | None:
    """(status, reason) of a condition (a Node's PodCIDRsAllocated by default), or None."""
    cond = condition(obj, type_)
    return None if cond is None else (cond["status"], cond["reason"])


def message(obj: Obj, type_: str = CONDITION) -> str:
    return str((condition(obj, type_) or {}).get("message", ""))


def counts(pool_obj: Obj, family: int = 4) -> tuple[str, str, str]:
    """(total, used, available) of a pool's status for one family, as the decimal strings written."""
    got = (pool_obj.get("status") or {}).get(f"ipv{family}") or {}
    return str(got.get("total")), str(got.get("used")), str(got.get("available"))


def operator_error(cn: Obj | None) -> str | None:
    """CiliumNode status.ipam.operator-status.error (None when absent)."""
    status = ((cn or {}).get("status") or {}).get("ipam") or {}
    error = (status.get("operator-status") or {}).get("error")
    return None if error is None else str(error)


def ip_pool(cn: Obj) -> set[str]:
    """CiliumNode spec.ipam.pool: the IPs published to the agent."""
    return set(((cn.get("spec") or {}).get("ipam") or {}).get("pool") or {})


def rv(obj: Obj) -> str:
    return str(obj["metadata"]["resourceVersion"])


@dataclass(frozen=True)
class PCSnapshot:
    """Everything the PodCIDR controller reads, as one fresh read of the API returned it."""

    target: str
    nodes: list[Obj]
    pools: list[Obj]
    cns: list[Obj]

    def node(self, name: str) -> Obj:
        return next(n for n in self.nodes if n["metadata"]["name"] == name)

    def cn(self, name: str) -> Obj | None:
        return next((c for c in self.cns if c["metadata"]["name"] == name), None)

    def pool(self, name: str) -> Obj:
        return next(p for p in self.pools if p["metadata"]["name"] == name)

    def cidrs(self, name: str) -> tuple[str, ...]:
        return cidrs_in(self.target, self.node(name), self.cn(name))

    def assigned(self) -> dict[str, tuple[str, ...]]:
        """Node name -> its CIDRs in the target, for every Node."""
        return {n["metadata"]["name"]: self.cidrs(n["metadata"]["name"]) for n in self.nodes}

    def reasons(self) -> dict[str, tuple[str, str] | None]:
        return {n["metadata"]["name"]: reason(n) for n in self.nodes}

    def versions(self) -> dict[str, str]:
        """kind/name -> resourceVersion of every Node, CiliumNode and pool."""
        objs = [("node", self.nodes), ("cn", self.cns), ("pool", self.pools)]
        return {f"{kind}/{o['metadata']['name']}": rv(o) for kind, items in objs for o in items}


# ---- a controller in this process -------------------------------------------------------------
@dataclass
class PCRunning(Running):
    """One ControllerApp with a PodCIDR target, settled by its PodCIDR controller."""

    target: str = "node"

    @property
    def podcidr(self) -> PodCIDRController:
        assert self.app.podcidr is not None
        return self.app.podcidr

    async def settle(self, api: PCApi, timeout: float = 20.0) -> PCSnapshot:  # noqa: ASYNC109
        """Wait until the PodCIDR controller has settled; the API's objects then."""
        return await until(lambda: self.quiet_against(api), timeout=timeout, interval=0.01)

    async def quiet_against(self, api: PCApi) -> PCSnapshot | None:
        self.alive()
        pc = self.podcidr

        async def read() -> list[list[Obj]]:
            return list(await asyncio.gather(api.nodes(), api.pcpools(), api.cns()))

        caches = [pc.nodes, pc.pools] + ([pc.ciliumnodes] if pc.ciliumnodes is not None else [])
        fresh = await settled_read(pc, pc.status, read, caches)
        return None if fresh is None else PCSnapshot(self.target, *fresh)


async def start(
    kubeconfig: Path,
    target: str,
    *,
    reuse_delay: float = 0.0,
    pre_allocate: int = 8,
    max_above: int = 8,
    name: str = "controller",
) -> PCRunning:
    """Start a controller (leader election off) with `--podcidr-target target`; wait until its
    PodCIDR controller leads and has planned its first round."""
    kube = await connect(str(kubeconfig))
    settings = PodCIDRSettings(target, pre_allocate, max_above, PodCIDROptions(reuse_delay=reuse_delay))
    app = ControllerApp(kube, LBOptions(), LeaderOptions(enabled=False), settings)
    task = asyncio.create_task(app.run(), name=name)
    running = PCRunning(app, kube, task, name, target=target)
    await eventually(lambda: running.podcidr.ready.is_set() or task.done(), timeout=20)
    running.alive()
    return running


@contextlib.asynccontextmanager
async def controller(kubeconfig: Path, target: str, **options: Any) -> AsyncIterator[PCRunning]:
    running = await start(kubeconfig, target, **options)
    try:
        yield running
    finally:
        await running.stop()


@contextlib.asynccontextmanager
async def api_for(kubeconfig: Path) -> AsyncIterator[PCApi]:
    kube = await connect(str(kubeconfig))
    try:
        yield PCApi(kube)
    finally:
        await kube.close()
