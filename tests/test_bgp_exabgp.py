"""bgp.exabgp's supervision against a real ExaBGP and BIRD: the relay dies (ExaBGP respawns it,
nothing is lost), ExaBGP exits 0 after five relay deaths (restarted like any exit), and a wedged
ExaBGP (SIGSTOP) is killed and restarted once an answer is overdue. With graceful restart the
router never loses a route through any of it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bgp.driver import Driver
from bgp.exabgp import ExaBGP
from tests.bgplab import PLAIN, TAGGED, Bird, Lab, Neighbor, Route, have, loopback_pair, make_peer
from tests.helpers import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not have("bird", "birdc"), reason="needs BIRD 2")]

ROUTES = {f"198.51.100.{i}/32": TAGGED for i in range(40)}


def relay_pid(exabgp_pid: int) -> int | None:
    """The pid of the relay ExaBGP runs (its child `python -m bgp.relay`)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == exabgp_pid and b"bgp.relay" in cmdline:
            return int(entry)
    return None


@pytest.fixture
async def lab(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Lab]:
    router, speaker = loopback_pair(request.node.nodeid)
    async with Bird(tmp_path / "bird", router, [Neighbor(speaker)]) as bird:
        exabgp = ExaBGP(tmp_path / "speaker", ack_timeout=3)
        async with Driver(tmp_path / "speaker", exabgp=exabgp) as driver:
            lab = Lab(bird, driver, make_peer(bird, speaker))
            await lab.apply(ROUTES)
            await lab.table(set(ROUTES))
            await lab.established()
            yield lab


async def never_lost(lab: Lab, wanted: set[str], done: object, timeout: float = 30) -> list[str]:  # noqa: ASYNC109
    """Poll BIRD until `done()` holds; return every wanted prefix ever seen missing meanwhile."""
    missing: list[str] = []

    async def check() -> bool:
        routes = await lab.bird.routes()
        missing.extend(sorted(wanted - set(routes)))
        return bool(done()) and wanted <= set(routes)  # type: ignore[operator]

    await eventually(check, timeout=timeout, interval=0.01)
    return missing


async def test_relay_death_loses_nothing(lab: Lab) -> None:
    exabgp = lab.driver.exabgp
    before: dict[str, Route] = await lab.bird.routes()
    connections, pid = exabgp.connections, exabgp.pid
    assert pid is not None
    relay = relay_pid(pid)
    assert relay is not None
    os.kill(relay, signal.SIGKILL)

    assert await never_lost(lab, set(ROUTES), lambda: exabgp.connections > connections and exabgp.ready) == []
    assert exabgp.pid == pid  # ExaBGP itself lived on
    after = await lab.bird.routes()
    assert all(abs(after[p].imported - before[p].imported) < 0.001 for p in ROUTES)  # never re-learnt

    await lab.apply({**ROUTES, "192.0.2.1/32": PLAIN})  # and the new channel works
    await lab.table({*ROUTES, "192.0.2.1/32"})


async def test_exabgp_exiting_0_after_relay_deaths_is_restarted(lab: Lab) -> None:
    exabgp = lab.driver.exabgp
    first = exabgp.pid
    assert first is not None
    # ExaBGP gives up (exit 0) on the sixth death of its API process within a 64 s window aligned
    # to the clock: twelve deaths within a minute fill one window past that, wherever they start.
    for _ in range(12):
        if exabgp.pid != first:
            break
        relay = await eventually(lambda: exabgp.ready and relay_pid(first), timeout=15)
        os.kill(relay, signal.SIGKILL)
        await eventually(lambda r=relay: exabgp.pid != first or relay_pid(first) not in (None, r), timeout=15)
    assert exabgp.restarts >= 1

    lost = await never_lost(lab, set(ROUTES), lambda: exabgp.pid not in (None, first) and exabgp.ready)
    assert lost == []
    await lab.established()
    await lab.table(set(ROUTES))


async def test_a_wedged_exabgp_is_killed_and_restarted(lab: Lab) -> None:
    exabgp = lab.driver.exabgp
    wedged = exabgp.pid
    assert wedged is not None
    os.kill(wedged, signal.SIGSTOP)
    try:
        await lab.apply({**ROUTES, "192.0.2.1/32": PLAIN})  # its answer never comes: after 3 s, SIGKILL
    finally:
        with contextlib.suppress(ProcessLookupError):  # killed and reaped, as it should be
            os.kill(wedged, signal.SIGCONT)
    lost = await never_lost(lab, set(ROUTES), lambda: exabgp.pid not in (None, wedged) and exabgp.ready)
    assert lost == []
    await lab.table({*ROUTES, "192.0.2.1/32"})
    await lab.established()


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper does not count)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


async def test_exabgp_does_not_outlive_a_killed_speaker(tmp_path: Path) -> None:
    """SIGKILL the speaker's process: its ExaBGP (a child, in its own session) dies with it
    instead of announcing on, unmanaged."""
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from pathlib import Path
        from bgp import render
        from bgp.exabgp import ExaBGP

        async def main():
            exabgp = ExaBGP(Path({str(tmp_path / "speaker")!r}))
            config = render.render_config([], python=sys.executable, relay_socket=str(exabgp.socket_path))
            await exabgp.start(config)
            await exabgp.wait_ready(30)
            print(exabgp.pid, flush=True)
            await asyncio.Event().wait()

        asyncio.run(main())
        """
    )
    speaker = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE
    )
    assert speaker.stdout is not None
    exabgp = int(await asyncio.wait_for(speaker.stdout.readline(), 30))
    assert alive(exabgp)
    speaker.kill()
    await speaker.wait()
    await eventually(lambda: not alive(exabgp), timeout=10)


async def test_only_exabgps_own_relay_may_drive_it(lab: Lab) -> None:
    """Anyone else who finds the socket is hung up on; the real channel carries on."""
    exabgp = lab.driver.exabgp
    connections = exabgp.connections
    reader, writer = await asyncio.open_unix_connection(str(exabgp.socket_path))
    writer.write(b"neighbor 127.0.0.1 announce route 192.0.2.66/32 next-hop self\n")
    try:
        answer = await asyncio.wait_for(reader.read(), 10)
    except ConnectionResetError:  # hung up with our line unread
        answer = b""
    assert answer == b""
    writer.close()
    assert exabgp.ready
    assert exabgp.connections == connections
    await lab.apply({**ROUTES, "192.0.2.1/32": PLAIN})
    await lab.table({*ROUTES, "192.0.2.1/32"})
