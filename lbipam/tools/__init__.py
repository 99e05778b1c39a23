"""The operator's commands `lbipam status`, `lbipam check` and `lbipam plan`, and what they share.

Each command's module exposes `add_parser(sub)` (its flags and help) and `run(args) -> int` (its
exit code); `lbipam.cli` wires them. Exit codes: 0 clean, 1 findings (`check`, `plan --check`),
2 an error (no API, bad flags or input), as grep and diff do. This module owns the helpers the
three share: plain-text tables, comma lists and the common flags (`--compat` is the controller's too).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from lbipam.usererror import one_line

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces, as kubectl prints them."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in [list(headers), *rows]
    ]
    return "\n".join(lines) + "\n"


def split_list(text: str | None) -> list[str]:
    """The items of a comma list, stripped; empty items dropped."""
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def add_kubeconfig(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "--kubeconfig",
        help="kubeconfig file of the cluster (default: $KUBECONFIG, else the in-cluster config, "
        "else ~/.kube/config)",
    )


def add_output(cmd: argparse.ArgumentParser, *choices: str) -> None:
    cmd.add_argument(
        "-o",
        "--output",
        choices=choices,
        default=choices[0],
        help=f"output format: {', '.join(choices)} (default {choices[0]})",
    )


def _compat_sources(text: str) -> frozenset[str]:
    from lbipam.core.compat import parse_sources  # noqa: PLC0415  # only when the flag is given

    try:
        return parse_sources(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_compat(cmd: argparse.ArgumentParser) -> None:
    """`--compat metallb,cilium`: read those projects' Service annotations as lbipam's."""
    cmd.add_argument(
        "--compat",
        type=_compat_sources,
        default=frozenset(),
        metavar="metallb,cilium",
        help="also read MetalLB's (metallb.io/ and metallb.universe.tf/ loadBalancerIPs, "
        "address-pool, allow-shared-ip) and Cilium's (lbipam.cilium.io/ips, sharing-key, "
        "sharing-cross-namespace) Service annotations as their lbipam.io/ equivalents, as a cluster "
        "moving over needs; lbipam's own annotations win (default: neither)",
    )


def fail(command: str, message: str) -> int:
    """Say what went wrong on stderr, in one line; the exit code of an error."""
    sys.stderr.write(f"lbipam {command}: {one_line(message)}\n")
    return EXIT_ERROR
