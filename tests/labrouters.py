"""The routed lab's router: BIRD 2 or FRR 8 in the router namespace, with ECMP and BFD.

Both accept one eBGP session per node (passive: the speakers dial), merge equal routes into
one multipath route (BIRD `merge paths`, FRR `maximum-paths`) and install it in the router
namespace's own kernel table, which is what forwards the lab's traffic (never the host's: the
router runs inside a namespace the test made). With `bfd` they run BFD with every node (BIRD
`bfd on`, FRR `neighbor ... bfd`), so a BFD Down drops the node's routes at once. The configs
are the ones README.md shows. Used by tests/lab.py.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tests.daemon import eventually_ok, run, terminate
from tests.netns import in_ns

ROUTER_ASN = 65000
NODE_ASN = 65001


@dataclass
class LabRouter:
    """What tests/lab.py needs of a router; `procs` are ours to stop, by pid."""

    ns: str
    directory: Path
    address: str  # the router's address on the nodes' segment
    neighbors: dict[str, str]  # protocol/neighbor name -> node address
    bfd: bool = True
    hold_time: int = 90
    procs: list[asyncio.subprocess.Process] = field(default_factory=list)

    async def _spawn(self, *argv: str, log: str) -> asyncio.subprocess.Process:
        with (self.directory / log).open("wb") as out:
            proc = await asyncio.create_subprocess_exec(*in_ns(self.ns, *argv), stdout=out, stderr=out)
        self.procs.append(proc)
        return proc

    async def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.returncode is None:
                with _Suppress():
                    proc.send_signal(signal.SIGCONT)  # a test may have stopped it
                await terminate(proc)
        self.procs.clear()


class _Suppress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, *_: object) -> bool:
        return kind is ProcessLookupError


def bird_config(address: str, neighbors: dict[str, str], *, bfd: bool, hold_time: int) -> str:
    """BIRD 2: eBGP with every node, ECMP into the (namespace's) kernel table, BFD."""
    lines = [
        f"router id {address};",
        "protocol device { scan time 1; }",
        "protocol kernel {",
        "  ipv4 { import none; export all; };",
        "  merge paths on limit 16;   # ECMP: one multipath route over every node announcing it",
        "}",
    ]
    if bfd:
        lines += [
            "protocol bfd {",
            '  interface "*" { min rx interval 300 ms; min tx interval 300 ms; multiplier 3; };',
            "}",
        ]
    lines += [
        "template bgp nodes {",
        f"  local {address} as {ROUTER_ASN};",
        "  passive on;",
        f"  hold time {hold_time};",
        "  graceful restart on;",
        "  error wait time 1, 5;      # after a failure, take the node back soon (default 60-300 s)",
        f"  bfd {'on' if bfd else 'off'};",
        "  ipv4 { import all; export none; };",
        "}",
    ]
    lines += [
        f"protocol bgp {name} from nodes {{ neighbor {node} as {NODE_ASN}; }}"
        for name, node in neighbors.items()
    ]
    return "\n".join(lines) + "\n"


class BirdRouter(LabRouter):
    kind = "bird"

    @property
    def control(self) -> str:
        return str(self.directory / "bird.ctl")

    async def start(self) -> None:
        conf = self.directory / "bird.conf"
        conf.write_text(bird_config(self.address, self.neighbors, bfd=self.bfd, hold_time=self.hold_time))
        await self._spawn("bird", "-f", "-c", str(conf), "-s", self.control, log="bird.log")
        await eventually_ok(lambda: run("birdc", "-s", self.control, "show", "status"), timeout=10)

    async def birdc(self, *command: str) -> str:
        return await run("birdc", "-s", self.control, *command)

    async def established(self, name: str) -> bool:
        output = await self.birdc("show", "protocols", "all", name)
        return "BGP state:          Established" in output

    async def recovering(self, name: str) -> bool:
        """Whether BIRD still holds `name`'s routes from before a restart, waiting for the new
        session's End-of-RIB (graceful restart recovery)."""
        return "graceful restart active" in await self.birdc("show", "protocols", "all", name)

    async def last_error(self, name: str) -> str:
        found = re.search(r"Last error:\s+(.*)", await self.birdc("show", "protocols", "all", name))
        return found.group(1).strip() if found else ""

    async def bfd_up(self, node: str) -> bool:
        output = await self.birdc("show", "bfd", "sessions")
        return any(line.split()[:1] == [node] and " Up " in line for line in output.splitlines())

    async def next_hops(self, prefix: str) -> set[str]:
        """The next hops the router's kernel table forwards `prefix` to (ECMP: several)."""
        return await kernel_next_hops(self.ns, prefix)

    def daemon(self) -> asyncio.subprocess.Process:
        return self.procs[0]

    def bfd_daemon(self) -> asyncio.subprocess.Process:
        return self.procs[0]  # BIRD runs BFD in its own process


def frr_configs(address: str, neighbors: dict[str, str], *, bfd: bool, hold_time: int) -> dict[str, str]:
    """FRR 8: bgpd (eBGP, ECMP by maximum-paths, BFD per neighbor), bfdd, zebra."""
    keepalive = max(1, hold_time // 3)
    bgpd = [
        "hostname lab-router",
        f"router bgp {ROUTER_ASN}",
        f" bgp router-id {address}",
        " no bgp ebgp-requires-policy",
        " no bgp network import-check",
        f" timers bgp {keepalive} {hold_time}",
        " neighbor NODES peer-group",
        f" neighbor NODES remote-as {NODE_ASN}",
        " neighbor NODES passive",
        " neighbor NODES timers connect 1",
    ]
    if bfd:
        bgpd.append(" neighbor NODES bfd profile fast")
    bgpd += [f" neighbor {node} peer-group NODES" for node in neighbors.values()]
    bgpd += [" address-family ipv4 unicast", "  maximum-paths 16", " exit-address-family", ""]
    bfdd = ["bfd", " profile fast", "  receive-interval 300", "  transmit-interval 300",
            "  detect-multiplier 3", " !", "!", ""]  # fmt: skip
    return {"bgpd": "\n".join(bgpd), "bfdd": "\n".join(bfdd), "zebra": "hostname lab-router\n"}


class FrrRouter(LabRouter):
    """zebra (installs the multipath routes into the router namespace), bgpd, bfdd."""

    kind = "frr"

    async def start(self) -> None:
        # FRR drops to the frr user, which cannot enter pytest's private tmp_path: its sockets,
        # pid files and configs live in a directory of their own (logs are copied back on stop).
        self.logs, self.directory = self.directory, Path(tempfile.mkdtemp(prefix="lbipam-frr-"))
        shutil.chown(self.directory, "frr", "frr")
        d = str(self.directory)
        common = [
            "--vty_socket",
            d,
            "-z",
            f"{d}/zserv.api",
            "-u",
            "frr",
            "-g",
            "frr",
            "-A",
            "127.0.0.1",
            "-P",
            "0",
        ]
        configs = frr_configs(self.address, self.neighbors, bfd=self.bfd, hold_time=self.hold_time)
        for daemon in ("zebra", "bfdd", "bgpd"):
            conf = self.directory / f"{daemon}.conf"
            conf.write_text(configs[daemon])
            os.chmod(conf, 0o644)
            extra = ["--bfdctl", f"{d}/bfdd.sock"] if daemon == "bfdd" else []
            await self._spawn(f"/usr/lib/frr/{daemon}", "-f", str(conf), "-i", f"{d}/{daemon}.pid", *common,
                              *extra, log=f"{daemon}.log")  # fmt: skip
            if daemon == "zebra":
                await eventually_ok(lambda: self.vtysh("zebra", "show version"), timeout=10)
        await eventually_ok(lambda: self.vtysh("bgpd", "show bgp summary"), timeout=10)

    async def stop(self) -> None:
        await super().stop()
        if hasattr(self, "logs"):
            for log in self.directory.glob("*.log"):
                shutil.copy(log, self.logs / log.name)
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = self.logs

    async def vtysh(self, daemon: str, command: str) -> str:
        return await run("vtysh", "--vty_socket", str(self.directory), "-d", daemon, "-c", command)

    async def established(self, name: str) -> bool:
        output = await self.vtysh("bgpd", f"show bgp neighbors {self.neighbors[name]}")
        return "BGP state = Established" in output

    async def last_error(self, name: str) -> str:
        output = await self.vtysh("bgpd", f"show bgp neighbors {self.neighbors[name]}")
        found = re.search(r"Last reset .*?, (.*)", output)
        return found.group(1).strip() if found else ""

    async def bfd_up(self, node: str) -> bool:
        output = await self.vtysh("bfdd", "show bfd peers brief")
        return any(node in line.split() and "up" in line.split() for line in output.splitlines())

    async def next_hops(self, prefix: str) -> set[str]:
        return await kernel_next_hops(self.ns, prefix)

    def bfd_daemon(self) -> asyncio.subprocess.Process:
        return self.procs[1]


async def kernel_next_hops(ns: str, prefix: str) -> set[str]:
    """Next hops of `prefix` in the namespace's main table (`ip route`), {} when absent."""
    output = await run("ip", "-n", ns, "route", "show", "exact", prefix)
    return set(re.findall(r"via (\S+)", output))
