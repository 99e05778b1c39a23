"""`lbipam apiserver`: run the embedded API server until SIGTERM or SIGINT.

Prints exactly one line, `apiserver ready <url>`, on stdout once the server accepts requests (and
the kubeconfig, if asked for, is written); logs go to stderr. Called by `lbipam/cli.py`, which owns the flags.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import gc
import logging
import signal
import sqlite3
import sys
from collections.abc import Coroutine
from typing import Any

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
    # What start-up loaded (every stored object) lives as long as the process: out of the cyclic
    # collector's way, whose full passes would otherwise walk it again and again.
    gc.freeze()
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
    """Exit code 0 after a signal; 2, with one line on stderr, for the user's mistakes (a port in
    use, a database that cannot be opened, an unknown log level), as every lbipam command."""
    if args.log_level.upper() not in logging.getLevelNamesMapping():
        return _fail(f"--log-level {args.log_level}: give DEBUG, INFO, WARNING, ERROR or CRITICAL")
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="time=%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)s",
    )
    try:
        return _run(serve(args))
    except InsecureNotLoopback as exc:
        return _fail(str(exc))
    except sqlite3.Error as exc:
        return _fail(f"--db {args.db}: {exc}")
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return _fail(f"--port {args.port} on {args.host}: address already in use")
        return _fail(" ".join(str(exc).split()))


def _run(main: Coroutine[Any, Any, int]) -> int:
    """Run on uvloop where it is installed (a dependency on Linux and macOS): its TLS and its
    event loop are compiled, where asyncio's TLS layer is Python on every read and write, which
    costs an HTTPS server a tenth of its requests. asyncio's own loop otherwise."""
    try:
        import uvloop  # noqa: PLC0415  # only this process's loop; tests run the server in theirs
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def _fail(message: str) -> int:
    sys.stderr.write(f"lbipam apiserver: {message}\n")
    return 2
