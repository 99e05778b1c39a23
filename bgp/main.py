"""`lbipam speaker --node NAME`: flags, then run `Speaker` and its ExaBGP until SIGTERM/SIGINT.

`add_speaker_parser(sub)` adds the subcommand to `lbipam`'s parser (imports nothing heavy, so that
`lbipam --help` stays fast); `run(args)` is its entry point and returns the exit code: 0 after a
signal once every route is withdrawn and ExaBGP has stopped.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from lbipam.observe.flags import add_observe_flags
from lbipam.usererror import UserError, run_command

if TYPE_CHECKING:
    from bgp.driver import Driver


def default_exabgp() -> str | None:
    """The `exabgp` installed next to this interpreter (a virtualenv's bin/), else on PATH."""
    beside = Path(sys.executable).parent / "exabgp"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("exabgp")


def make_driver(args: argparse.Namespace, runtime: Path) -> Driver:
    """The ExaBGP driver `lbipam speaker` runs: ExaBGP from `args.exabgp` (else `python -m
    exabgp`), its configuration and API socket in `runtime`."""
    from bgp.driver import Driver  # noqa: PLC0415  # heavy: only when a speaker runs

    return Driver(runtime, command=[args.exabgp] if args.exabgp else None)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} must be more than 0 seconds")
    return value


def add_speaker_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    node = os.environ.get("NODE_NAME") or None
    cmd = sub.add_parser(
        "speaker",
        help="run one node's BGP speaker: announce its Service IPs through an ExaBGP child process",
        description="Watch Services, EndpointSlices, LoadBalancerIPPools, BGPPeers and "
        "BGPAdvertisements; announce what this node should announce to its BGP peers through an "
        "ExaBGP child process; write this node's BGPNodeState. SIGTERM or SIGINT withdraw every "
        "route, wait for ExaBGP to acknowledge, stop ExaBGP and exit 0.",
    )
    cmd.add_argument(
        "--node",
        default=node,
        required=node is None,
        help="the name of this node's Node object (default: $NODE_NAME)",
    )
    cmd.add_argument(
        "--kubeconfig",
        help="kubeconfig file of the cluster (default: $KUBECONFIG, else the in-cluster config, "
        "else ~/.kube/config)",
    )
    cmd.add_argument(
        "--runtime-dir",
        type=Path,
        help="directory for ExaBGP's configuration and the API socket, created if missing; a "
        "relative path is taken from the current directory at start (default: a new temporary "
        "directory, removed at exit)",
    )
    cmd.add_argument(
        "--exabgp",
        default=default_exabgp(),
        help="the exabgp program (default: the one next to this Python interpreter, else on PATH)",
    )
    cmd.add_argument(
        "--no-default-class",
        action="store_true",
        help="announce only Services with spec.loadBalancerClass lbipam.io/bgp, not those without "
        "a class (match the controller's flag)",
    )
    cmd.add_argument(
        "--secret-refresh",
        type=_positive,
        default=60.0,
        help="seconds between re-reads of the Secrets holding TCP MD5 passwords; a BGPPeer change "
        "re-reads its Secret at once (default 60)",
    )
    cmd.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    add_observe_flags(cmd)
    cmd.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # Imported here, not at the top: `lbipam --help` builds this parser and must stay fast.
    import asyncio  # noqa: PLC0415

    from lbipam.k8s.logs import configure  # noqa: PLC0415

    try:
        configure(args.log_level, args.log_format)
    except ValueError as err:  # an unknown --log-level
        raise UserError(f"--log-level: {err}") from None
    if not args.exabgp:
        raise UserError("exabgp is neither next to the interpreter nor on PATH: give --exabgp")
    if shutil.which(args.exabgp) is None:
        raise UserError(f"--exabgp {args.exabgp}: no such program (or it is not executable)")
    if args.runtime_dir is not None:
        problem = prepare_runtime_dir(args)
        if problem:
            raise UserError(f"--runtime-dir {args.runtime_dir}: {problem}")
    # A bad kubeconfig or a metrics port in use raise UserErrors too: `lbipam.cli` says them in
    # one line, exit code 2.
    asyncio.run(_serve(args))
    return 0


def prepare_runtime_dir(args: argparse.Namespace) -> str | None:
    """Make `args.runtime_dir` absolute (ExaBGP runs with its own working directory and is
    handed paths inside it), create it (mode 0700) and check that it can be used; why not."""
    runtime: Path = args.runtime_dir
    try:
        runtime = runtime.expanduser().resolve()
        runtime.mkdir(parents=True, exist_ok=True, mode=0o700)
    except (OSError, RuntimeError) as err:
        return f"cannot be created: {err.strerror if isinstance(err, OSError) else err}"
    if not runtime.is_dir():
        return "is not a directory"
    if not os.access(runtime, os.W_OK | os.X_OK):
        return "is not writable by this user"
    args.runtime_dir = runtime
    return None


async def _serve(args: argparse.Namespace) -> None:
    import tempfile  # noqa: PLC0415

    from bgp.speaker import Speaker, SpeakerOptions  # noqa: PLC0415
    from lbipam.k8s.client import connect, user_agent_for  # noqa: PLC0415
    from lbipam.k8s.tasks import Tasks, run_until_signal  # noqa: PLC0415
    from lbipam.observe.metrics import speaker_registry  # noqa: PLC0415
    from lbipam.observe.server import serve_observe  # noqa: PLC0415

    runtime: Path = args.runtime_dir or Path(tempfile.mkdtemp(prefix="lbipam-speaker-"))
    kube = await connect(args.kubeconfig, user_agent=user_agent_for("speaker"))
    options = SpeakerOptions(
        node=args.node, default_class=not args.no_default_class, secret_refresh=args.secret_refresh
    )
    speaker = Speaker(kube, make_driver(args, runtime), options)
    registry = speaker_registry(speaker.peer_metrics)

    def start(tasks: Tasks) -> None:
        tasks.start("speaker", speaker.run())
        tasks.start("observe", serve_observe(args, registry, speaker.is_ready))

    try:
        # The speaker's cleanup (withdraw, await acks, stop ExaBGP) runs when the signal cancels
        # it; a DaemonSet pod has 30 s (terminationGracePeriodSeconds) for all of it.
        await run_until_signal(start, drain_timeout=25.0)
    finally:
        await kube.close()
        if args.runtime_dir is None:
            shutil.rmtree(runtime, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """`python -m bgp.main speaker ...`: the subcommand without the rest of `lbipam`."""
    parser = argparse.ArgumentParser(prog="lbipam")
    add_speaker_parser(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    args = parser.parse_args(argv)
    return run_command(args.command, args.run, args)


if __name__ == "__main__":
    sys.exit(main())
