"""A local BIRD 2 for `lbipam demo --with-bird`: a router on 127.0.0.1 that accepts one iBGP
session from each demo node's speaker (dialling from the node's 127.x InternalIP), keeps what it
learns to itself (no `protocol kernel`: nothing reaches the host's routing table) and shows it.
Called by `lbipam.demo.main`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from lbipam.usererror import UserError

ASN = 64512
#: Where Debian and a source build put BIRD, often outside a plain user's PATH.
SBIN = ("/usr/sbin", "/usr/local/sbin")


def find_program(name: str) -> str:
    """`name` on PATH, else in /usr/sbin or /usr/local/sbin; a UserError saying where it looked."""
    found = shutil.which(name) or shutil.which(name, path=os.pathsep.join(SBIN))
    if found is None:
        raise UserError(
            f"--with-bird: `{name}` is neither on PATH nor in {' or '.join(SBIN)} "
            "(install BIRD 2: Debian's package bird2)"
        )
    return found


def _free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1", first: int = 1179) -> int:
    """BIRD only logs a port it cannot bind: find a free one first."""
    for port in range(first, first + 200):
        if _free(host, port):
            return port
    raise RuntimeError(f"no free TCP port on {host} in {first}..{first + 199}")


def config(port: int, nodes: Mapping[str, str], log: Path | None = None) -> str:
    """BIRD's configuration: one passive iBGP protocol per node (name -> its address)."""
    lines = [f'log "{log}" all;'] if log is not None else []
    lines += [
        "router id 127.0.0.1;",
        "protocol device { }",
        "# No `protocol kernel`: nothing learnt here reaches the host's routing table.",
    ]
    for index, (node, address) in enumerate(sorted(nodes.items())):
        lines += [
            f"protocol bgp node{index} {{  # {node}",
            f"  local 127.0.0.1 port {port} as {ASN};",
            f"  neighbor {address} port {port} as {ASN};",
            "  strict bind on; passive on; multihop;",
            "  graceful restart on;",
            "  ipv4 { import all; export none; };",
            "  ipv6 { import all; export none; next hop address ::1; };",
            "}",
        ]
    return "\n".join(lines) + "\n"


@dataclass
class Bird:
    directory: Path
    port: int
    process: asyncio.subprocess.Process | None = None

    @property
    def socket_path(self) -> Path:
        return self.directory / "bird.ctl"

    @property
    def log_path(self) -> Path:
        return self.directory / "bird.log"

    async def start(self, nodes: Mapping[str, str]) -> None:
        bird = find_program("bird")
        conf = self.directory / "bird.conf"
        conf.write_text(config(self.port, nodes, self.log_path))
        self.process = await asyncio.create_subprocess_exec(
            bird, "-f", "-c", str(conf), "-s", str(self.socket_path),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip

    async def routes(self) -> str:
        """`birdc show route` as BIRD prints it."""
        birdc = find_program("birdc")
        proc = await asyncio.create_subprocess_exec(
            birdc, "-s", str(self.socket_path), "show", "route",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await proc.communicate()
        lines = out.decode(errors="replace").splitlines()
        return "\n".join(line for line in lines if not line.startswith("BIRD ") and line.strip())

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            await self.process.wait()
