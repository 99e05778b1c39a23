"""The HTTP endpoints of an lbipam process: `/metrics` (Prometheus), `/healthz`, `/readyz`.

`serve_observe(args, registry, ready)` runs them on `--metrics-address`:`--metrics-port` until
cancelled (port 0: not at all). The controller's main starts it as a task; the speaker's can too.
The address `::` (the default) is one IPv6 socket that takes IPv4 too, so the kubelet's probes
reach an IPv4-only, IPv6-only or dual-stack pod alike; where IPv6 is off it is 0.0.0.0.
- `/healthz`: 200 while the process lives. The handler runs on the event loop, so an answer
  means the loop is responsive; a blocked loop answers nothing and the kubelet's probe times out.
- `/readyz`: 200 when `ready()` says so, else 503.
- `/metrics`: the registry, in the format the scraper asks for (Prometheus text or OpenMetrics),
  collected on the event loop, where the collectors' sources live.
Access logs are off: probes and scrapes every few seconds would drown the rest.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import socket
from collections.abc import Callable

from aiohttp import web
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from lbipam.k8s.logs import KVLog
from lbipam.usererror import UserError

_log = KVLog("lbipam.observe")
EVERY_ADDRESS = "::"  # both families, as Go's and so Kubernetes' own servers listen on "[::]"
#: What socket() or bind() says where IPv6 is off (ipv6.disable=1, or no address to bind).
_NO_IPV6 = (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL, errno.EPROTONOSUPPORT)


class ObserveError(UserError):
    """The endpoints cannot be served (the port is taken, the address is not ours)."""


def dual_stack_socket(port: int) -> socket.socket:
    """A listening socket on every address of both families: an IPv6 socket with IPV6_V6ONLY off
    (asyncio turns it on for `::`), or an IPv4 one on 0.0.0.0 where IPv6 is off."""
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    except OSError as err:
        if err.errno not in _NO_IPV6:
            raise
        return _listening(socket.socket(socket.AF_INET, socket.SOCK_STREAM), ("0.0.0.0", port))
    try:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        return _listening(sock, ("::", port))
    except OSError as err:
        if err.errno not in _NO_IPV6:
            raise
    return _listening(socket.socket(socket.AF_INET, socket.SOCK_STREAM), ("0.0.0.0", port))


def _listening(sock: socket.socket, address: tuple[str, int]) -> socket.socket:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's servers do
        sock.bind(address)
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class ObserveServer:
    """The endpoints on `host`:`port` (port 0: a free one, see `port` once started)."""

    def __init__(
        self, registry: CollectorRegistry, ready: Callable[[], bool], host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.registry = registry
        self.ready = ready
        self.host = host
        self.port = port
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)

    @property
    def endpoint(self) -> str:
        """HOST:PORT, with an IPv6 host in brackets."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    async def start(self) -> None:
        await self._runner.setup()
        try:
            if self.host == EVERY_ADDRESS:
                sock = dual_stack_socket(self.port)
                self.host = str(sock.getsockname()[0])  # "0.0.0.0" where IPv6 is off
                site: web.BaseSite = web.SockSite(self._runner, sock)
            else:
                site = web.TCPSite(self._runner, self.host, self.port)
            await site.start()
        except OSError as err:
            await self._runner.cleanup()
            raise ObserveError(f"cannot serve metrics on {self.endpoint}: {err.strerror or err}") from err
        self.port = int(self._runner.addresses[0][1])
        _log.info("serving /metrics, /healthz and /readyz", url=self.url)

    async def stop(self) -> None:
        await self._runner.cleanup()

    async def _metrics(self, request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        try:
            body = encoder(self.registry)
        except Exception as err:  # a collector's bug: say so, and keep serving the probes
            _log.exception("collecting metrics failed", error=repr(err))
            return web.Response(status=500, text=f"collecting metrics failed: {err!r}\n")
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        if self.ready():
            return web.Response(text="ok\n")
        return web.Response(status=503, text="not ready\n")


async def serve_observe(
    args: argparse.Namespace, registry: CollectorRegistry, ready: Callable[[], bool]
) -> None:
    """Serve the endpoints as `add_observe_flags`' flags say, until cancelled; return at once
    when --metrics-port is 0. Raises `ObserveError` when the port cannot be had."""
    if not args.metrics_port:
        return
    server = ObserveServer(registry, ready, args.metrics_address, args.metrics_port)
    await server.start()
    try:
        await asyncio.Event().wait()  # until cancelled
    finally:
        await server.stop()
