"""The ExaBGP half of the speaker, measured: raw ExaBGP bulk announcement vs the same routes
through `bgp.driver.Driver.apply`, and the full resync after ExaBGP is killed.

Each measurement runs its own BIRD 2 on loopback (tests/bgplab.py) and counts with BIRD's own import
timestamps (`timeformat route "%s.%6f"`): rate = routes / (last import - first command written).
Routes are /32s of 198.18.0.0/15 (RFC 2544, set aside for benchmarks); nothing reaches the kernel.

    raw_bulk(n)         ExaBGP with a minimal API process of its own: bulk lines, 10 in flight
    driver_apply(n)     the same n routes with one Driver.apply (the speaker's path)
    resync_after_kill(n)  SIGKILL ExaBGP holding n routes (graceful restart): time until every route
                        is re-imported by BIRD and End-of-RIB sent, and whether BIRD ever lost one
    refused_raw(s)      ExaBGP alone, announcing one route to an FRR that refuses it (NOTIFICATION
                        3/8, a 127.x next hop), for s seconds: sessions FRR took per minute
    main()              prints routes/s for both and their ratio at 10k and 50k, and the resync

`python bench/speaker_raw.py [--quick]`. The lead's bench/speaker.py imports these functions.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import signal
import statistics
import sys
import tempfile
import textwrap
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bgp import render  # noqa: E402
from bgp.driver import Driver  # noqa: E402
from bgp.exabgp import ExaBGP  # noqa: E402
from bgp.views import PeerView, RouteAttributes, RoutePlan  # noqa: E402
from tests.bgplab import Bird, Neighbor, loopback_pair  # noqa: E402
from tests.frrlab import Frr, FrrNeighbor  # noqa: E402

ATTRS = RouteAttributes("self", ("64512:100",), ("64512:1:1",), local_pref=200, med=50)
BULK = 1000  # prefixes per bulk line, as the driver sends them
WINDOW = 10

# The raw API process: stdlib only, waits for the session, writes bulk lines with WINDOW in flight,
# records when it wrote the first line, then keeps draining ExaBGP's output.
RAW_PROCESS = textwrap.dedent(
    """
    import os, sys, time
    lines, out, window = sys.argv[1], sys.argv[2], int(sys.argv[3])
    commands = open(lines).read().splitlines()
    for line in sys.stdin:
        if '"state": "up"' in line:
            break
    start, sent, acked = time.time(), 0, 0
    while acked < len(commands):
        while sent < len(commands) and sent - acked < window:
            sys.stdout.write(commands[sent] + "\\n")
            sent += 1
        sys.stdout.flush()
        line = sys.stdin.readline()
        if line.strip() in ("done", "error"):
            acked += 1
    open(out, "w").write(f"{start} {time.time()}")
    for line in sys.stdin:
        pass
    """
)


def prefixes(n: int) -> list[str]:
    base = int(ipaddress.IPv4Address("198.18.0.0"))
    if n > 2**17:
        raise ValueError("198.18.0.0/15 holds 131072 /32s")
    return [f"{ipaddress.IPv4Address(base + i)}/32" for i in range(n)]


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 300) -> None:  # noqa: ASYNC109
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.05)


async def last_import(bird: Bird) -> float:
    """The newest import time among BIRD's routes (one `show route` line per route)."""
    output = await bird.birdc("show", "route")
    return max(
        float(part)
        for part in output.split()
        if part.count(".") == 1 and part[:1].isdigit() and len(part) > 12
    )


async def wait_count(bird: Bird, n: int, timeout: float = 300) -> None:  # noqa: ASYNC109
    async def enough() -> bool:
        return await bird.count() >= n

    await until(enough, timeout)


def peer(bird: Bird, speaker: str) -> PeerView:
    return PeerView(
        name="bench", address=bird.address, asn=65000, local_asn=65000, port=bird.port, source=speaker,
        router_id=speaker, hold_time=90, graceful_restart=True, restart_time=120,
    )  # fmt: skip


async def raw_bulk(n: int, bulk: int = BULK, directory: Path | None = None) -> float:
    """Routes/s of ExaBGP alone: bulk lines from a minimal API process, WINDOW in flight."""
    with tempfile.TemporaryDirectory(prefix="raw-", dir=directory) as tmp:
        work = Path(tmp)
        router, speaker = loopback_pair(f"bench-raw-{n}-{time.time()}")
        lines = work / "commands"
        commands = [
            line
            for start in range(0, n, bulk)
            for line in render.announce_bulk(router, ATTRS, prefixes(n)[start : start + bulk], limit=bulk)
        ]
        lines.write_text("\n".join(commands) + "\n")
        (work / "raw.py").write_text(RAW_PROCESS)
        times = work / "times"
        config = render.render_config(
            [peer(Bird(work, router, []), speaker)], python=sys.executable, relay_socket="/unused"
        )
        config = config.replace(
            f"run {sys.executable} -m bgp.relay /unused;",
            f"run {sys.executable} {work / 'raw.py'} {lines} {times} {WINDOW};",
        )
        (work / "exabgp.conf").write_text(config)
        async with Bird(work / "bird", router, [Neighbor(speaker)]) as bird:
            env = ExaBGP(work).environment()
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "exabgp", str(work / "exabgp.conf"), env=env,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            try:
                await wait_count(bird, n)
                start = await _first_write(times)
                return n / (await last_import(bird) - start)
            finally:
                proc.terminate()
                await proc.wait()


async def _first_write(times: Path) -> float:
    """When the raw API process wrote its first command (it records that once all are acked)."""
    started: list[float] = []

    async def written() -> bool:
        started.extend(_read_start(times))
        return bool(started)

    await until(written, 60)
    return started[0]


def _read_start(times: Path) -> list[float]:
    try:
        return [float(times.read_text().split()[0])]
    except (OSError, IndexError, ValueError):
        return []


async def driver_apply(n: int, directory: Path | None = None) -> tuple[float, float]:
    """(routes/s into BIRD, seconds until apply returned) for one Driver.apply of n routes."""
    with tempfile.TemporaryDirectory(prefix="drv-", dir=directory) as tmp:
        work = Path(tmp)
        router, speaker = loopback_pair(f"bench-driver-{n}-{time.time()}")
        bird = Bird(work / "bird", router, [Neighbor(speaker)])
        async with bird, Driver(work / "speaker") as driver:
            view = peer(bird, speaker)
            await driver.apply(RoutePlan(), [view])  # start ExaBGP, open the session
            await until(lambda: _established(driver), 30)
            plan = RoutePlan(routes={"bench": dict.fromkeys(prefixes(n), ATTRS)})
            start = time.time()
            await driver.apply(plan, [view])
            returned = time.time() - start
            await wait_count(bird, n)
            return n / (await last_import(bird) - start), returned


async def _established(driver: Driver) -> bool:
    return driver.sessions().get("bench") is not None and driver.sessions()["bench"].state == "Established"


async def resync_after_kill(n: int, directory: Path | None = None) -> tuple[float, float, int]:
    """SIGKILL ExaBGP holding n routes (graceful restart on). Returns (seconds until the new
    ExaBGP's session is up, seconds until BIRD received all n routes again and End-of-RIB ended
    its graceful restart, routes BIRD was seen without meanwhile)."""
    with tempfile.TemporaryDirectory(prefix="resync-", dir=directory) as tmp:
        work = Path(tmp)
        router, speaker = loopback_pair(f"bench-resync-{n}-{time.time()}")
        bird = Bird(work / "bird", router, [Neighbor(speaker)])
        async with bird, Driver(work / "speaker") as driver:
            view = peer(bird, speaker)
            await driver.apply(RoutePlan(routes={"bench": dict.fromkeys(prefixes(n), ATTRS)}), [view])
            await wait_count(bird, n)
            before, _ = await bird.updates_received()
            old = driver.exabgp.pid
            assert old is not None
            lowest, up = n, 0.0
            killed = time.monotonic()
            os.kill(old, signal.SIGKILL)

            async def refreshed() -> bool:
                nonlocal lowest, up
                lowest = min(lowest, await bird.count())
                if not up and driver.exabgp.pid not in (None, old) and await _established(driver):
                    up = time.monotonic() - killed
                received, restarting = await bird.updates_received()
                return received >= before + n and not restarting

            await until(refreshed, 300)
            return up, time.monotonic() - killed, n - lowest


# The API process of refused_raw: announce one route, then keep reading ExaBGP's output.
ANNOUNCE_ONCE = textwrap.dedent(
    """
    import sys
    sys.stdout.write("announce route 198.18.0.1/32 next-hop self\\n")
    sys.stdout.flush()
    for line in sys.stdin:
        pass
    """
)


async def refused_raw(seconds: float, directory: Path | None = None) -> float:
    """Sessions per minute a refusing FRR takes from ExaBGP alone (its own reconnect timing)."""
    with tempfile.TemporaryDirectory(prefix="refused-", dir=directory) as tmp:
        work = Path(tmp)
        router, speaker = loopback_pair(f"bench-refused-{time.time()}")
        (work / "announce.py").write_text(ANNOUNCE_ONCE)
        view = PeerView(name="bench", address=router, asn=65000, local_asn=65000, port=1179, source=speaker,
                        router_id=speaker, families=("ipv4-unicast",))  # fmt: skip
        config = render.render_config([view], python=sys.executable, relay_socket="/unused")
        config = config.replace(
            f"run {sys.executable} -m bgp.relay /unused;", f"run {sys.executable} {work / 'announce.py'};"
        )
        (work / "exabgp.conf").write_text(config)
        frr = Frr(work / "frr", router, [FrrNeighbor(speaker)], allow_martian=False)
        async with frr:
            env = {**ExaBGP(work).environment(), "exabgp_api_ack": "false"}
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "exabgp", str(work / "exabgp.conf"), env=env,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip

            async def taken() -> int:
                return int((await frr.neighbor(speaker)).get("connectionsEstablished", 0))

            try:
                await until(lambda: _positive(taken), 60)
                first = await taken()
                await asyncio.sleep(seconds)  # the window measured
                return (await taken() - first) * 60 / seconds
            finally:
                proc.terminate()
                await proc.wait()


async def _positive(count: Callable[[], Awaitable[int]]) -> bool:
    return await count() > 0


def _row(label: str, value: str) -> None:
    print(f"  {label:<48} {value}", flush=True)


async def main(quick: bool = False) -> None:
    logging.basicConfig(level=logging.ERROR)
    sizes = (2000,) if quick else (10_000, 50_000)
    runs = 1 if quick else 3
    print(f"ExaBGP -> BIRD, loopback iBGP, bulk {BULK} prefixes a line, {WINDOW} in flight, median of {runs}")
    for n in sizes:
        raw = statistics.median([await raw_bulk(n) for _ in range(runs)])
        results = [await driver_apply(n) for _ in range(runs)]
        drv = statistics.median(rate for rate, _ in results)
        returned = statistics.median(seconds for _, seconds in results)
        _row(f"{n:,} routes: raw ExaBGP bulk", f"{raw:8.0f} routes/s")
        _row(f"{n:,} routes: Driver.apply", f"{drv:8.0f} routes/s (apply returned after {returned:.2f} s)")
        _row(f"{n:,} routes: driver / raw", f"{drv / raw:8.2f}")
    n = 2000 if quick else 10_000
    resyncs = [await resync_after_kill(n) for _ in range(runs)]
    _row(
        f"{n:,} routes: SIGKILL ExaBGP -> session up again",
        f"{statistics.median(r[0] for r in resyncs):8.2f} s",
    )
    done = statistics.median(r[1] for r in resyncs)
    _row(f"{n:,} routes: SIGKILL ExaBGP -> all re-sent + End-of-RIB", f"{done:8.2f} s")
    _row(f"{n:,} routes: routes BIRD lost meanwhile (max)", f"{max(r[2] for r in resyncs):8d}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one run: a smoke test")
    asyncio.run(main(parser.parse_args().quick))
