"""Network namespaces and veth links, made and removed by the tests that use them (root only).

- `async with namespace_pair("frr6") as pair:` creates `lbipam-<pid>-<tag>-r` (the router's side)
  and `-s` (the speaker's side), each with loopback up and one veth end holding a documentation
  address of each family: the router 192.0.2.1 / 2001:db8:53::1, the speaker 192.0.2.2 /
  2001:db8:53::2 (no duplicate address detection, so they are usable at once).
- `Namespaces` (the routed lab, BFD): namespaces and veths named with the pid and a counter,
  removed on exit; `socket_in(ns)` makes a socket inside a namespace from this process (setns on
  this thread for the one call), which `ApiBridge` uses to let processes in the namespaces reach
  the test's embedded API server at the same 127.0.0.1 address and port.
Nothing is added to the host's own namespace; everything made is deleted in `finally`, whatever
happened. Names carry this process's pid, so parallel runs never collide. Needs root and
iproute2 (`available()` / `can_run()` say whether this machine can). Used by tests/bgplab.py,
tests/test_bgp_frr.py, tests/test_speaker_nexthop.py, tests/lab.py, tests/test_bfd_interop.py
and bench/failover.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import itertools
import os
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field

from tests.daemon import run

ROUTER_V4, SPEAKER_V4 = "192.0.2.1", "192.0.2.2"
ROUTER_V6, SPEAKER_V6 = "2001:db8:53::1", "2001:db8:53::2"


def available() -> bool:
    return os.geteuid() == 0 and shutil.which("ip") is not None


@dataclass(frozen=True)
class Pair:
    router: str  # namespace names
    speaker: str

    def exec(self, namespace: str) -> list[str]:
        """The argv prefix that runs a program inside `namespace`."""
        return ["ip", "netns", "exec", namespace]


async def _ip(*argv: str) -> str:
    return await run("ip", *argv)


@contextlib.asynccontextmanager
async def namespace_pair(tag: str) -> AsyncIterator[Pair]:
    base = f"lbipam-{os.getpid()}-{tag}"[:24]  # names of veth ends must fit IFNAMSIZ (15)
    pair = Pair(f"{base}-r", f"{base}-s")
    made: list[str] = []
    try:
        for namespace in (pair.router, pair.speaker):
            await _ip("netns", "add", namespace)
            made.append(namespace)
            await _ip("-n", namespace, "link", "set", "lo", "up")
        short = f"v{os.getpid() % 100000}{tag[:3]}"
        await _ip(
            "link",
            "add",
            f"{short}r",
            "netns",
            pair.router,
            "type",
            "veth",
            "peer",
            f"{short}s",
            "netns",
            pair.speaker,
        )
        for namespace, end, v4, v6 in (
            (pair.router, f"{short}r", ROUTER_V4, ROUTER_V6),
            (pair.speaker, f"{short}s", SPEAKER_V4, SPEAKER_V6),
        ):
            await _ip("-n", namespace, "addr", "add", f"{v4}/24", "dev", end)
            await _ip("-n", namespace, "addr", "add", f"{v6}/64", "dev", end, "nodad")
            await _ip("-n", namespace, "link", "set", end, "up")
        yield pair
    finally:
        for namespace in reversed(made):
            with contextlib.suppress(RuntimeError, TimeoutError):
                await asyncio.shield(_ip("netns", "del", namespace))


CLONE_NEWNET = 0x40000000
_LIBC = ctypes.CDLL(None, use_errno=True)
_COUNTER = itertools.count()


def can_run() -> bool:
    """Root, `ip`, and a kernel that lets us make a namespace."""
    return os.geteuid() == 0 and shutil.which("ip") is not None and os.path.isdir("/proc/self/ns")


def ip(*argv: str, ns: str | None = None, check: bool = True) -> str:
    """`ip ARGS` (in namespace `ns`); the output."""
    prefix = ["ip", "-n", ns] if ns else ["ip"]
    done = subprocess.run([*prefix, *argv], capture_output=True, text=True, timeout=30, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join([*prefix, *argv])}: {done.stderr.strip()}")
    return done.stdout


def in_ns(ns: str, *argv: str) -> list[str]:
    """The command line that runs `argv` inside `ns`."""
    return ["ip", "netns", "exec", ns, *argv]


def sysctl(ns: str, name: str, value: str) -> None:
    subprocess.run(in_ns(ns, "sysctl", "-qw", f"{name}={value}"), check=True, timeout=30)


@contextlib.contextmanager
def entered(ns: str) -> Iterator[None]:
    """This thread inside `ns` for the block (sockets made meanwhile stay in it)."""
    with open("/proc/thread-self/ns/net") as home, open(f"/run/netns/{ns}") as target:
        if _LIBC.setns(target.fileno(), CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {ns}")
        try:
            yield
        finally:
            if _LIBC.setns(home.fileno(), CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back home")


def socket_in(ns: str, family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM) -> socket.socket:
    with entered(ns):
        return socket.socket(family, kind)


@dataclass
class Namespaces:
    """`with Namespaces() as lab:` namespaces and veths named uniquely, removed at the end."""

    prefix: str = field(default_factory=lambda: f"lb{os.getpid()}x{next(_COUNTER)}")
    made: list[str] = field(default_factory=list)

    def add(self, role: str) -> str:
        name = f"{self.prefix}{role}"
        ip("netns", "add", name)
        self.made.append(name)
        ip("link", "set", "lo", "up", ns=name)
        return name

    def veth(self, a: str, b: str, tag: str) -> tuple[str, str]:
        """A veth pair between namespaces `a` and `b`; the two interface names (<= 15 chars)."""
        short = f"v{os.getpid() % 100000}{tag}"[:13]
        left, right = f"{short}a", f"{short}b"
        ip("link", "add", left, "netns", a, "type", "veth", "peer", "name", right, "netns", b)
        ip("link", "set", left, "up", ns=a)
        ip("link", "set", right, "up", ns=b)
        return left, right

    def __enter__(self) -> Namespaces:
        return self

    def __exit__(self, *_: object) -> None:
        self.remove()

    def remove(self) -> None:
        for name in reversed(self.made):
            ip("netns", "pids", name, check=False)  # (processes are the tests' to stop first)
            ip("netns", "del", name, check=False)
        self.made.clear()


def addr(ns: str, device: str, *cidrs: str) -> None:
    for cidr in cidrs:
        ip("addr", "add", cidr, "dev", device, ns=ns)


class ApiBridge:
    """Forwards 127.0.0.1:`port` inside each namespace to 127.0.0.1:`port` here, byte for byte
    (TLS passes through untouched), so one kubeconfig serves the host and every namespace."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.servers: list[asyncio.Server] = []

    async def open(self, namespaces: Sequence[str]) -> None:
        for ns in namespaces:
            sock = socket_in(ns)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", self.port))
            sock.listen(64)
            sock.setblocking(False)
            self.servers.append(await asyncio.start_server(self._relay, sock=sock))

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer), return_exceptions=True)

    async def close(self) -> None:
        for server in self.servers:
            server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2.0)
        self.servers.clear()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()
