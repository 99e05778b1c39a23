"""The `lbipam demo` flags. Light on purpose: `lbipam --help` builds this parser, and the demo's
own imports (server, controller, speaker) load only when it runs."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = sub.add_parser(
        "demo",
        help="run everything on the embedded API server with the examples, and show the IPs and routes",
        description="Start the embedded API server, load the CRDs and the example objects the package "
        "carries (pools, advertisements, two Nodes and some Services), run the controller and one "
        "speaker per example node, print the Services with their IPs, pools and announcing nodes "
        "and the routes each node announces, then keep running (apply more Services with kubectl "
        "and the kubeconfig it prints). Ctrl-C withdraws the routes, says what it withdrew from "
        "which router, and stops. Mistakes (a port in use, bird not installed, a bad --peer) are "
        "one line on stderr and exit code 2.",
    )
    cmd.add_argument(
        "--db",
        help="SQLite file to keep the demo's objects in; an existing one resumes that demo, with "
        "the objects as it left them (default: a temporary one)",
    )
    cmd.add_argument("--port", type=int, default=0, help="API server port (default: a free one)")
    cmd.add_argument(
        "--kubeconfig-out", type=Path, help="write the kubeconfig here (default: a temporary file)"
    )
    cmd.add_argument(
        "--with-bird",
        action="store_true",
        help="start a local BIRD 2 on 127.0.0.1 and peer with it (bird from PATH, /usr/sbin or "
        "/usr/local/sbin)",
    )
    cmd.add_argument("--peer", help="peer with a real router at ADDRESS[:PORT] ([ADDRESS]:PORT for IPv6)")
    cmd.add_argument("--peer-asn", type=int, default=64512, help="the router's AS number (default 64512)")
    cmd.add_argument("--local-asn", type=int, default=64513, help="the speakers' AS number (default 64513)")
    cmd.add_argument("--reuse-delay", type=float, default=5.0, help="seconds a released IP is held back (5)")
    cmd.add_argument("--exabgp", help="the exabgp program (default: next to the interpreter, or on PATH)")
    cmd.add_argument(
        "--examples",
        type=Path,
        help="the folder of example objects (*.yaml) to load (default: the ones the package carries, "
        "lbipam/examples/)",
    )
    cmd.add_argument(
        "--keep",
        action="store_true",
        help="keep the working directory and say where it is: demo.log (every component's log and "
        "ExaBGP's output), the database, the kubeconfig, ExaBGP's and BIRD's configuration and "
        "BIRD's log (default: removed at exit)",
    )
    cmd.add_argument(
        "--log-level",
        default="warning",
        help="level of the log lines on stderr (default warning: the tables stay readable); "
        "demo.log gets info and above",
    )
    cmd.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from lbipam.demo.preflight import check  # noqa: PLC0415

    check(args)  # before the heavy imports: a mistake is told at once
    from lbipam.demo.main import run  # noqa: PLC0415

    return run(args)
