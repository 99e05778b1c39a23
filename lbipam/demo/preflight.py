"""The demo's flags checked before anything starts: the user's mistakes that need no server (a
missing example folder, `--with-bird` without BIRD, a `--peer` that is not an address, an
`--exabgp` that is not a program, an unknown log level) become one-line UserErrors at once.

Light on purpose: `lbipam.demo.flags` runs `check` before it imports the demo's server,
controller and speaker, so a mistake is told in a fraction of a second. Also owns where the
packaged examples are (`lbipam/examples/`, package data) and how `--peer` is read.
"""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path

from lbipam.demo.bird import find_program
from lbipam.usererror import UserError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def check(args: argparse.Namespace) -> None:
    """Raise a UserError for the first mistake in the demo's flags."""
    if args.log_level.upper() not in logging.getLevelNamesMapping():
        raise UserError(f"--log-level {args.log_level}: give DEBUG, INFO, WARNING, ERROR or CRITICAL")
    example_files(args.examples or EXAMPLES)
    if args.with_bird and args.peer:
        raise UserError("give --with-bird or --peer, not both")
    if args.with_bird:
        find_program("bird")
        find_program("birdc")
    if args.peer:
        parse_peer(args.peer)
    if args.exabgp and shutil.which(args.exabgp) is None:
        raise UserError(f"--exabgp {args.exabgp}: no such program (or it is not executable)")


def example_files(directory: Path) -> list[Path]:
    """The YAML files of `directory`; a UserError when there are none."""
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise UserError(f"no example objects (*.yaml) in {directory}: give --examples DIR")
    return files


def parse_peer(text: str) -> tuple[str, int]:
    """ADDRESS[:PORT]; an IPv6 address with a port is written [ADDRESS]:PORT."""
    if text.startswith("["):
        address, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":") or "179"
    elif text.count(":") == 1:
        address, port = text.split(":")
    else:
        address, port = text, "179"
    if not port.isdigit() or not 0 < int(port) < 65536 or not address:
        raise UserError(f"--peer {text}: give ADDRESS, ADDRESS:PORT or [IPv6-ADDRESS]:PORT")
    return address, int(port)
