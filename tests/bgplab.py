"""Real routers for the speaker's tests: a BIRD 2 (or a GoBGP 3) per test on loopback.

Each test gets its own 127.a.b.1 (router, passive) / 127.a.b.2 (ExaBGP) pair, derived from the
test's node id and the pytest-xdist worker, so tests run side by side; the port is checked free
first (BIRD only logs `Address already in use` and runs on). BIRD never exports to the kernel: no
`protocol kernel`, ever. `Bird.routes()` parses `birdc show route all` into `Route`s; `GoBGP` is
the same for GoBGP (gRPC on 127.0.0.1, no pprof); `lab_for()` gives a BIRD plus a `bgp.driver.Driver`
with one peer pointed at it (`Lab`). Used by tests/test_bgp_*.py, the speaker's tests and
bench/speaker_raw.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import shutil
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bgp.driver import Driver
from bgp.views import PeerView, RouteAttributes, RoutePlan
from tests.daemon import eventually_ok, free_port, launch, port_free, run, terminate

PORT = 1179


@dataclass(frozen=True)
class Route:
    """One route as the router holds it."""

    prefix: str
    protocol: str = ""
    next_hop: str = ""
    communities: tuple[str, ...] = ()  # "64512:100"
    large_communities: tuple[str, ...] = ()  # "64512:1:1"
    local_pref: int | None = None
    med: int | None = None
    imported: float = 0.0  # BIRD's import time (epoch seconds)
    stale: bool = False


def loopback_pair(key: str) -> tuple[str, str]:
    """127.a.b.1 (router) and 127.a.b.2 (ExaBGP) for `key` and this xdist worker, free on PORT."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    for attempt in range(64):
        digest = hashlib.sha256(f"{worker}/{key}/{attempt}".encode()).digest()
        a, b = 1 + digest[0] % 254, digest[1]  # never 127.0.x.x: the host's own addresses live there
        router, speaker = f"127.{a}.{b}.1", f"127.{a}.{b}.2"
        if port_free(router, PORT) and port_free(speaker, PORT):
            return router, speaker
    raise RuntimeError(f"no free loopback pair for {key}")


@dataclass
class Neighbor:
    """One BGP session BIRD accepts (BIRD is always passive)."""

    address: str  # ExaBGP's address
    asn: int = 65000  # ExaBGP's AS
    local_asn: int = 65000  # BIRD's AS
    password: str | None = None
    graceful_restart: bool = True
    name: str = "speaker"
    limit: int | None = None  # `receive limit N action restart`: a router that refuses more


@dataclass
class Bird:
    """A BIRD 2 process: `async with Bird(dir, address, [Neighbor(...)]) as bird:`."""

    directory: Path
    address: str
    neighbors: Sequence[Neighbor]
    port: int = PORT
    netns: str | None = None  # run inside this network namespace (tests/netns.py)
    proc: asyncio.subprocess.Process | None = field(default=None, init=False)

    @property
    def control(self) -> str:
        return str(self.directory / "bird.ctl")

    def config(self) -> str:
        router_id = self.address if ":" not in self.address else "192.0.2.254"  # IPv4 only
        lines = [
            f"router id {router_id};",
            'timeformat route "%s.%6f";',
            f'log "{self.directory / "bird.log"}" all;',
            "protocol device { }",
        ]
        for n in self.neighbors:
            lines += [
                f"protocol bgp {n.name} {{",
                f"  local {self.address} port {self.port} as {n.local_asn};",
                f"  neighbor {n.address} port {self.port} as {n.asn};",
                "  strict bind on; passive on; multihop;",
                "  hold time 30; connect retry time 1; error wait time 1, 5;",
                f"  graceful restart {'on' if n.graceful_restart else 'off'};",
            ]
            if n.password is not None:
                lines.append(f'  password "{n.password}";')
            limit = f" receive limit {n.limit} action restart;" if n.limit is not None else ""
            lines += [
                f"  ipv4 {{ import all; export none;{limit} }};",
                "  ipv6 { import all; export none; next hop address ::1; };",
                "}",
            ]
        text = "\n".join(lines) + "\n"
        assert "kernel" not in text  # nothing learnt here may reach the host's routing table
        return text

    async def start(self) -> None:
        self.proc = await launch(
            self.directory, ("bird.conf", self.config()), (self.address, self.port),
            lambda conf: ["bird", "-f", "-c", str(conf), "-s", self.control], self.netns,
        )  # fmt: skip
        await eventually_ok(lambda: self.birdc("show status"), timeout=10)

    async def stop(self) -> None:
        await terminate(self.proc)
        self.proc = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.control)

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def __aenter__(self) -> Bird:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def limit_hits(self) -> int:
        """Sessions BIRD ended over a `receive limit` since it started (from its log)."""
        log = self.directory / "bird.log"
        return log.read_text(errors="replace").count("hits route receive limit") if log.exists() else 0

    async def birdc(self, *command: str) -> str:
        return await run("birdc", "-s", self.control, *command)

    async def state(self, protocol: str = "speaker") -> str:
        """The BGP state of a protocol: Established, Active, Connect, Passive, ..."""
        output = await self.birdc("show", "protocols", "all", protocol)
        found = re.search(r"BGP state:\s+(\S+)", output)
        return found.group(1) if found else ""

    async def updates_received(self, protocol: str = "speaker") -> tuple[int, bool]:
        """(route updates the protocol received since BIRD started, over all channels; whether
        it is waiting for a graceful restart to end, i.e. for the peer's End-of-RIB)."""
        output = await self.birdc("show", "protocols", "all", protocol)
        received = sum(int(n) for n in re.findall(r"Import updates:\s+(\d+)", output))
        return received, "graceful restart active" in output

    async def routes(self, protocol: str | None = None) -> dict[str, Route]:
        """Every route BIRD holds (of one protocol), by prefix."""
        argv = ["show", "route", "all"] + (["protocol", protocol] if protocol else [])
        return parse_routes(await self.birdc(*argv))

    async def count(self) -> int:
        """Routes in BIRD's tables (`show route count`)."""
        output = await self.birdc("show", "route", "count")
        # One line per table and a "Total:" line: count the tables only.
        return sum(int(n) for n in re.findall(r"^(\d+) of \d+ routes", output, re.MULTILINE))


_HEADER = re.compile(
    r"^(?P<prefix>\S+)?\s+\S.*?\[(?P<proto>\S+) (?P<time>[\d.]+)(?: from \S+)?\](?P<rest>.*)$"
)


def parse_routes(output: str) -> dict[str, Route]:
    """`birdc show route all` -> prefix: Route (the first route of each prefix)."""
    routes: dict[str, Route] = {}
    current: dict[str, Any] | None = None
    prefix = ""

    def close() -> None:
        if current is not None and current["prefix"] not in routes:
            routes[current["prefix"]] = Route(**current)

    for line in output.splitlines():
        if line.startswith("\t"):
            if current is not None:
                _attribute(current, line.strip())
            continue
        header = _HEADER.match(line)
        if header is None:
            continue
        close()
        prefix = header.group("prefix") or prefix
        current = {
            "prefix": prefix,
            "protocol": header.group("proto"),
            "imported": float(header.group("time")),
            "stale": "stale" in header.group("rest"),
        }
    close()
    return routes


def _attribute(route: dict[str, Any], line: str) -> None:
    name, _, value = line.partition(": ")
    value = value.strip()
    if name == "BGP.next_hop":
        route["next_hop"] = value.split()[0] if value else ""
    elif name == "BGP.local_pref":
        route["local_pref"] = int(value)
    elif name == "BGP.med":
        route["med"] = int(value)
    elif name == "BGP.community":
        route["communities"] = tuple(f"{a}:{b}" for a, b in re.findall(r"\((\d+),(\d+)\)", value))
    elif name == "BGP.large_community":
        found = re.findall(r"\((\d+), (\d+), (\d+)\)", value)
        route["large_communities"] = tuple(":".join(parts) for parts in found)


@dataclass
class GoBGP:
    """A GoBGP 3 router (passive), gRPC on 127.0.0.1:<free port>, no pprof."""

    directory: Path
    address: str
    neighbor: str  # ExaBGP's address
    asn: int = 65000
    peer_asn: int = 65000
    port: int = PORT
    api_port: int = field(default_factory=free_port)
    proc: asyncio.subprocess.Process | None = field(default=None, init=False)

    def config(self) -> str:
        return f"""
[global.config]
  as = {self.asn}
  router-id = "{self.address}"
  port = {self.port}
  local-address-list = ["{self.address}"]
[[neighbors]]
  [neighbors.config]
    neighbor-address = "{self.neighbor}"
    peer-as = {self.peer_asn}
  [neighbors.transport.config]
    passive-mode = true
    local-address = "{self.address}"
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv6-unicast"
"""

    async def __aenter__(self) -> GoBGP:
        self.proc = await launch(
            self.directory, ("gobgpd.toml", self.config()), (self.address, self.port),
            lambda conf: [
                "gobgpd", "-f", str(conf), "-t", "toml", "--api-hosts", f"127.0.0.1:{self.api_port}",
                "--pprof-disable", "--log-level", "warn",
            ],
        )  # fmt: skip
        await eventually_ok(lambda: self.gobgp("global"), timeout=10)
        return self

    async def __aexit__(self, *_: object) -> None:
        await terminate(self.proc)

    async def gobgp(self, *argv: str) -> str:
        return await run("gobgp", "-u", "127.0.0.1", "-p", str(self.api_port), *argv)

    async def state(self) -> str:
        data = json.loads(await self.gobgp("neighbor", self.neighbor, "-j"))
        return str(data.get("state", {}).get("session_state", ""))

    async def routes(self, family: str = "ipv4") -> dict[str, dict[str, Any]]:
        """prefix -> the path GoBGP holds (its JSON: nexthop, attrs ...)."""
        data = json.loads(await self.gobgp("global", "rib", "-a", family, "-j") or "{}")
        return {prefix: paths[0] for prefix, paths in data.items() if paths}


def have(*tools: str) -> bool:
    return all(shutil.which(tool) for tool in tools)


TAGGED = RouteAttributes("self", ("64512:100", "no-export"), ("64512:1:1",), local_pref=200, med=50)
PLAIN = RouteAttributes("self")


class Lab:
    """One BIRD, one driver with one peer (iBGP, graceful restart) pointed at it."""

    def __init__(self, bird: Bird, driver: Driver, peer: PeerView) -> None:
        self.bird, self.driver, self.peer = bird, driver, peer

    async def apply(self, routes: dict[str, RouteAttributes]) -> None:
        await self.driver.apply(RoutePlan(routes={self.peer.name: routes}), [self.peer])

    async def table(self, expected: set[str], timeout: float = 15) -> dict[str, Route]:  # noqa: ASYNC109
        """Wait until BIRD holds exactly `expected`; return its routes."""

        async def holds() -> dict[str, Route]:
            routes = await self.bird.routes()
            assert set(routes) == expected, (
                f"BIRD holds {sorted(routes)[:8]}..., not {sorted(expected)[:8]}..."
            )
            return routes

        found: dict[str, Route] = await eventually_ok(holds, timeout=timeout)
        return found

    async def established(self) -> None:
        async def up() -> None:
            assert self.driver.sessions()[self.peer.name].state == "Established"

        await eventually_ok(up, timeout=15)


class Listening(Protocol):
    """A router the driver dials: BIRD, GoBGP, FRR (tests/frrlab.py)."""

    address: str
    port: int


def make_peer(router: Listening, speaker: str, **changes: object) -> PeerView:
    fields: dict[str, object] = {
        "name": "tor",
        "address": router.address,
        "asn": 65000,
        "local_asn": 65000,
        "port": router.port,
        "source": speaker,
        "router_id": speaker,
        "hold_time": 30,
        "graceful_restart": True,
        "restart_time": 60,
    }
    fields.update(changes)
    return PeerView(**fields)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def lab_for(
    directory: Path, key: str, *, password: str | None = None, **peer: Any
) -> AsyncIterator[Lab]:
    """A BIRD (BGP password `password`) and a driver with one peer pointed at it."""
    router, speaker = loopback_pair(key)
    bird = Bird(directory / "bird", router, [Neighbor(speaker, password=password)])
    async with bird, Driver(directory / "speaker") as driver:
        yield Lab(bird, driver, make_peer(bird, speaker, **peer))
