"""A slow client in a process of its own: many connections that send a little and then nothing.

    python tests/half_open_client.py HOST PORT COUNT FIRST_BYTES_HEX [CA_FILE] [DEADLINE]

Opens COUNT connections, some 500 a second (TLS with CA_FILE when given, else plain TCP), writes
FIRST_BYTES on each, prints `open COUNT`, then waits up to DEADLINE seconds (default 60) for the
server to close every one and prints `closed N served M` (M: connections that got an HTTP 200
back) before exiting.
Run by test_apiserver_connections.py so that the attacker's own work does not run on the event
loop of the server it attacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import ssl
import sys


async def main(host: str, port: int, count: int, first: bytes, ca_file: str, deadline: float) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < count + 256:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(count + 256, hard), hard))
    context = ssl.create_default_context(cafile=ca_file) if ca_file else None

    async def one() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(host, port, ssl=context)
        writer.write(first)
        await writer.drain()
        return reader, writer

    conns = []
    for start in range(0, count, 25):  # about 500 a second: connections held, not a flood
        conns += await asyncio.gather(*(one() for _ in range(min(25, count - start))))
        await asyncio.sleep(0.05)
    print(f"open {len(conns)}", flush=True)

    async def answer(reader: asyncio.StreamReader) -> bytes:
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            return await reader.read()
        return b""

    tasks = [asyncio.ensure_future(answer(r)) for r, _ in conns]
    done, _ = await asyncio.wait(tasks, timeout=deadline)
    served = sum(1 for t in done if b" 200 " in t.result().split(b"\r\n", 1)[0])
    print(f"closed {len(done)} served {served}", flush=True)
    for _, writer in conns:
        writer.close()


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(
        main(
            args[0],
            int(args[1]),
            int(args[2]),
            bytes.fromhex(args[3]),
            args[4] if len(args) > 4 else "",
            float(args[5]) if len(args) > 5 else 60.0,
        )
    )
