"""bgp.relay as ExaBGP runs it (a real `python -m bgp.relay SOCKET` with pipes), with the test in
ExaBGP's place on its stdin/stdout and in the speaker's place on the Unix socket.

The property that matters: ExaBGP can always write to the relay's stdin, whether the speaker is
there, gone, or not reading; what cannot be handed on is held (bounded) and then dropped, and the
speaker is told when lines were dropped."""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bgp.relay import BUFFER_LIMIT

EVENT = json.dumps({"type": "state", "neighbor": {"address": {"peer": "192.0.2.1"}, "state": "up"}})


@pytest.fixture
def socket_path() -> AsyncIterator[Path]:
    with tempfile.TemporaryDirectory(prefix="relay-") as directory:  # short: sun_path is 108 bytes
        yield Path(directory) / "api.sock"


@pytest.fixture
async def relay(socket_path: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bgp.relay", str(socket_path),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    yield proc
    if proc.returncode is None:
        proc.kill()
        await proc.wait()


async def flood(proc: asyncio.subprocess.Process, mebibytes: int) -> None:
    """Write `mebibytes` of acks and events to the relay's stdin, as a busy ExaBGP would."""
    assert proc.stdin is not None
    chunk = ("done\n" + EVENT + "\n") * 1000
    for _ in range(mebibytes * 1024 * 1024 // len(chunk) + 1):
        proc.stdin.write(chunk.encode())
        await proc.stdin.drain()


async def test_stdin_is_drained_while_no_speaker_listens(
    relay: asyncio.subprocess.Process, socket_path: Path
) -> None:
    await asyncio.wait_for(flood(relay, 4 * BUFFER_LIMIT // 2**20), timeout=60)
    relay_lines: list[bytes] = []
    connected, done = asyncio.Event(), asyncio.Event()

    async def speaker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connected.set()
        while line := await reader.readline():
            relay_lines.append(line)
            if len(relay_lines) * len(EVENT) >= BUFFER_LIMIT // 2:
                done.set()
                break
        writer.close()

    server = await asyncio.start_unix_server(speaker, path=str(socket_path))
    async with server:
        await asyncio.wait_for(connected.wait(), 10)
        await asyncio.wait_for(done.wait(), 30)
    # Held events are handed on; acks held for a connection that no longer exists are not.
    assert all(line.rstrip(b"\n") == EVENT.encode() for line in relay_lines)


async def test_commands_and_answers_are_copied_in_order(
    relay: asyncio.subprocess.Process, socket_path: Path
) -> None:
    accepted: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accepted.put((reader, writer))

    async with await asyncio.start_unix_server(on_connect, path=str(socket_path)):
        reader, writer = await asyncio.wait_for(accepted.get(), 10)
        writer.write(b"announce route 192.0.2.1/32 next-hop self\nshow neighbor json\n")
        await writer.drain()
        assert relay.stdout is not None
        assert relay.stdin is not None
        first = await asyncio.wait_for(relay.stdout.readline(), 5)
        second = await asyncio.wait_for(relay.stdout.readline(), 5)
        assert (first, second) == (b"announce route 192.0.2.1/32 next-hop self\n", b"show neighbor json\n")
        relay.stdin.write(f"done\n{EVENT}\n[]\ndone\n".encode())
        await relay.stdin.drain()
        lines = [await asyncio.wait_for(reader.readline(), 5) for _ in range(4)]
        assert lines == [b"done\n", EVENT.encode() + b"\n", b"[]\n", b"done\n"]
        writer.close()


async def test_a_speaker_that_stops_reading_is_told_what_was_dropped(
    relay: asyncio.subprocess.Process, socket_path: Path
) -> None:
    accepted: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accepted.put((reader, writer))

    async with await asyncio.start_unix_server(on_connect, path=str(socket_path)):
        reader, writer = await asyncio.wait_for(accepted.get(), 10)
        # Not reading the socket: the relay must keep draining its stdin all the same.
        await asyncio.wait_for(flood(relay, 3 * BUFFER_LIMIT // 2**20), timeout=60)
        notice = None
        while notice is None:
            line = await asyncio.wait_for(reader.readline(), 10)
            if b'"relay"' in line:
                notice = json.loads(line)
        assert notice["dropped"] > 0
        writer.close()


async def test_the_relay_exits_when_exabgp_closes_its_stdin(relay: asyncio.subprocess.Process) -> None:
    assert relay.stdin is not None
    relay.stdin.close()
    assert await asyncio.wait_for(relay.wait(), 10) == 0
