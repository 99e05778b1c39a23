"""FRR 8 as a test router, beside BIRD and GoBGP (tests/bgplab.py): `bgpd` alone, per test.

bgpd runs without zebra (`-Z`) and installs nothing (`-n`): nothing it learns can reach a kernel
routing table. Its configuration, pid file, log and vty socket live in the test's directory;
`vtysh --vty_socket` reads it. It listens only on the address given (`-l`, port `PORT`), never
dials (every neighbor is `passive`), and may run inside a network namespace the test created
(`netns`). Graceful restart: FRR's default, helper mode (it keeps a restarting peer's routes).

By default it accepts next hops in 127.0.0.0/8 (`bgp allow-martian-nexthop`), as loopback tests
have them; `allow_martian=False` makes it the router that refuses them: it answers such an
UPDATE with a NOTIFICATION (3/8, Invalid NEXT_HOP Attribute) and drops the session.
Used by the speaker's tests and bench/speaker.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.bgplab import PORT, Route
from tests.daemon import eventually_ok, launch, run, terminate

BGPD = "/usr/lib/frr/bgpd"


def have_frr() -> bool:
    return os.access(BGPD, os.X_OK) and bool(_which("vtysh"))


def _which(tool: str) -> str | None:
    import shutil

    return shutil.which(tool)


@dataclass
class FrrNeighbor:
    """One BGP session FRR accepts (passively) from `address`."""

    address: str  # the speaker's address
    asn: int = 65000  # the speaker's AS
    password: str | None = None
    multihop: int | None = None  # eBGP TTL: FRR then also reaches peers that are not connected


@dataclass
class Frr:
    """`async with Frr(dir, address, [FrrNeighbor(...)]) as frr:`."""

    directory: Path
    address: str
    neighbors: Sequence[FrrNeighbor]
    asn: int = 65000
    port: int = PORT
    allow_martian: bool = True
    netns: str | None = None
    proc: asyncio.subprocess.Process | None = field(default=None, init=False)

    def config(self) -> str:
        lines = [
            "frr defaults traditional",
            "hostname lab",
            f"log file {self.directory / 'bgpd.log'}",
            "!",
            f"router bgp {self.asn}",
            f" bgp router-id {self._router_id()}",
            " no bgp ebgp-requires-policy",
            " no bgp default ipv4-unicast",
            " no bgp network import-check",
        ]
        if self.allow_martian:
            lines.append(" bgp allow-martian-nexthop")
        for n in self.neighbors:
            lines += [f" neighbor {n.address} remote-as {n.asn}", f" neighbor {n.address} passive"]
            if n.password is not None:
                lines.append(f" neighbor {n.address} password {n.password}")
            if n.multihop is not None:
                lines.append(f" neighbor {n.address} ebgp-multihop {n.multihop}")
            elif n.asn != self.asn:
                lines.append(f" neighbor {n.address} disable-connected-check")  # no zebra: no "connected"
        for family in ("ipv4", "ipv6"):
            lines.append(f" address-family {family} unicast")
            lines += [f"  neighbor {n.address} activate" for n in self.neighbors]
            lines.append(" exit-address-family")
        return "\n".join([*lines, "!", ""])

    def _router_id(self) -> str:
        return self.address if ":" not in self.address else "192.0.2.254"

    async def start(self) -> None:
        self.proc = await launch(
            self.directory, ("bgpd.conf", self.config()), (self.address, self.port),
            lambda conf: [
                BGPD, "-f", str(conf), "-i", str(self.directory / "bgpd.pid"),
                "--vty_socket", str(self.directory), "-Z", "-n", "-S", "-P", "0",
                "-p", str(self.port), "-l", self.address,
            ],
            self.netns,
        )  # fmt: skip
        await eventually_ok(lambda: self.vtysh("show bgp summary"), timeout=15)

    async def stop(self) -> None:
        await terminate(self.proc)
        self.proc = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.directory / "bgpd.vty")

    async def __aenter__(self) -> Frr:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def vtysh(self, command: str) -> str:
        return await run("vtysh", "--vty_socket", str(self.directory), "-c", command)

    async def json(self, command: str) -> Any:
        return json.loads(await self.vtysh(f"{command} json") or "{}")

    async def neighbor(self, address: str) -> dict[str, Any]:
        """`show bgp neighbors ADDRESS json`: bgpState, connectionsEstablished, messageStats..."""
        found: dict[str, Any] = (await self.json(f"show bgp neighbors {address}")).get(address) or {}
        return found

    async def state(self, address: str) -> str:
        return str((await self.neighbor(address)).get("bgpState", ""))

    async def routes(self, family: str = "ipv4") -> dict[str, Route]:
        """Every route FRR holds of `family` (ipv4, ipv6), by prefix: the first path of each."""
        data = json.loads(await self.vtysh(f"show bgp {family} unicast json detail") or "{}")
        found = {}
        for prefix, entries in (data.get("routes") or {}).items():
            paths = [e for e in entries if "peer" in e]  # the first entry is a header
            if paths:
                found[prefix] = _route(prefix, paths[0])
        return found


def _route(prefix: str, path: dict[str, Any]) -> Route:
    hops = [h.get("ip", "") for h in path.get("nexthops") or [] if h.get("scope") != "link-local"]
    return Route(
        prefix=prefix,
        protocol=str((path.get("peer") or {}).get("peerId", "")),
        next_hop=hops[0] if hops else "",
        communities=tuple(str((path.get("community") or {}).get("string", "")).split()),
        large_communities=tuple(str((path.get("largeCommunity") or {}).get("string", "")).split()),
        local_pref=path.get("locPrf"),
        med=path.get("metric"),
        stale=bool(path.get("stale")),
    )
