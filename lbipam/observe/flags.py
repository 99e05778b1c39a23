"""The command-line flags of the observe endpoints and of the log format, shared by the
`lbipam controller` and `lbipam speaker` subcommands. Imports nothing heavy (`lbipam --help`)."""

from __future__ import annotations

import argparse

LOG_FORMATS = ("text", "json")


def port(text: str) -> int:
    """argparse type of --metrics-port: 0..65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port number (0-65535; 0 turns the endpoints off)")
    return value


def add_observe_flags(parser: argparse.ArgumentParser, *, default_port: int = 0) -> None:
    """--metrics-port, --metrics-address and --log-format; read by `serve_observe` and
    `lbipam.k8s.logs.configure`."""
    parser.add_argument(
        "--metrics-port",
        type=port,
        default=default_port,
        help="TCP port of /metrics (Prometheus), /healthz and /readyz; 0 turns them off "
        f"(default {default_port})",
    )
    parser.add_argument(
        "--metrics-address",
        default="::",
        help="address the metrics port listens on (default ::, every address of both IP families, as "
        "a pod of any family needs; 0.0.0.0 where IPv6 is off)",
    )
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default="text",
        help="text: 'time level logger message key=value...' lines; json: one JSON object per line "
        "with time, level, logger, msg and the key-values (default text)",
    )
