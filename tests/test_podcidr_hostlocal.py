"""A real consumer of the CIDRs lbipam writes: the CNI `host-local` IPAM plugin (Debian's
containernetworking-plugins), run as a process with CNI_COMMAND=ADD/DEL and a network config
whose ranges are the Node's pod CIDRs as lbipam wrote them to each target.

host-local IPAM only reserves addresses: it keeps one file per reserved IP in its `dataDir` (a
tmp dir here, so nothing touches /var/lib/cni) and never enters CNI_NETNS, which the CNI
protocol still requires to be set; no other plugin is run and no network is changed.
Skipped only when the plugin is not installed.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import netaddr
import pytest

from lbipam.k8s.resources import PODCIDRPOOLS
from tests.podcidr_harness import TARGETS, PCApi, controller, pcpool

PLUGIN_DIRS = (Path("/usr/lib/cni"), Path("/opt/cni/bin"))
HOST_LOCAL = next((d / "host-local" for d in PLUGIN_DIRS if (d / "host-local").is_file()), None)

pytestmark = pytest.mark.skipif(
    HOST_LOCAL is None,
    reason="the CNI host-local plugin is not installed (apt-get install containernetworking-plugins)",
)


async def host_local(command: str, container: str, cidrs: tuple[str, ...], data_dir: Path) -> dict[str, Any]:
    """Run host-local once; its JSON result (ADD) or {} (DEL). Fails on a plugin error."""
    assert HOST_LOCAL is not None
    conf = {
        "cniVersion": "1.0.0",
        "name": "lbipam-pods",
        "type": "host-local",
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": cidr}] for cidr in cidrs],  # one range set per family
            "dataDir": str(data_dir),
        },
    }
    env = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": container,
        "CNI_NETNS": "/var/run/netns/lbipam-never-entered",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(HOST_LOCAL.parent),
    }
    proc = await asyncio.create_subprocess_exec(
        str(HOST_LOCAL),
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(json.dumps(conf).encode()), timeout=30)
    assert proc.returncode == 0, f"host-local {command} failed: {out.decode()} {err.decode()}"
    return json.loads(out) if out.strip() else {}


def addresses(result: dict[str, Any]) -> list[netaddr.IPNetwork]:
    return [netaddr.IPNetwork(ip["address"]) for ip in result["ips"]]


@pytest.mark.parametrize("target", TARGETS)
async def test_host_local_hands_out_pod_ips_from_the_cidr_lbipam_wrote(
    kubeconfig: Path, api: PCApi, target: str, tmp_path: Path
) -> None:
    await api.create(PODCIDRPOOLS, pcpool("p", (["192.0.2.0/26"], 28), (["2001:db8::/112"], 120)))
    await api.join(target, "a")
    await api.join(target, "b")
    async with controller(kubeconfig, target) as ctl:
        snap = await ctl.settle(api)
    cidrs = {n: snap.cidrs(n) for n in ("a", "b")}
    assert cidrs == {"a": ("192.0.2.0/28", "2001:db8::/120"), "b": ("192.0.2.16/28", "2001:db8::100/120")}

    first = await host_local("ADD", "pod-1", cidrs["a"], tmp_path / "a")
    second = await host_local("ADD", "pod-2", cidrs["a"], tmp_path / "a")
    on_b = await host_local("ADD", "pod-3", cidrs["b"], tmp_path / "b")
    for result, node in ((first, "a"), (second, "a"), (on_b, "b")):
        got = addresses(result)
        assert [ip.version for ip in got] == [4, 6]
        for ip, cidr in zip(got, cidrs[node], strict=True):
            assert ip.ip in netaddr.IPNetwork(cidr)
            assert ip.prefixlen == netaddr.IPNetwork(cidr).prefixlen
    ips = [ip.ip for r in (first, second, on_b) for ip in addresses(r)]
    assert len(set(ips)) == len(ips)  # two pods, two nodes: never one address twice

    reserved = tmp_path / "a" / "lbipam-pods"
    held = {str(ip.ip) for ip in addresses(first)}
    assert held <= {p.name for p in reserved.iterdir()}
    await host_local("DEL", "pod-1", cidrs["a"], tmp_path / "a")
    left = {p.name for p in reserved.iterdir()}
    assert not held & left  # DEL released pod-1's addresses ...
    assert {str(ip.ip) for ip in addresses(second)} <= left  # ... and only those
