"""Connection limits of the embedded server: slow, idle and too many clients cannot starve it.

    Limits(...)                       # the bounds, with the defaults below
    listen(runner, host, port, ssl_context, limits) -> asyncio.Server
    LIMITS                            # the app key `read_body` and the watch handler read them from

- A connection that does not finish its TLS handshake within `handshake_timeout` is closed
  (asyncio's default is a minute).
- A connection that sends no complete request headers within `header_timeout`, or stays idle
  that long between requests, is closed: aiohttp's keep-alive timer runs from the moment a
  connection is made and again after every response, and closes the connection if no whole
  request arrived by then (3,000 half-sent requests hold sockets, never the event loop).
- A request body must arrive within `body_timeout` (408 otherwise; see `handlers.read_body`).
- At most `max_connections` connections are served at once; one more is closed as soon as it is
  accepted. The process's open-file limit is raised to fit, where the hard limit allows.
- At most `max_watches` watches are open at once; one more is a 429 with Retry-After.

Called by `server.py`; the HTTP layer reads `LIMITS` from the application.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import ssl
from dataclasses import dataclass

from aiohttp import web

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    header_timeout: float = 60.0  # seconds to send request headers; also the idle keep-alive time
    handshake_timeout: float = 10.0  # seconds to finish the TLS handshake
    body_timeout: float = 60.0  # seconds to send a request body
    max_connections: int = 4096
    max_watches: int = 4096


LIMITS = web.AppKey("limits", Limits)


class _Refused(asyncio.Protocol):
    """A connection beyond the bound: closed at once."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


async def listen(
    runner: web.AppRunner, host: str, port: int, ssl_context: ssl.SSLContext | None, limits: Limits
) -> asyncio.Server:
    """Serve `runner`'s application on host:port within `limits` (the runner must be set up)."""
    web_server = runner.server
    assert web_server is not None, "runner.setup() first"
    _fit_open_files(limits.max_connections)

    def protocol() -> asyncio.BaseProtocol:
        if len(web_server.connections) >= limits.max_connections:
            return _Refused()
        return web_server()

    loop = asyncio.get_running_loop()
    if ssl_context is None:
        return await loop.create_server(protocol, host, port)
    return await loop.create_server(
        protocol, host, port, ssl=ssl_context, ssl_handshake_timeout=limits.handshake_timeout
    )


def _fit_open_files(connections: int) -> None:
    """Raise the soft open-file limit so that the connection bound, not EMFILE, is what bites."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + 1024  # the database, watches' queues need none, but logs, clients...
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < wanted:
        log.warning("open files limited to %d: fewer than %d connections can be served", target, connections)
