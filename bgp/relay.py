"""The API process ExaBGP runs: `python -m bgp.relay SOCKET`.

ExaBGP reads commands from this process's stdout and writes acks and events to its stdin. The relay
connects to the speaker's Unix socket (served by `bgp.exabgp.ExaBGP`) and copies lines both ways:
socket -> stdout (commands), stdin -> socket (acks, events).

ExaBGP writes to our stdin with a blocking write: if we ever stop reading, its single thread stalls,
keepalives included, and every session drops after the hold time. So stdin is drained at all times,
whatever the speaker does: while the speaker is away (not yet connected, gone, or not reading) lines
are held in a bounded buffer and then dropped. Acks held while the speaker was away are dropped on
reconnection (they answer commands of a connection that no longer exists); events are kept. When
lines had to be dropped the speaker is told with one line `{"type": "relay", "dropped": N}` so it
can stop waiting for acks that will never come (it is sent as soon as the speaker has read its
backlog; lines keep being dropped until then).

Standard library only: ExaBGP runs this with the speaker's interpreter, nothing else is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections import deque

#: Bytes of ExaBGP output held while the speaker is away or not reading, then lines are dropped.
BUFFER_LIMIT = 8 * 1024 * 1024
#: Longest line either way: ExaBGP accepts commands up to 1 MiB; `show neighbor json` can be long.
LINE_LIMIT = 16 * 1024 * 1024
RECONNECT_DELAY = 0.2
ACKS = (b"done", b"error", b"shutdown")


def is_ack(line: bytes) -> bool:
    """An answer to a command, text (`done`) or JSON (`{ "answer": "done", ... }`)."""
    text = line.strip()
    return text in ACKS or (text.startswith(b"{") and b'"answer"' in text[:40])


class Relay:
    def __init__(self, path: str) -> None:
        self.path = path
        self.held: deque[bytes] = deque()
        self.held_bytes = 0
        self.dropped = 0
        self.speaker: asyncio.StreamWriter | None = None
        self.notice: asyncio.Future[None] | None = None

    def from_exabgp(self, line: bytes) -> None:
        """One line from ExaBGP: to the speaker if it keeps up, else held, else dropped."""
        speaker = self.speaker
        if speaker is None:
            if self.held_bytes + len(line) <= BUFFER_LIMIT:
                self.held.append(line)
                self.held_bytes += len(line)
            else:
                self.dropped += 1
        elif not self.dropped and speaker.transport.get_write_buffer_size() < BUFFER_LIMIT:
            speaker.write(line)
        else:
            # Dropping until the notice is out: no line may arrive between a gap and its notice.
            self.dropped += 1
            if self.notice is None or self.notice.done():
                self.notice = asyncio.ensure_future(self.tell(speaker))

    async def tell(self, speaker: asyncio.StreamWriter) -> None:
        """Once the speaker has read most of its backlog, tell it how many lines were dropped."""
        with contextlib.suppress(OSError):
            await speaker.drain()
        if self.speaker is speaker and self.dropped:
            speaker.write(json.dumps({"type": "relay", "dropped": self.dropped}).encode() + b"\n")
            self.dropped = 0

    def attach(self, writer: asyncio.StreamWriter) -> None:
        """A new connection to the speaker: hand it the events held meanwhile, not the acks."""
        self.speaker = writer
        held, self.held, self.held_bytes = self.held, deque(), 0
        # Whatever was dropped or held answered an older connection: nothing waits for those acks.
        self.dropped = 0
        for line in held:
            if not is_ack(line):
                self.from_exabgp(line)

    async def drain_stdin(self, stdin: asyncio.StreamReader) -> None:
        """Read ExaBGP's output until it closes our stdin (ExaBGP stopped): then we stop too."""
        while True:
            try:
                line = await stdin.readuntil(b"\n")
            except asyncio.IncompleteReadError:
                return
            except asyncio.LimitOverrunError as err:
                await stdin.readexactly(err.consumed)  # discard an absurd line, keep reading
                self.dropped += 1
                continue
            self.from_exabgp(line)

    async def serve_speaker(self, stdout: asyncio.StreamWriter) -> None:
        """Connect to the speaker (again and again) and copy its commands to ExaBGP."""
        while True:
            try:
                reader, writer = await asyncio.open_unix_connection(self.path, limit=LINE_LIMIT)
            except OSError:
                await asyncio.sleep(RECONNECT_DELAY)  # the speaker is not listening yet: retry
                continue
            self.attach(writer)
            try:
                while line := await reader.readline():
                    stdout.write(line)
                    await stdout.drain()
            except (OSError, ValueError):
                pass
            finally:
                self.speaker = None
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
            await asyncio.sleep(RECONNECT_DELAY)


async def _pipes() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=LINE_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(0, "rb", 0))
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(1, "wb", 0)
    )
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    return reader, writer


async def main(path: str) -> None:
    stdin, stdout = await _pipes()
    relay = Relay(path)
    speaker = asyncio.create_task(relay.serve_speaker(stdout), name="relay-speaker")
    try:
        await relay.drain_stdin(stdin)
    finally:
        speaker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await speaker


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m bgp.relay SOCKET")
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
        asyncio.run(main(sys.argv[1]))
