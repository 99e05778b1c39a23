"""The chaos walk's kill steps (tests/test_lbipam_chaos.py): the controller killed (its task
cancelled: nothing drained, memory gone) during an invalid pool edit and during a reuse delay,
and what the next controller must make of it."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import netaddr

from lbipam.k8s.resources import LBPOOLS, SERVICES
from tests.lbipam_harness import Api, Snapshot, block, ingress, start, until

if TYPE_CHECKING:
    from tests.test_lbipam_chaos import Walk

Obj = dict[str, Any]
REUSE_DELAY = 3.0  # seconds, in the walk's kill-during-the-reuse-delay step


async def until_listed(api: Api, ip: str) -> str:
    """When the reuse delay of `ip` ends, as a pool's status.heldBack records it (RFC 3339)."""

    async def listed() -> str | None:
        for obj in await api.pools():
            for entry in ((obj.get("status") or {}).get("heldBack") or {}).get("addresses") or []:
                if entry["ip"] == ip:
                    return str(entry["until"])
        return None

    return await until(listed, timeout=10)


async def allocated_at(api: Api, svc: Obj, ip: str) -> str | None:
    """When Service `svc` was last given `ip` (its IPAllocated Event, or the last of its series),
    RFC 3339 to the second."""
    meta = svc["metadata"]
    times = [
        str((e.get("series") or {}).get("lastObservedTime") or e.get("eventTime") or "")[:19] + "Z"
        for e in await api.events(meta["name"], meta["namespace"])
        if e["reason"] == "IPAllocated" and e["note"].startswith(f"{ip} ")
    ]
    return max(times, default=None)


async def kill_during_invalid_edit(walk: Walk, snap: Snapshot) -> None:
    """Break the blocks of a pool that serves (the rest of its spec unchanged) and kill the
    controller at once, whether or not it saw the edit: the next one serves the pool from
    status.accepted, so no Service loses its IP (checked by `restart`)."""
    serving = sorted(n for n, spec in walk.accepted.items() if spec is not None)
    if not serving:
        return
    name = walk.rng.choice(serving)
    broken = [{"op": "replace", "path": "/spec/blocks", "value": [block("192.0.2.9-192.0.2.3")]}]
    walk.log.append(
        "kill during an invalid edit: "
        + walk.pool_written(await walk.api.patch(LBPOOLS, name, broken, kind="json"))
    )
    walk.kills["invalid edit"] += 1
    await walk.restart(snap)


async def kill_during_reuse_delay(walk: Walk, snap: Snapshot) -> None:
    """Under a controller with a reuse delay, delete a Service, kill the controller once the
    pool's status records the delay, and start one without a delay: the released IP goes to
    nobody (a probe asks for it by name) before the recorded end of its delay."""
    ours = [
        (key, ip)
        for s in snap.services
        if (key := _key(s)) in walk.svcs and len(ingress(s)) == 1
        for ip in ingress(s)
        if netaddr.IPAddress(ip).version == 4 and sum(ip in ingress(o) for o in snap.services) == 1
    ]
    if not ours:
        return
    key, ip = walk.rng.choice(sorted(ours))
    svc = walk.svcs.pop(key)
    assert walk.ctl is not None
    await walk.ctl.stop()
    walk.ctl = await start(walk.kubeconfig, reuse_delay=REUSE_DELAY)
    await walk.ctl.settle(walk.api, timeout=30)
    await walk.api.delete(SERVICES, svc.name, svc.ns)
    until = await until_listed(walk.api, ip)
    walk.log.append(f"kill during the reuse delay of {ip} (from {key}, until {until})")
    walk.kills["reuse delay"] += 1
    await walk.ctl.stop()
    walk.ctl = await start(walk.kubeconfig, reuse_delay=0)
    probe = replace(
        svc, name="probe", ips=ip, key=None, lb_ip=None, pin=None, policy="SingleStack", first="IPv4"
    )
    await walk.api.create(SERVICES, probe.manifest())
    settled = await walk.ctl.settle(walk.api, timeout=30)  # once the delay ended, if it waits
    early = [
        f"{_key(s)} got {ip} at {at}, before the reuse delay recorded ended ({until})"
        for s in settled.services
        if ip in ingress(s)
        for at in [await allocated_at(walk.api, s, ip)]
        if at is not None and at < until
    ]
    assert not early, walk.report(early)
    await walk.api.delete(SERVICES, "probe", probe.ns)


def _key(obj: Obj) -> str:
    return f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"
