"""`lbipam controller`: connect, then run `ControllerApp` and its metrics, health and readiness
endpoints (`lbipam.observe`) until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import gc
from dataclasses import replace

from lbipam.controllers.app import ControllerApp, LeaderOptions, PodCIDRSettings
from lbipam.controllers.lbipam.controller import LBOptions
from lbipam.controllers.podcidr.controller import PodCIDROptions
from lbipam.k8s.client import connect, user_agent_for
from lbipam.k8s.logs import configure
from lbipam.k8s.tasks import Tasks, run_until_signal
from lbipam.observe.metrics import controller_registry
from lbipam.observe.server import serve_observe
from lbipam.usererror import UserError

FLUSH = 10.0  # seconds SIGTERM waits for planned writes before the tasks stop (then up to 10 more)


def podcidr_settings(args: argparse.Namespace) -> PodCIDRSettings:
    return PodCIDRSettings(
        target=args.podcidr_target,
        pre_allocate=args.pool_pre_allocate,
        max_above_watermark=args.pool_max_above_watermark,
        options=PodCIDROptions(reuse_delay=args.reuse_delay, concurrency=args.concurrency),
    )


def options(args: argparse.Namespace) -> tuple[LBOptions, LeaderOptions]:
    lb = LBOptions(
        default_class=not args.no_default_class,
        reuse_delay=args.reuse_delay,
        concurrency=args.concurrency,
        compat=args.compat,
    )
    leader = replace(LeaderOptions(), enabled=not args.no_leader_elect, lease_name=args.lease_name)
    if args.lease_namespace:
        leader = replace(leader, lease_namespace=args.lease_namespace)
    if args.identity:
        leader = replace(leader, identity=args.identity)
    return lb, leader


async def serve(args: argparse.Namespace) -> None:
    kube = await connect(args.kubeconfig, user_agent=user_agent_for("controller"))
    lb, leader = options(args)
    app = ControllerApp(kube, lb, leader, podcidr_settings(args))
    try:
        # SIGTERM: first the writes already planned (a burst's Events and annotations), still
        # leading, then the Lease is released.
        await run_until_signal(lambda tasks: _start(tasks, app, args), flush=app.drain, flush_timeout=FLUSH)
    finally:
        await kube.close()


def _start(tasks: Tasks, app: ControllerApp, args: argparse.Namespace) -> None:
    tasks.start("observe", serve_observe(args, controller_registry(app), app.ready))
    tasks.start("controller", app.run())


def run(args: argparse.Namespace) -> int:
    # The caches hold every watched object for the life of the process; collecting the young
    # generation every 700 allocations (the default) walks them again and again while a list of
    # 10k Services is parsed. Collect less often; the controller also freezes what it imported.
    gc.set_threshold(50_000, 20, 20)
    try:
        configure(args.log_level, args.log_format)
    except ValueError as err:  # an unknown --log-level
        raise UserError(f"--log-level: {err}") from None
    # A bad kubeconfig or a metrics port in use raise UserErrors: `lbipam.cli` says them in one line.
    asyncio.run(serve(args))
    return 0
