"""Connection attacks on the embedded API server: half-sent requests, slow bodies, too many
watches, too many connections. Each asserts what the attacker gets, that `/healthz` answered
within a second meanwhile (where the attack leaves room for it) and that lists still parse.

Timeouts are set short here (`Limits`) so that the server closing the attacker's connections is
observed within the test's deadline; the defaults are in lbipam/apiserver/wire/limits.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import AsyncIterator

import pytest

from lbipam.apiserver.server import EmbeddedAPIServer
from lbipam.apiserver.wire.limits import Limits
from tests.apiserver_probe import healthz_meanwhile, lists_parse_and_objects_yield
from tests.helpers import eventually

HALF_OPEN = 3000
CMS = "/api/v1/namespaces/default/configmaps"
PARTIAL_REQUEST = b"GET /api/v1/namespaces HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow"
SHORT = Limits(header_timeout=3.0, handshake_timeout=3.0, body_timeout=2.0)

Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@contextlib.asynccontextmanager
async def started(**kwargs: object) -> AsyncIterator[EmbeddedAPIServer]:
    server = EmbeddedAPIServer(port=0, **kwargs)  # type: ignore[arg-type]
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def connect_many(
    server: EmbeddedAPIServer, count: int, first_bytes: bytes, tls: bool = False
) -> list[Conn]:
    """`count` connections that send `first_bytes` and then nothing, opened 100 at a time."""
    context = server.ssl_context() if tls else None

    async def one() -> Conn:
        reader, writer = await asyncio.open_connection(server.host, server.port, ssl=context)
        writer.write(first_bytes)
        await writer.drain()
        return reader, writer

    conns: list[Conn] = []
    for start in range(0, count, 100):
        conns += await asyncio.gather(*(one() for _ in range(min(100, count - start))))
    return conns


async def closed_by_the_server(conns: list[Conn], within: float) -> None:
    """Every connection reaches end-of-file (the server closed it) within `within` seconds."""

    async def eof(reader: asyncio.StreamReader) -> bytes:
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            return await reader.read()
        return b""

    answers = await asyncio.wait_for(asyncio.gather(*(eof(r) for r, _ in conns)), within)
    assert all(b"200 OK" not in a for a in answers), "no half-sent request was served"


def close_all(conns: list[Conn]) -> None:
    for _, writer in conns:
        writer.close()


@pytest.fixture(autouse=True)
def _room_for_sockets() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4 * HALF_OPEN
    if soft != resource.RLIM_INFINITY and soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            pytest.skip(f"needs {wanted} open files, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


async def test_half_sent_requests_over_plain_http_are_timed_out() -> None:
    async with started(insecure=True, limits=SHORT) as server:
        async with healthz_meanwhile(server):
            conns = await connect_many(server, HALF_OPEN, PARTIAL_REQUEST)
            try:
                await closed_by_the_server(conns, within=60)
            finally:
                close_all(conns)
        await lists_parse_and_objects_yield(server, [CMS])


async def test_half_open_tls_handshakes_and_half_sent_requests_are_timed_out() -> None:
    async with started(limits=SHORT) as server:
        async with healthz_meanwhile(server):
            # Connections that never finish the TLS handshake (a partial ClientHello record)...
            stalled = await connect_many(server, HALF_OPEN - 100, b"\x16\x03\x01\x02")
            # ...and some that do, then send half a request.
            half_sent = await connect_many(server, 100, PARTIAL_REQUEST, tls=True)
            try:
                await closed_by_the_server(stalled + half_sent, within=60)
            finally:
                close_all(stalled + half_sent)
        await lists_parse_and_objects_yield(server, [CMS])


async def test_a_slow_body_gets_408() -> None:
    async with started(limits=SHORT) as server:
        assert server.token is not None
        head = (
            f"POST {CMS} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {server.token}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        )
        async with healthz_meanwhile(server):
            [(reader, writer)] = await connect_many(server, 1, head.encode() + b'{"metadata": ', tls=True)
            try:
                status_line = await asyncio.wait_for(reader.readline(), 30)
            finally:
                writer.close()
        assert status_line.startswith(b"HTTP/1.1 408"), status_line
        await lists_parse_and_objects_yield(server, [CMS])


async def test_watches_are_bounded() -> None:
    async with started(limits=Limits(max_watches=3)) as server, server.session() as http:
        params = {"watch": "true"}
        watches = [await http.get(CMS, params=params) for _ in range(3)]
        try:
            assert [w.status for w in watches] == [200, 200, 200]
            async with healthz_meanwhile(server), http.get(CMS, params=params) as refused:
                assert refused.status == 429
                assert refused.headers["Retry-After"] == "1"
                assert (await refused.json())["reason"] == "TooManyRequests"
            watches.pop().close()

            async def admitted() -> bool:
                async with http.get(CMS, params={**params, "timeoutSeconds": "1"}) as again:
                    return again.status == 200

            await eventually(admitted, timeout=10)
        finally:
            for watch in watches:
                watch.close()
        await lists_parse_and_objects_yield(server, [CMS])


async def test_connections_beyond_the_bound_are_closed_at_once() -> None:
    async with started(limits=Limits(max_connections=20)) as server:
        held = await connect_many(server, 20, b"", tls=True)
        try:
            await eventually(lambda: server.connection_count() == 20, timeout=10)
            [(reader, writer)] = await connect_many(server, 1, PARTIAL_REQUEST + b"\r\n\r\n", tls=True)
            try:
                assert await asyncio.wait_for(reader.read(), 10) == b"", "closed without an answer"
            finally:
                writer.close()
        finally:
            close_all(held)
        await eventually(lambda: server.connection_count() == 0, timeout=10)
        async with server.session() as http, http.get(CMS) as response:
            assert response.status == 200
            json.loads(await response.text())
