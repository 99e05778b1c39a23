"""The `lbipam` command: parses flags and wires the pieces together. Owns no logic of its own."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

Command = Callable[[argparse.Namespace], int]


def _cmd_crds(args: argparse.Namespace) -> int:
    from lbipam.api.crdgen import render_crds_yaml

    sys.stdout.write(render_crds_yaml())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lbipam",
        description="LoadBalancer IPAM, PodCIDR allocation and BGP announcement for bare-metal Kubernetes.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    crds = sub.add_parser(
        "crds", help="print the CustomResourceDefinitions (YAML), generated from the models"
    )
    crds.set_defaults(run=_cmd_crds)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run: Command = args.run
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
