"""`lbipam apiserver`: run the embedded API server until SIGTERM or SIGINT.

Prints exactly one line, `apiserver ready <url>`, on stdout once the server accepts requests (and
the kubeconfig, if asked for, is written); logs go to stderr. Called by `lbipam/cli.py`, which owns the flags.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sqlite3
import sys

from lbipam.apiserver.server import EmbeddedAPIServer, InsecureNotLoopback


async def serve(args: argparse.Namespace) -> int:
    server = EmbeddedAPIServer(
        db=args.db,
        host=args.host,
        port=args.port,
        service_cidr=args.service_cidr,
        history=args.history,
        insecure=args.insecure,
        bookmark_interval=args.bookmark_interval,
        enable_fault_injection=args.enable_fault_injection,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    try:
        if args.kubeconfig_out is not None:
            server.write_kubeconfig(args.kubeconfig_out)
        elif server.token is not None:
            sys.stderr.write(
                "lbipam apiserver: no --kubeconfig-out: the bearer token is written nowhere, "
                "so no client can connect\n"
            )
        sys.stdout.write(f"apiserver ready {server.url}\n")
        sys.stdout.flush()
        await stop.wait()
    finally:
        await server.stop()
    return 0


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="time=%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)s",
    )
    try:
        return asyncio.run(serve(args))
    except InsecureNotLoopback as exc:
        sys.stderr.write(f"lbipam apiserver: {exc}\n")
        return 2
    except (OSError, sqlite3.Error) as exc:  # e.g. the port is taken or the database cannot be opened
        sys.stderr.write(f"lbipam apiserver: {exc}\n")
        return 1
