"""A pair of network namespaces joined by a veth link, made and removed by the test that uses it.

`async with namespace_pair("frr6") as pair:` creates `lbipam-<pid>-<tag>-r` (the router's side)
and `-s` (the speaker's side), each with loopback up and one veth end holding a documentation
address of each family: the router 192.0.2.1 / 2001:db8:53::1, the speaker 192.0.2.2 /
2001:db8:53::2 (no duplicate address detection, so they are usable at once). Nothing is added to
the host's own namespace; the namespaces (and with them the veth pair) are deleted in `finally`,
whatever happened. Names carry this process's pid, so parallel runs never collide. Needs root
and iproute2 (`available()` says whether this machine can).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass

from tests.bgplab import run

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
