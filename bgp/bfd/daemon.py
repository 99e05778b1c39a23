"""The BFD process of a speaker (`python -m bgp.bfd`): an `Engine` driven by JSON lines.

The speaker runs BFD in a process of its own so that nothing it does (planning 50,000 routes
holds its event loop for seconds) delays a packet: with 300 ms x 3 the router declares us dead
after 0.9 s of silence. This process does nothing but BFD.

Protocol, one JSON object per line:
- in (stdin): `{"sessions": [{"name", "peer", "local", "multihop", "minTxMs", "minRxMs",
  "multiplier"}, ...]}` (the whole wanted set, `bgp.bfd.engine.Engine.configure`);
  `{"stats": true}` (answered with the counters); `{"shutdown": true}` (AdminDown to every
  peer, then exit 0).
- out (stdout): `{"name", "peer", "local", "state", "diag", "remoteState", "error"}` for every
  state change; `{"stats": {...}}`.
End of input (the speaker died) ends the process at once and without AdminDown: to the routers
that is a failure, which it is. Called by `bgp.bfd.client` (and bench/ and tests through it).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from typing import Any

from bgp.bfd.engine import Engine, SessionSpec, SessionStatus
from bgp.bfd.session import Timers
from bgp.bfd.sockets import MULTIHOP_PORT, SINGLE_HOP_PORT

MS = 1000  # microseconds


def spec_from_wire(item: dict[str, Any]) -> SessionSpec:
    timers = Timers(
        desired_min_tx=int(item.get("minTxMs", 300)) * MS,
        required_min_rx=int(item.get("minRxMs", 300)) * MS,
        detect_mult=int(item.get("multiplier", 3)),
    )
    local = item.get("local") or None
    return SessionSpec(str(item["name"]), str(item["peer"]), local, bool(item.get("multihop")), timers)


def status_to_wire(status: SessionStatus) -> dict[str, Any]:
    return {
        "name": status.name,
        "peer": status.peer,
        "local": status.local,
        "state": status.state.label,
        "diag": status.diag.name.lower(),
        "remoteState": status.remote_state.label,
        "error": status.error,
    }


def _write(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message, separators=(",", ":")) + "\n")
    sys.stdout.flush()


async def serve(ports: dict[str, int] | None = None) -> None:
    """Read commands until end of input or a shutdown."""
    ports = ports or {}
    engine = Engine(
        lambda status: _write(status_to_wire(status)),
        single_hop_port=ports.get("single_hop_port", SINGLE_HOP_PORT),
        multihop_port=ports.get("multihop_port", MULTIHOP_PORT),
    )
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=16 * 1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        try:
            command = json.loads(line)
            if command.get("shutdown"):
                engine.send_admin_down()
                await asyncio.sleep(0.05)  # a second AdminDown, in case the first is lost
                engine.close(admin_down=True)
                return
            if "sessions" in command:
                engine.configure([spec_from_wire(item) for item in command["sessions"]])
            if command.get("stats"):
                _write({"stats": dataclasses.asdict(engine.stats)})
        except (ValueError, KeyError, TypeError) as err:  # a bug in the speaker: say so, carry on
            _write({"error": f"bad command: {err}"})
    engine.close(admin_down=False)


def main(argv: list[str] | None = None) -> int:
    """`python -m bgp.bfd [--single-hop-port N --multihop-port N]` (ports: tests only)."""
    args = list(sys.argv[1:] if argv is None else argv)
    ports: dict[str, int] = {}
    while args:
        flag, value = args.pop(0), args.pop(0)
        ports[flag.lstrip("-").replace("-", "_")] = int(value)
    asyncio.run(serve(ports))
    return 0
