"""PodCIDR end to end, `--podcidr-target ciliumnode-pool` (Cilium's CRD-backed IPAM): individual
IPs of the Node's CIDR are published in CiliumNode spec.ipam.pool, kept `pre-allocate` free IPs
above what the agent marks used in status.ipam.used, trimmed (highest free first) above
`pre-allocate + max-above-watermark`, never losing an IP in use; the CiliumNode's own watermarks
win over the controller's flags. The test plays the agent: it marks IPs used and free.
"""

from __future__ import annotations

from pathlib import Path

from lbipam.k8s.resources import PODCIDRPOOLS
from tests.podcidr_harness import PCApi, PCRunning, controller, ip_pool, pcpool

TARGET = "ciliumnode-pool"


def v4(*last: int, net: str = "192.0.2") -> set[str]:
    return {f"{net}.{n}" for n in last}


async def published(ctl: PCRunning, api: PCApi, name: str) -> set[str]:
    snap = await ctl.settle(api)
    cn = snap.cn(name)
    assert cn is not None
    return ip_pool(cn)


async def test_the_pool_is_stocked_grown_and_trimmed_never_losing_a_used_ip(
    kubeconfig: Path, api: PCApi
) -> None:
    await api.create(PODCIDRPOOLS, pcpool("p", (["192.0.2.0/26"], 28), (["2001:db8::/112"], 124)))
    await api.join(TARGET, "n")
    async with controller(kubeconfig, TARGET, pre_allocate=3, max_above=1) as ctl:
        snap = await ctl.settle(api)
        assert snap.cidrs("n") == ("192.0.2.0/28", "2001:db8::/124")
        # Three free IPs per CIDR; never the network address of an IPv4 CIDR (IPv6 has none).
        assert await published(ctl, api, "n") == v4(1, 2, 3) | {"2001:db8::", "2001:db8::1", "2001:db8::2"}

        await api.mark_used("n", {"192.0.2.1": True, "192.0.2.2": True, "192.0.2.3": True})
        grown = await published(ctl, api, "n")
        assert {ip for ip in grown if "." in ip} == v4(1, 2, 3, 4, 5, 6)  # three free above the used

        # The agent frees .1-.3 and takes .6: five free is above 3 + 1, so the highest free
        # one goes (.5), and .6, in use and the highest of all, stays.
        await api.mark_used(
            "n", {"192.0.2.1": False, "192.0.2.2": False, "192.0.2.3": False, "192.0.2.6": True}
        )
        trimmed = await published(ctl, api, "n")
        assert {ip for ip in trimmed if "." in ip} == v4(1, 2, 3, 4, 6)
        assert {ip for ip in trimmed if ":" in ip} == {"2001:db8::", "2001:db8::1", "2001:db8::2"}


async def test_the_ciliumnode_watermarks_win_over_the_flags(kubeconfig: Path, api: PCApi) -> None:
    await api.create(PODCIDRPOOLS, pcpool("p", (["192.0.2.0/26"], 28)))
    await api.join(TARGET, "a-own", ipam={"pre-allocate": 2, "max-above-watermark": 0})
    await api.join(TARGET, "b-flags")
    await api.join(TARGET, "c-zero", ipam={"pre-allocate": 0})  # 0 means unset, as in Cilium
    async with controller(kubeconfig, TARGET, pre_allocate=5, max_above=5) as ctl:
        assert await published(ctl, api, "a-own") == v4(1, 2)
        assert await published(ctl, api, "b-flags") == v4(17, 18, 19, 20, 21)
        assert await published(ctl, api, "c-zero") == v4(33, 34, 35, 36, 37)
        await api.mark_used("a-own", {"192.0.2.1": True})
        assert await published(ctl, api, "a-own") == v4(1, 2, 3)
        await api.mark_used("a-own", {"192.0.2.1": False})
        assert await published(ctl, api, "a-own") == v4(1, 2)  # max-above-watermark 0: trimmed at once


async def test_a_full_cidr_publishes_what_it_has(kubeconfig: Path, api: PCApi) -> None:
    await api.create(PODCIDRPOOLS, pcpool("p", (["192.0.2.0/29"], 30)))
    await api.join(TARGET, "n")
    async with controller(kubeconfig, TARGET, pre_allocate=8, max_above=0) as ctl:
        assert await published(ctl, api, "n") == v4(1, 2)  # a /30: network and broadcast never
        await api.mark_used("n", {"192.0.2.1": True, "192.0.2.2": True})
        assert await published(ctl, api, "n") == v4(1, 2)
