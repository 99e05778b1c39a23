"""The `lbipam` command: parses flags and wires the pieces together. Owns no logic of its own."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from bgp.main import add_speaker_parser
from lbipam.demo.flags import add_parser as add_demo_parser
from lbipam.observe.flags import add_observe_flags
from lbipam.tools import check as check_tool
from lbipam.tools import plan_cli
from lbipam.tools import status as status_tool

Command = Callable[[argparse.Namespace], int]
# Kept here (not imported) so that `lbipam --help` imports nothing heavy.
LB_CLASS = "lbipam.io/bgp"
PODCIDR_TARGETS = ("node", "ciliumnode", "ciliumnode-pool", "node-annotations", "none")


def _cmd_crds(args: argparse.Namespace) -> int:
    if args.reference:
        from lbipam.api.reference import reference

        sys.stdout.write(reference())
        return 0
    from lbipam.api.crdgen import render_crds_yaml

    sys.stdout.write(render_crds_yaml())
    return 0


def _cmd_apiserver(args: argparse.Namespace) -> int:
    from lbipam.apiserver.main import run

    return run(args)


def _add_apiserver(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = sub.add_parser(
        "apiserver",
        help="run the embedded Kubernetes-compatible API server (SQLite), for trying lbipam and for tests",
        description="Serve a small Kubernetes-compatible API backed by SQLite. Prints one line "
        "'apiserver ready <url>' on stdout once it serves; SIGTERM or SIGINT stop it.",
    )
    cmd.add_argument(
        "--port", type=int, default=6443, help="TCP port to listen on; 0 picks a free one (default 6443)"
    )
    cmd.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    cmd.add_argument(
        "--db",
        default=":memory:",
        help="SQLite file that keeps the objects across restarts (default :memory:)",
    )
    cmd.add_argument("--kubeconfig-out", type=Path, help="write a kubeconfig for this server to this file")
    cmd.add_argument(
        "--service-cidr",
        default="10.96.0.0/16,fd00:10:96::/112",
        help="Service cluster IP ranges, comma-separated, primary family first "
        "(default 10.96.0.0/16,fd00:10:96::/112: dual-stack, IPv4 primary)",
    )
    cmd.add_argument(
        "--insecure",
        action="store_true",
        help="serve plain HTTP without authentication (loopback addresses only); by default it serves "
        "HTTPS with a generated certificate and requires the bearer token of the kubeconfig it writes",
    )
    cmd.add_argument(
        "--enable-fault-injection",
        action="store_true",
        help="serve /debug/lbipam/faults, which makes writes fail and drops watches (for tests)",
    )
    cmd.add_argument(
        "--history", type=int, default=10000, help="watch events kept for resuming watches (default 10000)"
    )
    cmd.add_argument(
        "--bookmark-interval",
        type=float,
        default=5.0,
        help="seconds between watch BOOKMARK events (default 5)",
    )
    cmd.add_argument(
        "--log-level", default="WARNING", help="logging level of the logs on stderr (default WARNING)"
    )
    cmd.set_defaults(run=_cmd_apiserver)


def _cmd_controller(args: argparse.Namespace) -> int:
    from lbipam.controllers.main import run

    return run(args)


def _add_kubeconfig(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "--kubeconfig",
        help="kubeconfig file of the cluster (default: $KUBECONFIG, else the in-cluster config, "
        "else ~/.kube/config)",
    )


def _add_controller(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = sub.add_parser(
        "controller",
        help="run the controller: LoadBalancer IPs and PodCIDRs (leader-elected)",
        description="Give every Service of type LoadBalancer an IP from the LoadBalancerIPPools that "
        "select it, and write pool status, Service status, conditions and Events. Several replicas "
        "elect a leader on a Lease; only the leader writes.",
    )
    _add_kubeconfig(cmd)
    cmd.add_argument(
        "--reuse-delay",
        type=float,
        default=30.0,
        help="seconds a released IP (or a deleted node's pod CIDR) is held back before it is handed "
        "out again, so the withdraw reaches the routers first (default 30)",
    )
    cmd.add_argument(
        "--no-default-class",
        action="store_true",
        help=f"handle only Services with spec.loadBalancerClass {LB_CLASS}, not those without a class",
    )
    cmd.add_argument(
        "--no-leader-elect", action="store_true", help="lead at once, without a Lease (one replica only)"
    )
    cmd.add_argument("--lease-name", default="lbipam-controller", help="the Lease to elect a leader on")
    cmd.add_argument(
        "--lease-namespace", help="namespace of the Lease (default: $POD_NAMESPACE, else default)"
    )
    cmd.add_argument("--identity", help="this replica's name in the Lease (default: hostname-pid)")
    cmd.add_argument("--concurrency", type=int, default=8, help="API writes in flight at once (default 8)")
    cmd.add_argument(
        "--podcidr-target",
        choices=PODCIDR_TARGETS,
        default="none",
        help="where nodes' pod CIDRs from PodCIDRPools go: node (Node spec.podCIDR(s), as "
        "kube-controller-manager --allocate-node-cidrs), ciliumnode (CiliumNode spec.ipam.podCIDRs), "
        "ciliumnode-pool (single IPs in CiliumNode spec.ipam.pool, CRD-backed IPAM), node-annotations "
        "(io.cilium.network.ipv4/ipv6-pod-cidr), or none: PodCIDR management off (default)",
    )
    cmd.add_argument(
        "--pool-pre-allocate",
        type=int,
        default=8,
        help="ciliumnode-pool: free IPs kept in a CiliumNode's pool above what is used, unless its "
        "spec.ipam.pre-allocate says otherwise (default 8)",
    )
    cmd.add_argument(
        "--pool-max-above-watermark",
        type=int,
        default=8,
        help="ciliumnode-pool: free IPs allowed above the pre-allocation before the pool is trimmed, "
        "unless spec.ipam.max-above-watermark says otherwise (default 8)",
    )
    cmd.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    add_observe_flags(cmd)
    cmd.set_defaults(run=_cmd_controller)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lbipam",
        description="LoadBalancer IPAM, PodCIDR allocation and BGP announcement for bare-metal Kubernetes.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    crds = sub.add_parser(
        "crds", help="print the CustomResourceDefinitions (YAML), generated from the models"
    )
    crds.add_argument(
        "--reference", action="store_true", help="print the field reference in Markdown instead (README.md)"
    )
    crds.set_defaults(run=_cmd_crds)
    _add_apiserver(sub)
    _add_controller(sub)
    add_speaker_parser(sub)
    add_demo_parser(sub)
    status_tool.add_parser(sub)
    check_tool.add_parser(sub)
    plan_cli.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run: Command = args.run
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
