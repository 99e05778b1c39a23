"""`EmbeddedAPIServer`: the embedded Kubernetes-compatible API server, as one object to start and stop.

Wires the store, the registry, the kind strategies, the write pipeline, reads, watches, fault
injection and the aiohttp application; seeds the namespaces a cluster starts with; restores Service
allocations and CRD-defined kinds from the database. Used by `main.py` (`lbipam apiserver`) and,
in process, by the tests' fixtures:

    server = EmbeddedAPIServer(db=":memory:", port=0)
    await server.start()            # server.url == "https://127.0.0.1:PORT"
    server.write_kubeconfig(path)   # the CA and the bearer token, mode 0600
    async with server.session() as http: ...   # raw HTTP, as the kubeconfig connects
    await server.stop()

Secure by default: HTTPS with a generated certificate and a bearer token. `insecure=True` serves
plain HTTP without authentication, and only on a loopback address (`InsecureNotLoopback`).
`/debug/lbipam/faults` is served only with `enable_fault_injection=True`; in process,
`server.faults` is always there.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import secrets
import ssl
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from lbipam.apiserver.errors import StatusError
from lbipam.apiserver.kinds.builtins import (
    ConfigMapStrategy,
    EndpointSliceStrategy,
    LeaseStrategy,
    NamespaceStrategy,
    NodeStrategy,
    SecretStrategy,
)
from lbipam.apiserver.kinds.crd import CRDStrategy
from lbipam.apiserver.kinds.events import EventStrategy
from lbipam.apiserver.kinds.objects import Objects
from lbipam.apiserver.kinds.services import ServiceStrategy
from lbipam.apiserver.kinds.strategy import Strategy, WriteOptions
from lbipam.apiserver.storage.registry import Registry
from lbipam.apiserver.storage.store import Store
from lbipam.apiserver.storage.watch import WatchHub
from lbipam.apiserver.wire import kubeconfig, tls
from lbipam.apiserver.wire.audit import Recorder
from lbipam.apiserver.wire.faults import Faults
from lbipam.apiserver.wire.handlers import ResourceHandlers
from lbipam.apiserver.wire.http import make_app
from lbipam.apiserver.wire.limits import LIMITS, Limits, listen
from lbipam.apiserver.wire.reads import Reads

log = logging.getLogger(__name__)

DEFAULT_SERVICE_CIDR = "10.96.0.0/16,fd00:10:96::/112"
INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


class InsecureNotLoopback(ValueError):
    """`insecure` asked for on an address other machines can reach."""

    def __init__(self, host: str) -> None:
        super().__init__(
            f"--insecure serves without TLS or authentication: only on a loopback address, not {host}"
        )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything


class EmbeddedAPIServer:
    def __init__(
        self,
        db: str = ":memory:",
        host: str = "127.0.0.1",
        port: int = 0,
        service_cidr: str = DEFAULT_SERVICE_CIDR,
        history: int = 10000,
        insecure: bool = False,
        bookmark_interval: float = 5.0,
        watch_queue: int = 1000,
        recorder: Recorder | None = None,
        enable_fault_injection: bool = False,
        limits: Limits | None = None,
    ) -> None:
        """`insecure`: plain HTTP, no token (loopback only); `enable_fault_injection`: serve
        /debug/lbipam/faults; `recorder`: record every request in RBAC terms (`audit.py`), for
        tests. All off by default. `limits`: timeouts and bounds of connections and watches."""
        if insecure and not is_loopback(host):
            raise InsecureNotLoopback(host)
        self.host, self.port, self.tls = host, port, not insecure
        self.enable_fault_injection = enable_fault_injection
        self.limits = limits or Limits()
        self.bookmark_interval = bookmark_interval
        self.recorder = recorder
        self.token: str | None = None if insecure else secrets.token_urlsafe(32)
        self.ca_pem: bytes | None = None
        self.url = ""
        self.registry = Registry()
        self.store = Store(db, history)
        self.hub = WatchHub()
        self.store.listeners.append(self.hub.dispatch)
        self.store.failure_listeners.append(lambda: self.services.reset(self.store.items("/services")))
        self.faults = Faults(self.hub, self.store)
        cidrs = [c.strip() for c in service_cidr.split(",") if c.strip()]
        self.services = ServiceStrategy(cidrs)
        self.crds = CRDStrategy(self.registry, self.hub, self.store)
        strategies: dict[str, Strategy] = {
            "/namespaces": NamespaceStrategy(),
            "/nodes": NodeStrategy(),
            "/services": self.services,
            "/secrets": SecretStrategy(),
            "/configmaps": ConfigMapStrategy(),
            "/events": EventStrategy(),
            "discovery.k8s.io/endpointslices": EndpointSliceStrategy(),
            "coordination.k8s.io/leases": LeaseStrategy(),
            "apiextensions.k8s.io/customresourcedefinitions": self.crds,
        }
        self.crds.strategies = strategies
        self.objects = Objects(self.store, self.registry, strategies)
        self.reads = Reads(self.objects, watch_queue)
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None

    async def start(self) -> None:
        """Open the database, restore state, and serve; returns once the port accepts requests."""
        try:
            await self._start()
        except BaseException:
            await self.stop()  # e.g. the port is taken: release the database and its thread
            raise

    async def _start(self) -> None:
        self.store.open()
        self.services.rebuild(self.store.items("/services"))
        self.crds.restore(self.store.items(self.crds.key))
        for name in INITIAL_NAMESPACES:
            if self.store.latest("/namespaces", "", name) is None:
                ns_type = self.registry.get("", "v1", "namespaces")
                assert ns_type is not None
                await self.objects.create(
                    ns_type, "", {"metadata": {"name": name}}, WriteOptions(manager="kube-apiserver")
                )
        handlers = ResourceHandlers(self.objects, self.reads, self.hub, self.faults, self.bookmark_interval)
        faults = self.faults if self.enable_fault_injection else None
        app = make_app(self.registry, handlers, faults, self.token, self.recorder, self._not_ready)
        app[LIMITS] = self.limits
        self._runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log=None,
            shutdown_timeout=5.0,
            keepalive_timeout=self.limits.header_timeout,
        )
        await self._runner.setup()
        ssl_context = None
        if self.tls:
            self._tempdir = tempfile.TemporaryDirectory(prefix="lbipam-apiserver-")
            ssl_context, self.ca_pem = tls.server_context(Path(self._tempdir.name), self.host)
        self._listener = await listen(self._runner, self.host, self.port, ssl_context, self.limits)
        self.port = int(self._listener.sockets[0].getsockname()[1])
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"{'https' if self.tls else 'http'}://{host}:{self.port}"
        log.info("apiserver serving url=%s db=%s", self.url, self.store.path)

    async def stop(self) -> None:
        """Close every watch, stop serving, finish pending writes and close the database."""
        self.hub.close_all()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.objects.close()
        await self.store.close()
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    def connection_count(self) -> int:
        """Connections being served now (past their TLS handshake)."""
        web_server = self._runner.server if self._runner is not None else None
        return len(web_server.connections) if web_server is not None else 0

    async def _not_ready(self) -> str | None:
        """Why /readyz fails: the store cannot commit a write (asked again while it could not)."""
        if self.store.write_error is None:
            return None
        error = await self.store.probe()
        return None if error is None else f"store: cannot write: {error}"

    def session(self, **kwargs: Any) -> aiohttp.ClientSession:
        """A raw aiohttp session on this server, as its kubeconfig would connect: base URL, the CA
        when serving TLS, the bearer token when one is required. For tests and benches that speak
        plain HTTP to the server; `headers` and `connector` arguments are merged in."""
        if not self.url:
            raise StatusError(503, "the server is not started")
        headers = dict(kwargs.pop("headers", None) or {})
        if self.token:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        if "connector" not in kwargs and self.ca_pem is not None:
            context = ssl.create_default_context(cadata=self.ca_pem.decode())
            kwargs["connector"] = aiohttp.TCPConnector(ssl=context)
        return aiohttp.ClientSession(self.url, headers=headers, **kwargs)

    def ssl_context(self) -> ssl.SSLContext | None:
        """A client SSL context trusting this server's CA (None when it serves plain HTTP)."""
        return None if self.ca_pem is None else ssl.create_default_context(cadata=self.ca_pem.decode())

    def write_kubeconfig(self, path: str | Path) -> Path:
        """A kubeconfig for this server (TLS: the CA certificate and the bearer token)."""
        if not self.url:
            raise StatusError(503, "the server is not started")
        return kubeconfig.write(Path(path), self.url, self.ca_pem, self.token)
