"""The HTTP endpoints of an lbipam process: `/metrics` (Prometheus), `/healthz`, `/readyz`.

`serve_observe(args, registry, ready)` runs them on `--metrics-address`:`--metrics-port` until
cancelled (port 0: not at all). The controller's main starts it as a task; the speaker's can too.
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
from collections.abc import Callable

from aiohttp import web
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from lbipam.k8s.logs import KVLog

_log = KVLog("lbipam.observe")


class ObserveError(Exception):
    """The endpoints cannot be served (the port is taken, the address is not ours)."""


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
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as err:
            await self._runner.cleanup()
            raise ObserveError(
                f"cannot serve metrics on {self.host}:{self.port}: {err.strerror or err}"
            ) from err
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
