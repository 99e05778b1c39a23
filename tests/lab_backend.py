"""A node's HTTP backend in the routed lab: answers every request with the node's name.

`python -m tests.lab_backend NAME PORT`, started inside a node's namespace by tests/lab.py; it
listens on every address of that namespace (the Service IPs sit on its dummy interface), so
the client learns from the body which node the router sent it to.
"""

from __future__ import annotations

import asyncio
import sys


async def serve(name: str, port: int) -> None:
    body = name.encode()
    head = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % len(body)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
            writer.write(head + body)
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "0.0.0.0", port, backlog=256)  # the lab node's own namespace
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], int(sys.argv[2])))
