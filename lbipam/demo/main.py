"""`lbipam demo`: the embedded API server, the controller and one speaker per example node, in one
process, loaded with the CRDs and the example objects the package carries (`lbipam/examples/`).

Order: the API server (a temporary database, or `--db FILE`, which resumes an earlier demo), the
CRDs, the examples (created where missing; the example BGPPeers dial documentation addresses, so
the demo replaces them with its own peers: a local BIRD with `--with-bird`, the router of
`--peer`, or else a peer on 127.0.0.1 where nothing listens, so routes are planned but no session
comes up), then the controller and the speakers. It prints the Services with their IPs, pools and
announcing nodes, and the routes per node, then the kubeconfig path, and a line for every Service
that changes, until SIGINT/SIGTERM; then the speakers withdraw their routes, the demo says what
was withdrawn from which router, and everything stops. Every component logs to `demo.log` in the
working directory (`--keep` keeps it); stderr gets `--log-level` and above.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from bgp.main import default_exabgp, make_driver
from bgp.speaker import Speaker, SpeakerOptions
from bgp.views import SessionSummary
from lbipam.apiserver.server import EmbeddedAPIServer
from lbipam.controllers.app import ControllerApp, LeaderOptions, PodCIDRSettings
from lbipam.controllers.lbipam.controller import LBOptions
from lbipam.controllers.podcidr.controller import PodCIDROptions
from lbipam.demo.bird import ASN, Bird, free_port
from lbipam.demo.load import (
    create_if_missing,
    documents,
    established,
    load_crds,
    replace_demo_peers,
)
from lbipam.demo.preflight import EXAMPLES, example_files, parse_peer
from lbipam.demo.table import ips, pools, routes_table, service_key, services_table, withdrawn
from lbipam.k8s.client import Kube, connect
from lbipam.k8s.informer import Informer
from lbipam.k8s.logs import TEXT_FORMAT
from lbipam.k8s.resources import SERVICES
from lbipam.k8s.tasks import Tasks, run_until_signal
from lbipam.usererror import UserError, one_line

Obj = dict[str, Any]
DEADLINE = 60.0  # seconds for the examples to get their IPs and routes before the tables print
LOG_FILE = "demo.log"
CONDITION = "lbipam.io/IPAMRequestSatisfied"


class Demo:
    def __init__(self, args: argparse.Namespace, out: TextIO = sys.stdout) -> None:
        self.args = args
        self.out = out
        self.workdir = Path(tempfile.mkdtemp(prefix="lbipam-demo-"))
        self.db = args.db or str(self.workdir / "demo.db")
        self.server = EmbeddedAPIServer(db=self.db, port=args.port)
        self.bird: Bird | None = None
        self.speakers: dict[str, Speaker] = {}
        self.kube: Kube | None = None
        self.examples: Path = args.examples or EXAMPLES
        self.sessions_seen: dict[str, dict[str, SessionSummary]] = {}  # the last look, for the goodbye

    def say(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    # ---- set-up -------------------------------------------------------------------------
    async def start(self, tasks: Tasks) -> None:
        await self._start_server()
        kubeconfig = self._write_kubeconfig()
        self.kube = kube = await connect(str(kubeconfig))
        names = await load_crds(kube)
        await _until(lambda: established(kube, names), DEADLINE, "the CRDs to be Established")
        docs = documents(example_files(self.examples))
        nodes = {d["metadata"]["name"]: _internal_ip(d) for d in docs if d["kind"] == "Node"}
        created = [await create_if_missing(kube, d) for d in docs if d["kind"] != "BGPPeer"]
        if not all(created):
            self.say(
                f"resuming {self.db}: {created.count(False)} example objects were there already "
                "and are kept as they are"
            )
        await replace_demo_peers(kube, await self._peers(nodes))
        app = ControllerApp(
            kube,
            LBOptions(reuse_delay=self.args.reuse_delay),
            LeaderOptions(enabled=False),
            PodCIDRSettings("node", 8, 8, PodCIDROptions(reuse_delay=self.args.reuse_delay)),
        )
        tasks.start("controller", app.run())
        exabgp: str | None = self.args.exabgp or default_exabgp()
        if exabgp is None:
            self.say("exabgp not found: running without speakers (pip install exabgp)")
        for node in sorted(nodes) if exabgp is not None else []:
            self.speakers[node] = speaker = self._speaker(kube, node, str(exabgp))
            tasks.start(f"speaker-{node}", speaker.run())
        tasks.start("sessions", self._watch_sessions())
        tasks.start("report", self.report(kubeconfig))

    async def _start_server(self) -> None:
        try:
            await self.server.start()
        except sqlite3.Error as err:
            raise UserError(f"--db {self.db}: {err}") from None
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise UserError(f"--port {self.args.port}: address already in use") from None
            raise UserError(f"cannot start the API server: {one_line(str(err))}") from None

    def _write_kubeconfig(self) -> Path:
        path = self.args.kubeconfig_out or self.workdir / "kubeconfig"
        try:
            return self.server.write_kubeconfig(path)
        except OSError as err:
            raise UserError(f"--kubeconfig-out {path}: {err.strerror or err}") from None

    async def _peers(self, nodes: dict[str, str]) -> list[Obj]:
        """The demo's BGPPeers. On loopback each node's speaker dials from its own 127.x address
        (one peer per node with `sourceAddress`), so the router tells the sessions apart; a real
        router (`--peer`) is reached from this machine's one address, so only the first node peers."""
        if self.args.peer:
            address, port = parse_peer(self.args.peer)
            first = min(nodes)
            return [_peer_doc("demo-peer", address, port, self.args.peer_asn, self.args.local_asn, first)]
        if self.args.with_bird:
            self.bird = Bird(self.workdir, free_port())
            await self.bird.start(nodes)
            port, asn = self.bird.port, ASN
        else:
            port, asn = free_port(first=1279), ASN  # nothing listens: routes planned, sessions Active
        return [
            _peer_doc(f"demo-{node}", "127.0.0.1", port, asn, asn, node, source)
            for node, source in sorted(nodes.items())
        ]

    def _speaker(self, kube: Kube, node: str, exabgp: str) -> Speaker:
        runtime = self.workdir / f"speaker-{node}"
        runtime.mkdir(exist_ok=True)
        speaker_args = argparse.Namespace(exabgp=exabgp, runtime_dir=runtime, node=node)
        return Speaker(kube, make_driver(speaker_args, runtime), SpeakerOptions(node=node))

    async def _watch_sessions(self) -> None:
        """Keep the last look at every session, for what Ctrl-C withdraws: once the signal has
        come, the speakers are already withdrawing."""
        while True:
            self.sessions_seen = self._sessions()
            await asyncio.sleep(0.2)

    # ---- reporting ----------------------------------------------------------------------
    async def report(self, kubeconfig: Path) -> None:
        assert self.kube is not None
        services = Informer(self.kube, SERVICES)
        shown: dict[str, tuple[list[str], str]] = {}
        async with asyncio.TaskGroup() as group:
            group.create_task(services.run())
            await services.synced.wait()
            await _until(lambda: self._settled(services), DEADLINE, "every example Service to get an IP")
            if self.bird is not None:
                await _until(self._established, DEADLINE, "the sessions with BIRD to come up")
            self.say(services_table(services.list(), self._plans()))
            self.say()
            self.say(routes_table(self._plans(), self._states()))
            if self.bird is None and not self.args.peer:
                self.say("(no router: the routes are planned, the sessions stay down; try --with-bird)")
            if self.bird is not None:
                await _until(self._bird_has_routes, 10.0, "BIRD to receive the routes")
                self.say("\nBIRD (127.0.0.1) received:\n" + await self.bird.routes())
            self.say(f"\nkubeconfig: {kubeconfig}")
            self.say(f"try:  kubectl --kubeconfig {kubeconfig} get services -A")
            self.say("Ctrl-C withdraws the routes and stops.")
            shown = {service_key(s): (ips(s), pools(s)) for s in services.list()}
            services.add_handler(lambda _e, new, _o: self._changed(new, shown))

    def _changed(self, svc: Obj, shown: dict[str, tuple[list[str], str]]) -> None:
        key, now = service_key(svc), (ips(svc), pools(svc))
        # The IP is written first and the pool annotation a moment later: print once both are in.
        if (svc.get("spec") or {}).get("type") == "LoadBalancer" and shown.get(key) != now and all(now):
            shown[key] = now
            self.say(f"{key}: {', '.join(now[0])} (pool {now[1] or '-'})")

    def _settled(self, services: Informer) -> bool:
        """Every Service has its IPs or the reason it has none (a resumed demo may hold a Service
        no pool can serve), and every speaker has planned with the IPs."""
        lbs = [s for s in services.list() if (s.get("spec") or {}).get("type") == "LoadBalancer"]
        if not lbs or any(not ips(s) and not _refused(s) for s in lbs):
            return False
        for speaker in self.speakers.values():
            planned = {d.prefix.split("/")[0] for d in speaker.plan.decisions} if speaker.plan else set()
            if not all(ip in planned for s in lbs for ip in ips(s)):
                return False
        return True

    def _plans(self) -> dict[str, Any]:
        return {node: speaker.plan for node, speaker in self.speakers.items()}

    def _sessions(self) -> dict[str, dict[str, SessionSummary]]:
        return {node: dict(speaker.driver.sessions()) for node, speaker in self.speakers.items()}

    def _states(self) -> dict[str, dict[str, str]]:
        return {node: {p: s.state for p, s in peers.items()} for node, peers in self._sessions().items()}

    def _established(self) -> bool:
        return all(state == "Established" for peers in self._states().values() for state in peers.values())

    async def _bird_has_routes(self) -> bool:
        """Every route some node announces is in BIRD's table."""
        shown = await self.bird.routes() if self.bird is not None else ""
        wanted = {p for plan in self._plans().values() if plan for r in plan.routes.values() for p in r}
        return all(prefix in shown for prefix in wanted)

    # ---- shutdown -----------------------------------------------------------------------
    async def close(self) -> None:
        if self.kube is not None:
            await self.kube.close()
        if self.bird is not None:
            await self.bird.stop()
        await self.server.stop()
        _close_log_file()  # demo.log is complete before it is kept or removed
        if self.args.keep:
            kept = ", ".join(sorted(p.name + ("/" if p.is_dir() else "") for p in self.workdir.iterdir()))
            self.say(f"kept {self.workdir}: {kept}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _refused(svc: Obj) -> bool:
    """The controller said why the Service has no IP (condition False)."""
    conditions = (svc.get("status") or {}).get("conditions") or []
    return any(c.get("type") == CONDITION and c.get("status") == "False" for c in conditions)


def _internal_ip(node: Obj) -> str:
    for address in (node.get("status") or {}).get("addresses") or []:
        if address.get("type") == "InternalIP":
            return str(address["address"])
    raise UserError(f"example Node {node['metadata']['name']} has no InternalIP in status.addresses")


def _peer_doc(
    name: str, address: str, port: int, asn: int, local_asn: int, node: str, source: str | None = None
) -> Obj:
    spec: Obj = {
        "peerAddress": address,
        "peerPort": port,
        "peerASN": asn,
        "localASN": local_asn,
        # Off, so that Ctrl-C withdraws at once: with graceful restart a stopping speaker may
        # leave its routes to the router's restart timer, as a rollout in a cluster should.
        "gracefulRestart": {"enabled": False},
        "nodeSelector": {"matchLabels": {"kubernetes.io/hostname": node}},
    }
    if source:
        spec["sourceAddress"] = source
    return {"apiVersion": "lbipam.io/v1alpha1", "kind": "BGPPeer", "metadata": {"name": name}, "spec": spec}


def _first(error: BaseException) -> BaseException:
    """The first leaf of nested exception groups (a task group inside the task runner's)."""
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


async def _until(check: Callable[[], Any], deadline: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if loop.time() > end:
            raise TimeoutError(f"lbipam demo: gave up waiting {deadline:.0f} s for {what}")
        await asyncio.sleep(0.05)


async def serve(args: argparse.Namespace) -> None:
    demo = Demo(args)
    _log_to(demo.workdir / LOG_FILE, args.log_level)
    try:
        await run_until_signal(demo.start, drain_timeout=20.0)
        demo.say(withdrawn(demo.sessions_seen))
    finally:
        with contextlib.suppress(Exception):
            await demo.close()


def _close_log_file() -> None:
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
        root.removeHandler(handler)
        handler.close()


def _log_to(path: Path, level: str) -> None:
    """Every component's log (and ExaBGP's output) to `path`; `level` and above to stderr too."""
    to_file = logging.FileHandler(path)
    to_file.setLevel(min(logging.INFO, logging.getLevelName(level.upper())))
    to_stderr = logging.StreamHandler()
    to_stderr.setLevel(level.upper())
    for handler in (to_file, to_stderr):
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=to_file.level, handlers=[to_file, to_stderr], force=True)
    logging.getLogger("lbipam.exabgp").setLevel(logging.DEBUG)  # ExaBGP's own lines are debug


def run(args: argparse.Namespace) -> int:
    """After `lbipam.demo.preflight.check(args)` (the flags module runs it first)."""
    try:
        asyncio.run(serve(args))
    except* TimeoutError as group:
        sys.stderr.write(f"{_first(group)}\n")
        raise SystemExit(1) from None
    return 0
